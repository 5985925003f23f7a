/**
 * The environment and the run/reply cycle of external scripts (ARCHITECTURE.md, Command rules
 * "External scripts"): a replaced environment of exactly eight variables,
 * a fresh `$DCM_LOG_FILE` whose lines become job-detail logs, a timeout,
 * and the mapping of a finished script to the five-key reply.
 */
import { getLogger } from "../logging/mod.ts";
import { join } from "node:path";
import type { AgentConfig } from "../config/mod.ts";
import { makeReply, type ReplyPayload } from "../protocol/mod.ts";
import { type ProcessResult, runProcess } from "./mod.ts";

const logger = getLogger(["dcm", "agent", "jobs"]);

/** PATH for scripts when the agent itself was started without one. */
const FALLBACK_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

interface ScriptEnvironmentOptions {
  /** The path given to the script as DCM_LOG_FILE. */
  logFile: string;
  /** DCM_PYTHON: the interpreter {@linkcode findPython} found, or "". */
  python: string;
  platform: { name: string; version: string };
}

/** The complete environment of a script: exactly the eight variables the original gave its scripts. */
function scriptEnvironment(
  config: AgentConfig,
  options: ScriptEnvironmentOptions,
): Record<string, string> {
  return {
    DCM_USER: config.system.user ?? "",
    DCM_BASEDIR: config.storage.base_dir ?? "",
    DCM_TMP_DIR: config.storage.temppath ?? "",
    DCM_LOG_FILE: options.logFile,
    DCM_PYTHON: options.python,
    DCM_AGENT_PLATFORM_NAME: options.platform.name,
    DCM_AGENT_PLATFORM_VERSION: options.platform.version,
    PATH: inheritedPath(),
  };
}

/** The first executable `python3` on the PATH scripts get, or "" if there is none. */
export function findPython(): string {
  for (const dir of inheritedPath().split(":")) {
    // An empty entry means the working directory; never pick an interpreter from there.
    if (!dir.startsWith("/")) continue;
    const candidate = join(dir, "python3");
    try {
      const info = Deno.statSync(candidate);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) return candidate;
    } catch {
      // Not in this directory.
    }
  }
  return "";
}

function inheritedPath(): string {
  return Deno.env.get("PATH") || FALLBACK_PATH;
}

/** Options for {@linkcode scriptCommand}. */
export interface ScriptCommandOptions {
  /** Run the file with `python` instead of executing it directly. */
  inpython: boolean;
  runUnderSudo: boolean;
  /** The python3 interpreter (DCM_PYTHON). */
  python: string;
  /** The sudo program ([system]sudo). */
  sudo: string;
  /** The agent runs as root, so sudo is not needed. */
  isRoot: boolean;
  /** Extra arguments for the script; each one is turned into a string. */
  arguments: unknown[] | null;
}

/** Builds `[sudo -E] [python3] <file> [args…]`. */
export function scriptCommand(file: string, options: ScriptCommandOptions): string[] {
  const argv: string[] = [];
  if (options.runUnderSudo && !options.isRoot) argv.push(options.sudo, "-E");
  if (options.inpython) {
    if (!options.python) {
      throw new Error(
        "inpython was requested but no python3 interpreter was found on the agent's PATH; " +
          "install python3 or send the script with inpython false",
      );
    }
    argv.push(options.python);
  }
  argv.push(file, ...(options.arguments ?? []).map(argumentText));
  return argv;
}

/** Converts one `arguments` item the way Python's str() would for JSON values. */
function argumentText(value: unknown): string {
  if (typeof value === "string") return value;
  if (value === null) return "None";
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "object") return JSON.stringify(value);
  return String(value);
}

/** The parts of a command context that running a script needs. */
export interface ScriptContext {
  config: AgentConfig;
  signal: AbortSignal;
  log: { detail(line: string): void };
  services: { host: { platformName: string; platformVersion: string } };
}

/** Options for {@linkcode runScriptFile}. */
export interface ScriptFileOptions {
  inpython: boolean;
  runUnderSudo: boolean;
  arguments: unknown[] | null;
  /** Seconds before the script is killed; null means [jobs]script_timeout; 0 means none. */
  timeout: number | null;
}

