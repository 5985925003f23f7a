/**
 * Runs system tools (useradd, visudo, hostname, ...) from argv arrays, never
 * through a shell, optionally as root through sudo or as another user through
 * setpriv. Also installs root-owned files atomically through those tools, so
 * the same code path works whether the agent is root or uses sudo.
 */
import { basename, dirname, join } from "node:path";
import { runProcess } from "./process_runner.ts";

/** The outcome of one tool run. */
export interface ToolResult {
  /** The tool's exit code (a signal counts as 128 + its number). */
  code: number;
  stdout: string;
  stderr: string;
  /** True when stdout or stderr was longer than MAX_TOOL_OUTPUT_BYTES and was cut (and marked). */
  truncated: boolean;
}

/** A numeric user and group to drop privileges to. */
export interface RunAs {
  uid: number;
  gid: number;
}

/** Options for {@linkcode ToolRunner.run}. */
export interface RunOptions {
  /** Run as root: through sudo when the runner has a sudo program. */
  privileged?: boolean;
  /** Run as this uid/gid with no supplementary groups (implies starting privileged). */
  asUser?: RunAs;
  /** Text or bytes written to the tool's standard input (secrets go here, never into argv). */
  stdin?: string | Uint8Array;
  /** Aborting kills the tool's process tree (a cancelled job). */
  signal?: AbortSignal;
  /** Exit codes that count as success for {@linkcode ToolRunner.check}; default [0]. */
  okCodes?: number[];
}

/** Options for {@linkcode ToolRunner.installFile}. */
export interface InstallFileOptions {
  mode: number;
  uid?: number;
  gid?: number;
  /** Checks the staged copy (already in the target directory) before it replaces the target. */
  validate?: (stagedPath: string) => Promise<void>;
}

/** Options of a {@linkcode ToolRunner}. */
export interface ToolRunnerOptions {
  /** The sudo program used for privileged runs, or null when the agent is root. */
  sudo?: string | null;
  /** Directory for private staging files; default: the system temp directory. */
  tempDir?: string;
}

/** A tool exited with a code the caller did not accept. */
export class ToolError extends Error {
  /** What the tool reported. */
  readonly result: ToolResult;
  constructor(message: string, result: ToolResult) {
    super(message);
    this.name = "ToolError";
    this.result = result;
  }
}

// A fixed search path: a non-root agent's PATH often lacks the sbin directories.
const TOOL_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];
const TOOL_ENV = { PATH: TOOL_DIRS.join(":"), LC_ALL: "C" };
const resolvedTools = new Map<string, string>();
/** Milliseconds a tool may run before its process tree is killed. */
const TOOL_TIMEOUT_MS = 120_000;
/** Bytes kept of a tool's stdout and, separately, of its stderr. */
const MAX_TOOL_OUTPUT_BYTES = 1024 * 1024;

/** Finds a system tool by name in the standard sbin/bin directories; throws if absent. */
function findTool(name: string): string {
  if (name.startsWith("/")) return name;
  const known = resolvedTools.get(name);
  if (known) return known;
  for (const dir of TOOL_DIRS) {
    const candidate = join(dir, name);
    try {
      if (Deno.statSync(candidate).isFile) {
        resolvedTools.set(name, candidate);
        return candidate;
      }
    } catch {
      // Not in this directory; try the next one.
    }
  }
  throw new Error(
    `the system tool '${name}' was not found in ${TOOL_DIRS.join(", ")}; install the package ` +
      `that provides it`,
  );
}

/** Runs tools with an optional sudo prefix and a privilege drop to a target user. */
export class ToolRunner {
  readonly #sudo: string | null;
  readonly #tempDir: string | undefined;

  constructor(options: ToolRunnerOptions = {}) {
    this.#sudo = options.sudo ?? null;
    this.#tempDir = options.tempDir;
  }

