/**
 * One Ansible run against this server with a local connection. The endpoint
 * is either a git repository (run with `ansible-pull`) or an http(s) URL of a
 * playbook archive (.tar.gz, .tgz or .tar; downloaded, unpacked into the private
 * directory and run with `ansible-playbook`). The run list names the playbooks
 * in order; environmentId is passed as the extra variable `environmentId`.
 */
import { join, normalize } from "node:path";
import { downloadFile } from "./download.ts";
import { findProgram, runAsUser, type RunSettings, type Workspace } from "./workspace.ts";
import type { ConfigRequest, ConfigSettings, ToolRun } from "./types.ts";
import { runProcess } from "../process_runner.ts";
import { pathExists } from "../fs_stat.ts";

/** Playbook run when the run list is empty: an archive's `site.yml`. */
const DEFAULT_ARCHIVE_PLAYBOOK = "site.yml";

/** True when `endpoint` names a git repository rather than a playbook archive. */
export function isGitEndpoint(endpoint: string): boolean {
  if (/^(git|ssh|git\+ssh|file):\/\//i.test(endpoint)) return true;
  if (/^[\w.-]+@[\w.-]+:/.test(endpoint)) return true; // scp-like: git@host:repo.git
  if (endpoint.startsWith("/")) return true; // a repository on this server
  try {
    return new URL(endpoint).pathname.endsWith(".git");
  } catch {
    return false;
  }
}

/** Checks a playbook name: a relative path inside the repository or archive. */
export function checkPlaybook(name: unknown): string {
  if (typeof name !== "string" || name === "" || name.startsWith("-")) {
    throw new Error(`the run list entry ${JSON.stringify(name)} is not a playbook path`);
  }
  const clean = normalize(name);
  if (clean.startsWith("/") || clean === ".." || clean.startsWith("../")) {
    throw new Error(
      `the playbook ${JSON.stringify(name)} is outside the repository; ` +
        "send paths relative to its top directory",
    );
  }
  return clean;
}

/** Runs the playbooks of `request`. */
export async function runAnsible(
  request: ConfigRequest,
  ws: Workspace,
  options: { settings: RunSettings; conf: ConfigSettings },
): Promise<ToolRun> {
  const { settings, conf } = options;
  if (!request.endpoint) {
    throw new Error(
      "configType ansible needs an endpoint: a git repository URL or an http(s) URL of a " +
        "playbook archive (.tar.gz)",
    );
  }
  const playbooks = request.runList.map(checkPlaybook);
  const common: string[] = ["-i", "localhost,", "-c", "local"];
  if (request.environmentId) {
    common.push("-e", JSON.stringify({ environmentId: request.environmentId }));
  }
  if (request.authSecret) {
    common.push(
      "--vault-password-file",
      await ws.write("vault-password", request.authSecret, true),
    );
  }
  const tmp = await ws.mkdir("tmp");
  const env = {
    ANSIBLE_LOCAL_TEMP: tmp,
    ANSIBLE_REMOTE_TEMP: tmp,
    ANSIBLE_NOCOLOR: "1",
    ANSIBLE_RETRY_FILES_ENABLED: "0",
    ANSIBLE_HOST_KEY_CHECKING: "0",
  };

  let argv: string[];
  if (isGitEndpoint(request.endpoint)) {
    const pull = requireProgram("ansible-pull", conf);
    argv = [pull, "-U", request.endpoint, "-d", join(ws.dir, "checkout"), ...common];
    if (request.clientKey) {
      argv.push("--private-key", await ws.write("git-key", request.clientKey, true));
    }
    argv.push(...playbooks);
  } else {
    const play = requireProgram("ansible-playbook", conf);
    const books = playbooks.length > 0 ? playbooks : [DEFAULT_ARCHIVE_PLAYBOOK];
    const tree = await fetchArchive(request.endpoint, ws, { settings, first: books[0] });
    argv = [play, ...common, ...books.map((p) => join(tree, p))];
  }
  await ws.handOver();
  const result = await runAsUser(argv, settings, env);
  return { command: argv.join(" "), result, okCodes: [0] };
}

function requireProgram(name: string, conf: ConfigSettings): string {
  const found = findProgram(name, conf.extraPath);
  if (!found) {
    throw new Error(
      `${name} is not installed on this server; install Ansible (Debian/Ubuntu: apt-get ` +
        "install ansible-core; RHEL/Fedora: dnf install ansible-core) and run the command again",
    );
  }
  return found;
}

/** Downloads and unpacks a playbook archive; returns the directory holding the playbooks. */
async function fetchArchive(
  url: string,
  ws: Workspace,
  options: { settings: RunSettings; first: string },
): Promise<string> {
  const settings = options.settings;
  const archive = join(ws.dir, "playbooks.archive");
  await downloadFile(url, archive, { signal: settings.signal });
  const tree = await ws.mkdir("playbooks");
  // tar detects gzip itself; --no-same-owner and --no-same-permissions keep
  // the archive from planting root-owned or set-uid files.
  const result = await runProcess(
    [
      findProgram("tar") ?? "tar",
      "-xf",
      archive,
      "-C",
      tree,
      "--no-same-owner",
      "--no-same-permissions",
    ],
    {
      env: { PATH: "/usr/bin:/bin", LC_ALL: "C" },
      clearEnv: true,
      timeoutMs: 120_000,
      maxOutputBytes: 64 * 1024,
      signal: settings.signal,
    },
  );
  if (result.code !== 0) {
    throw new Error(
      `the playbook archive from ${url} cannot be unpacked: ${result.stderr.trim()}; ` +
        "send a .tar.gz, .tgz or .tar archive",
    );
  }
  await Deno.remove(archive);
  // An archive with one top directory (project/site.yml) is entered when the
  // playbooks are not at its top.
  const entries = [...Deno.readDirSync(tree)];
  if (
    entries.length === 1 && entries[0].isDirectory && !pathExists(join(tree, options.first))
  ) return join(tree, entries[0].name);
  return tree;
}