/** Runs a script file as run_script/fetch_run do and maps the outcome to the reply. */
export async function runScriptFile(
  file: string,
  ctx: ScriptContext,
  options: ScriptFileOptions,
): Promise<ReplyPayload> {
  const config = ctx.config;
  const seconds = options.timeout ?? config.jobs.script_timeout;
  if (!Number.isFinite(seconds) || seconds < 0) {
    throw new Error(`timeout must be 0 (no limit) or a positive number of seconds, not ${seconds}`);
  }
  // Looked up once: the same interpreter runs an inpython script and is its DCM_PYTHON.
  const python = findPython();
  const argv = scriptCommand(file, {
    inpython: options.inpython,
    runUnderSudo: options.runUnderSudo,
    python,
    sudo: config.system.sudo ?? "/usr/bin/sudo",
    isRoot: Deno.uid() === 0,
    arguments: options.arguments,
  });
  logger.debug("running script {file} with {program} (timeout {seconds} s)", {
    file,
    program: argv[0],
    seconds,
  });
  const logFile = await makeTempFile(config, "dcm-script-log-");
  let result: ProcessResult;
  try {
    result = await runProcess(argv, {
      env: scriptEnvironment(config, {
        logFile,
        python,
        platform: {
          name: ctx.services.host.platformName,
          version: ctx.services.host.platformVersion,
        },
      }),
      clearEnv: true,
      timeoutMs: seconds * 1000,
      maxOutputBytes: config.jobs.max_output_bytes,
      signal: ctx.signal,
    });
  } finally {
    await forwardLogLines(logFile, ctx.log, config.jobs.max_output_bytes);
    await removeFile(logFile);
  }
  logger.debug("script {file} exited with code {code}", { file, code: result.code });
  return scriptReply(result, seconds);
}

/** Maps a finished script to its reply: exit code, stdout, stderr. */
function scriptReply(result: ProcessResult, timeoutSeconds: number): ReplyPayload {
  let note = "";
  if (result.timedOut) {
    note = `the script ran longer than ${timeoutSeconds} s and was killed; ` +
      "pass a larger 'timeout' argument or raise [jobs]script_timeout";
  } else if (result.cancelled) {
    note = "the script was cancelled (by the manager or an agent shutdown) and was killed";
  }
  const stopped = result.timedOut || result.cancelled;
  return makeReply(stopped && result.code === 0 ? 1 : result.code, {
    message: result.stdout,
    error_message: note === "" ? result.stderr : joinLines(result.stderr, note),
  });
}

function joinLines(first: string, second: string): string {
  if (first === "") return second;
  return first.endsWith("\n") ? `${first}${second}` : `${first}\n${second}`;
}

/** Parses the script URL `text`; throws a plain error when it is not an absolute URL. */
export function scriptUrl(text: string): URL {
  try {
    return new URL(text);
  } catch {
    throw new Error(`the URL ${JSON.stringify(text)} is not valid; send an absolute URL`);
  }
}

/** The local path of the file:// URL `url` (sent as `text`); throws when it names a host. */
export function localPath(url: URL, text: string): string {
  if (url.hostname !== "" && url.hostname !== "localhost") {
    throw new Error(`the URL ${text} names a host; a file:// URL must be a local path`);
  }
  return decodeURIComponent(url.pathname);
}

/** Creates an empty file in [storage]temppath; throws a clear error if it cannot. */
export async function makeTempFile(config: AgentConfig, prefix: string): Promise<string> {
  const dir = config.storage.temppath ?? "/tmp";
  try {
    return await Deno.makeTempFile({ dir, prefix });
  } catch (err) {
    throw new Error(
      `cannot create a temporary file in [storage]temppath ${dir}: ${(err as Error).message}; ` +
        "create the directory or point temppath at a writable one",
    );
  }
}

/** Deletes a file; a file that is already gone is fine. */
export async function removeFile(path: string): Promise<void> {
  try {
    await Deno.remove(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) {
      logger.warn("cannot delete {path}: {error}", { path, error: (err as Error).message });
    }
  }
}

/** The SHA-256 hex digest of `data`. */
export async function sha256Hex(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-256", data as Uint8Array<ArrayBuffer>);
  return Array.from(new Uint8Array(digest), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Checks a SHA-256 hex digest case-insensitively; throws when it does not match. */
export function verifyChecksum(expected: string, actual: string): void {
  if (expected.trim().toLowerCase() !== actual.toLowerCase()) {
    throw new Error(
      `checksum did not match: expected ${expected}, got ${actual}; ` +
        "send the SHA-256 hex digest of the (decompressed) script",
    );
  }
}

async function forwardLogLines(
  logFile: string,
  log: { detail(line: string): void },
  maxBytes: number,
): Promise<void> {
  let file: Deno.FsFile;
  try {
    file = await Deno.open(logFile, { read: true });
  } catch {
    // The script removed or replaced its log file: there is nothing to forward.
    return;
  }
  // Read at most maxBytes (plus one, to notice more) so that a runaway
  // script cannot make the agent load a huge file.
  const buffer = new Uint8Array(maxBytes + 1);
  let length = 0;
  try {
    while (length < buffer.length) {
      const n = await file.read(buffer.subarray(length));
      if (n === null) break;
      length += n;
    }
  } finally {
    file.close();
  }
  const text = new TextDecoder().decode(buffer.subarray(0, Math.min(length, maxBytes)));
  for (const line of text.split("\n")) {
    const clean = line.replace(/\r$/, "");
    if (clean.trim() !== "") log.detail(clean);
  }
  if (length > maxBytes) {
    log.detail(`[dcm-agent: DCM_LOG_FILE truncated after ${maxBytes} bytes]`);
  }
}