  /** Runs a tool and returns its exit code and output; throws only if it cannot start. */
  async run(argv: string[], options: RunOptions = {}): Promise<ToolResult> {
    const result = await runProcess(this.#argv(argv, options), {
      env: TOOL_ENV,
      clearEnv: true,
      stdin: options.stdin,
      signal: options.signal,
      timeoutMs: TOOL_TIMEOUT_MS,
      maxOutputBytes: MAX_TOOL_OUTPUT_BYTES,
    });
    const { code, stdout, stderr, truncated } = result;
    return { code, stdout, stderr, truncated };
  }

  /** Runs a tool and throws a ToolError naming the tool and its message unless the exit code is accepted. */
  async check(argv: string[], options: RunOptions = {}): Promise<ToolResult> {
    const result = await this.run(argv, options);
    if (!(options.okCodes ?? [0]).includes(result.code)) {
      // stderr only: stdout may hold file content (keys) that must not reach logs or replies.
      const said = result.stderr.trim() || "no message";
      throw new ToolError(
        `${basename(argv[0])} failed (exit code ${result.code}): ${said}`,
        result,
      );
    }
    return result;
  }

  /**
   * Replaces `dest` with `content` as root: a private staging file is installed
   * under a dot-name in the target directory, validated, then renamed over the
   * target. A target that is a mount point (Docker bind-mounts /etc/hosts) is
   * overwritten in place instead, because it cannot be renamed over.
   */
  async installFile(dest: string, content: string, options: InstallFileOptions): Promise<void> {
    const stage = await Deno.makeTempFile({ dir: this.#tempDir, prefix: "dcm-stage-" });
    const tmp = join(dirname(dest), `.${basename(dest)}.dcm-${crypto.randomUUID().slice(0, 8)}`);
    let staged = false;
    try {
      await Deno.writeTextFile(stage, content);
      await this.check([
        "install",
        "-m",
        options.mode.toString(8),
        "-o",
        String(options.uid ?? 0),
        "-g",
        String(options.gid ?? 0),
        "-T",
        stage,
        tmp,
      ], { privileged: true });
      staged = true;
      if (options.validate) await options.validate(tmp);
      const moved = await this.run(["mv", "-f", "-T", "--", tmp, dest], { privileged: true });
      if (moved.code === 0) staged = false;
      else {
        if (!/busy/i.test(moved.stderr)) {
          throw new ToolError(`mv failed (exit code ${moved.code}): ${moved.stderr.trim()}`, moved);
        }
        await this.check(["cp", "-T", "--", stage, dest], { privileged: true });
      }
    } finally {
      if (staged) await this.run(["rm", "-f", "--", tmp], { privileged: true });
      await Deno.remove(stage).catch(() => {});
    }
  }

  #argv(argv: string[], options: RunOptions): string[] {
    const tool = [findTool(argv[0]), ...argv.slice(1)];
    const dropped = options.asUser
      ? [
        findTool("setpriv"),
        `--reuid=${options.asUser.uid}`,
        `--regid=${options.asUser.gid}`,
        "--clear-groups",
        "--no-new-privs",
        "--",
        ...tool,
      ]
      : tool;
    const needsRoot = options.privileged || options.asUser !== undefined;
    return needsRoot && this.#sudo ? [this.#sudo, "-n", "--", ...dropped] : dropped;
  }
}

/** File facts from `stat` that never follows a symbolic link. */
export interface PathInfo {
  kind: "file" | "directory" | "symlink" | "other";
  uid: number;
  gid: number;
  /** Permission bits (e.g. 0o600). */
  mode: number;
  links: number;
}

/** Describes a path without following a final symbolic link; null if it does not exist. */
export async function statPath(runner: ToolRunner, path: string): Promise<PathInfo | null> {
  // stat runs as root so that paths inside a 0700 home can be inspected by a non-root agent.
  const result = await runner.run(["stat", "-c", "%f %u %g %h", "--", path], { privileged: true });
  if (result.code !== 0) {
    if (/No such file or directory/.test(result.stderr)) return null;
    throw new ToolError(`cannot inspect ${path}: ${result.stderr.trim()}`, result);
  }
  const [rawMode, uid, gid, links] = result.stdout.trim().split(" ");
  const mode = parseInt(rawMode, 16);
  const type = mode & 0o170000;
  const kind = type === 0o100000
    ? "file"
    : type === 0o040000
    ? "directory"
    : type === 0o120000
    ? "symlink"
    : "other";
  return { kind, uid: Number(uid), gid: Number(gid), mode: mode & 0o7777, links: Number(links) };
}
