/**
 * The private working directory of one configuration-management run and the
 * way its tool is started: secrets are written owner-only into a fresh 0700
 * directory owned by the user the tool runs as, the tool runs from an argv
 * (never a shell) as that user, and the directory is removed afterwards.
 */
import { join } from "node:path";
import { lookupUser, type PasswdEntry } from "../passwd.ts";
import { type ProcessResult, runProcess } from "../process_runner.ts";
import { ToolRunner } from "../run_tool.ts";

/** Directories searched for configuration-management programs, in order. */
const PROGRAM_DIRS: readonly string[] = [
  "/usr/local/sbin",
  "/usr/local/bin",
  "/usr/sbin",
  "/usr/bin",
  "/sbin",
  "/bin",
  "/opt/puppetlabs/bin",
  "/opt/chef/bin",
  "/opt/cinc/bin",
];

/** What the tool runs with: its user, the sudo program, limits and the cancel signal. */
export interface RunSettings {
  /** The user the tool runs as. */
  user: PasswdEntry;
  /** The sudo program when the agent is not root, else null. */
  sudo: string | null;
  /** Milliseconds before the whole process tree is killed; 0 means no limit. */
  timeoutMs: number;
  /** Bytes of stdout and of stderr kept. */
  maxOutputBytes: number;
  signal: AbortSignal;
  /** Extra directories searched first for programs (tests put stand-ins there). */
  extraPath: string[];
}

/** Finds `name` in the extra directories, then in {@linkcode PROGRAM_DIRS}; null when absent. */
export function findProgram(name: string, extraPath: string[] = []): string | null {
  for (const dir of [...extraPath, ...PROGRAM_DIRS]) {
    const candidate = join(dir, name);
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return null;
}

/** Looks up the user a tool runs as; throws a clear error when it does not exist. */
export function runUser(name: string): PasswdEntry {
  const entry = lookupUser(name);
  if (!entry) {
    throw new Error(
      `the user '${name}' (runAsUser) does not exist on this server; ` +
        "send an existing user name or create the user first",
    );
  }
  return entry;
}

/** Fallback parent of the private directory (sticky and world-traversable). */
const SYSTEM_TEMP = "/tmp";

/** True when `user` can traverse every directory from / down to `dir`. */
function traversableBy(dir: string, user: PasswdEntry): boolean {
  if (user.uid === 0) return true;
  let path = "";
  for (const part of ["", ...dir.split("/").filter((p) => p !== "")]) {
    path = part === "" ? "/" : `${path === "/" ? "" : path}/${part}`;
    let info: Deno.FileInfo;
    try {
      info = Deno.statSync(path);
    } catch {
      return false;
    }
    const mode = info.mode ?? 0;
    const ok = info.uid === user.uid
      ? (mode & 0o100) !== 0
      : info.gid === user.gid
      ? (mode & 0o010) !== 0
      : (mode & 0o001) !== 0;
    if (!ok) return false;
  }
  return true;
}

/** A private directory for one run; every file in it is removed by {@linkcode Workspace.remove}. */
export class Workspace {
  /** The directory (mode 0700, owned by the run user). */
  readonly dir: string;
  readonly #runner: ToolRunner;
  readonly #user: PasswdEntry;

  private constructor(dir: string, runner: ToolRunner, user: PasswdEntry) {
    this.dir = dir;
    this.#runner = runner;
    this.#user = user;
  }

  /** Creates the directory under `parent`; throws a clear error when it cannot. */
  static async create(parent: string, settings: RunSettings): Promise<Workspace> {
    // The run user must reach its files: a temppath inside a private (0700)
    // base directory is not traversable for it, the system's /tmp always is.
    if (settings.user.uid !== Deno.uid() && !traversableBy(parent, settings.user)) {
      parent = SYSTEM_TEMP;
    }
    let dir: string;
    try {
      dir = await Deno.makeTempDir({ dir: parent, prefix: "dcm-cm-" });
      await Deno.chmod(dir, 0o700);
    } catch (err) {
      throw new Error(
        `cannot create a private directory in [storage]temppath ${parent}: ` +
          `${(err as Error).message}; create the directory or point temppath at a writable one`,
      );
    }
    return new Workspace(dir, new ToolRunner({ sudo: settings.sudo }), settings.user);
  }

  /** Writes a file (mode 0600 for secrets, else 0644) at `name` inside the directory. */
  async write(name: string, content: string | Uint8Array, secret: boolean): Promise<string> {
    const path = join(this.dir, name);
    await Deno.mkdir(join(path, ".."), { recursive: true, mode: 0o700 });
    // Created with its final mode, so a secret is never readable by others, even briefly.
    const mode = secret ? 0o600 : 0o644;
    if (typeof content === "string") await Deno.writeTextFile(path, content, { mode });
    else await Deno.writeFile(path, content, { mode });
    await Deno.chmod(path, mode);
    return path;
  }

  /** Creates an (empty) subdirectory, mode 0700. */
  async mkdir(name: string): Promise<string> {
    const path = join(this.dir, name);
    await Deno.mkdir(path, { recursive: true, mode: 0o700 });
    return path;
  }

  /** Hands the whole directory to the run user (the tool reads the secrets as that user). */
  async handOver(): Promise<void> {
    if (this.#user.uid === Deno.uid()) return;
    await this.#runner.check(
      ["chown", "-R", `${this.#user.uid}:${this.#user.gid}`, "--", this.dir],
      { privileged: true },
    );
  }

  /** Removes the directory and everything the tool left in it. */
  async remove(): Promise<void> {
    try {
      await Deno.remove(this.dir, { recursive: true });
      return;
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return;
    }
    // Files the tool created as another user: remove them as root.
    await this.#runner.run(["rm", "-rf", "--", this.dir], { privileged: true });
  }
}

/** Runs `argv` as the run user with a clean environment, the time limit and CANCEL. */
export async function runAsUser(
  argv: string[],
  settings: RunSettings,
  env: Record<string, string> = {},
): Promise<ProcessResult> {
  const user = settings.user;
  const path = [...settings.extraPath, ...PROGRAM_DIRS].join(":");
  const fullEnv: Record<string, string> = {
    PATH: path,
    HOME: user.home || "/",
    USER: user.name,
    LOGNAME: user.name,
    LANG: "C.UTF-8",
    ...env,
  };
  let command = argv;
  if (user.uid !== Deno.uid()) {
    const setpriv = findProgram("setpriv") ?? "setpriv";
    command = [
      setpriv,
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      "--init-groups",
      "--",
      ...argv,
    ];
    if (settings.sudo) command = throughSudo(settings.sudo, fullEnv, command, ["-i"]);
  }
  return await runLimited(command, fullEnv, settings);
}

/** Runs `argv` as root (through sudo when the agent is not root), with the same limits. */
export async function runPrivileged(
  argv: string[],
  settings: RunSettings,
  env: Record<string, string> = {},
): Promise<ProcessResult> {
  const fullEnv = { PATH: PROGRAM_DIRS.join(":"), LANG: "C.UTF-8", ...env };
  const command = settings.sudo && Deno.uid() !== 0
    ? throughSudo(settings.sudo, fullEnv, argv, [])
    : argv;
  return await runLimited(command, fullEnv, settings);
}

/** `command` under `sudo -n env VAR=value…`: sudo never asks for a password, and drops env. */
function throughSudo(
  sudo: string,
  env: Record<string, string>,
  command: string[],
  envFlags: string[],
): string[] {
  return [
    sudo,
    "-n",
    "--",
    findProgram("env") ?? "/usr/bin/env",
    ...envFlags,
    ...Object.entries(env).map(([k, v]) => `${k}=${v}`),
    ...command,
  ];
}

/** Runs `command` with exactly `env`, the time limit, the output cap and CANCEL. */
function runLimited(
  command: string[],
  env: Record<string, string>,
  settings: RunSettings,
): Promise<ProcessResult> {
  return runProcess(command, {
    env,
    clearEnv: true,
    timeoutMs: settings.timeoutMs,
    maxOutputBytes: settings.maxOutputBytes,
    signal: settings.signal,
  });
}

/** The package manager's install command for this platform. */
export function installCommand(platform: string, pkg: string): string[] {
  switch (platform) {
    case "debian":
    case "ubuntu":
      return ["apt-get", "install", "-y", "-q", "--no-install-recommends", pkg];
    case "rhel":
    case "centos":
    case "fedora":
      return [findProgram("dnf") ? "dnf" : "yum", "install", "-y", pkg];
    default:
      throw new Error(
        `cannot install ${pkg} on the platform '${platform}'; install it by hand ` +
          "or set [platform] name in agent.conf",
      );
  }
}
