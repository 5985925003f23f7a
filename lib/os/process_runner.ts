/**
 * Runs external programs for commands: each child leads its own process
 * group so that a timeout, a cancellation or HEMLOCK kills the whole tree,
 * and its output is streamed with a byte cap so a chatty child can neither
 * exhaust the agent's memory nor block on a full pipe.
 */
import { getLogger } from "../logging/mod.ts";

const logger = getLogger(["dcm", "agent", "jobs"]);

/** What a finished child produced. */
export interface ProcessResult {
  /** The exit code; 128 + signal number when a signal ended the child. */
  code: number;
  stdout: string;
  stderr: string;
  /** The child ran past `timeoutMs` and was killed. */
  timedOut: boolean;
  /** `signal` aborted and the child was killed (or never started). */
  cancelled: boolean;
  /** stdout or stderr was cut at `maxOutputBytes`. */
  truncated: boolean;
}

/** Options for {@linkcode runProcess}. */
export interface RunProcessOptions {
  /** Environment variables for the child, added to the agent's own unless `clearEnv`. */
  env: Record<string, string>;
  /** Give the child exactly `env` and nothing inherited. */
  clearEnv?: boolean;
  /** Text or bytes written to the child's standard input; absent means /dev/null. */
  stdin?: string | Uint8Array;
  /** Milliseconds before the process tree is killed; 0 or absent means no limit. */
  timeoutMs?: number;
  /** Bytes kept of stdout and, separately, of stderr. */
  maxOutputBytes: number;
  /** Aborting kills the process tree (CANCEL, shutdown). */
  signal?: AbortSignal;
  /** Milliseconds between SIGTERM and SIGKILL when the tree is killed (default 2000). */
  killGraceMs?: number;
}

/** The program could not be started at all (missing, not executable, ...). */
export class ProcessStartError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ProcessStartError";
  }
}

const DEFAULT_KILL_GRACE_MS = 2000;
/**
 * How long the pipes may stay open after the child exited. A background
 * process the child left behind keeps them open; waiting for it would hang
 * the command, so after this the agent stops reading.
 */
const PIPE_DRAIN_MS = 500;
const SPAWN_ATTEMPTS = 5;

/** Process group ids (= leader pids) of children that are still running. */
const liveGroups = new Set<number>();

/** Runs `argv` to completion; throws ProcessStartError if it cannot be started. */
export async function runProcess(
  argv: string[],
  options: RunProcessOptions,
): Promise<ProcessResult> {
  if (options.signal?.aborted) {
    return { code: 1, stdout: "", stderr: "", timedOut: false, cancelled: true, truncated: false };
  }
  const child = await spawn(argv, options);
  const pgid = child.pid;
  liveGroups.add(pgid);
  const stdout = capture(child.stdout, options.maxOutputBytes);
  const stderr = capture(child.stderr, options.maxOutputBytes);
  const outputs = Promise.all([stdout.done, stderr.done]);

  let stopped: "timeout" | "cancel" | undefined;
  let grace: Deadline | undefined;
  const stop = (why: "timeout" | "cancel") => {
    if (stopped) return;
    stopped = why;
    signalGroup(pgid, "SIGTERM");
    grace = deadline(options.killGraceMs ?? DEFAULT_KILL_GRACE_MS);
    // A leader that ignores SIGTERM must not hold up the escalation.
    grace.promise.then(() => signalGroup(pgid, "SIGKILL"));
  };
  const timeoutMs = options.timeoutMs ?? 0;
  const timer = timeoutMs > 0 ? setTimeout(() => stop("timeout"), timeoutMs) : undefined;
  const onAbort = () => stop("cancel");
  options.signal?.addEventListener("abort", onAbort, { once: true });
  // The signal may have fired while a busy executable delayed the spawn.
  if (options.signal?.aborted) stop("cancel");

  let status: Deno.CommandStatus;
  try {
    // Fed after the timer is armed, so a child that never reads cannot hold up the timeout.
    if (options.stdin !== undefined) await feed(child.stdin, options.stdin);
    status = await child.status;
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", onAbort);
  }
  if (grace) {
    // The rest of the group gets what is left of the grace period to exit
    // (their closing the pipes shows it), then the survivors are killed.
    await Promise.race([outputs, grace.promise]);
    grace.clear();
    signalGroup(pgid, "SIGKILL");
  }
  liveGroups.delete(pgid);
  const drain = deadline(PIPE_DRAIN_MS);
  try {
    if (await Promise.race([outputs.then(() => true), drain.promise.then(() => false)]) === false) {
      await Promise.all([stdout.cancel(), stderr.cancel()]);
    }
  } finally {
    drain.clear();
  }
  const [out, err] = await outputs;
  return {
    code: status.code,
    stdout: decode(out, options.maxOutputBytes),
    stderr: decode(err, options.maxOutputBytes),
    timedOut: stopped === "timeout",
    cancelled: stopped === "cancel",
    truncated: out.total > options.maxOutputBytes || err.total > options.maxOutputBytes,
  };
}

/** Sends `signal` (default SIGKILL) to every running child's process group. */
export function killAllProcessGroups(signal: Deno.Signal = "SIGKILL"): void {
  for (const pgid of liveGroups) signalGroup(pgid, signal);
}

/** The number of children started by {@linkcode runProcess} that are still running. */
export function runningProcessCount(): number {
  return liveGroups.size;
}

async function spawn(argv: string[], options: RunProcessOptions): Promise<Deno.ChildProcess> {
  if (argv.length === 0) throw new ProcessStartError("no program was given to run");
  const [program, ...args] = argv;
  for (let attempt = 1;; attempt++) {
    try {
      return new Deno.Command(program, {
        args,
        env: options.env,
        clearEnv: options.clearEnv ?? false,
        stdin: options.stdin === undefined ? "null" : "piped",
        stdout: "piped",
        stderr: "piped",
        detached: true,
      }).spawn();
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      // ETXTBSY: a file just written (a downloaded script) can briefly stay
      // open for writing in a child forked by another thread before its exec
      // closes it. The condition clears by itself within milliseconds.
      if (/os error 26\b/.test(reason) && attempt < SPAWN_ATTEMPTS) {
        await new Promise((resolve) => setTimeout(resolve, 10 * 2 ** attempt));
        continue;
      }
      throw new ProcessStartError(
        `cannot start '${program}': ${reason}. Check that the program exists and is executable.`,
      );
    }
  }
}

function signalGroup(pgid: number, signal: Deno.Signal): void {
  try {
    Deno.kill(-pgid, signal);
  } catch (err) {
    // NotFound (ESRCH) only means the whole group has already exited.
    if (!(err instanceof Deno.errors.NotFound)) {
      logger.warn("cannot send {signal} to process group {pgid}: {error}", {
        signal,
        pgid,
        error: err instanceof Error ? err.message : String(err),
      });
    }
  }
}

async function feed(stream: WritableStream<Uint8Array>, input: string | Uint8Array): Promise<void> {
  const writer = stream.getWriter();
  try {
    await writer.write(typeof input === "string" ? new TextEncoder().encode(input) : input);
    await writer.close();
  } catch {
    // The child exited (or was killed) without reading its input; its exit code tells why.
  }
}

interface Captured {
  chunks: Uint8Array[];
  /** Bytes the child wrote, including those that were dropped. */
  total: number;
}

interface Capture {
  done: Promise<Captured>;
  cancel(): Promise<void>;
}

function capture(stream: ReadableStream<Uint8Array>, limit: number): Capture {
  const reader = stream.getReader();
  const read = async (): Promise<Captured> => {
    const result: Captured = { chunks: [], total: 0 };
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        const room = limit - result.total;
        if (room > 0) result.chunks.push(room >= value.length ? value : value.slice(0, room));
        // Past the limit the data is read and dropped, so the child never blocks.
        result.total += value.length;
      }
    } catch {
      // A cancelled or broken pipe ends the output; what was read is kept.
    } finally {
      reader.releaseLock();
    }
    return result;
  };
  return {
    done: read(),
    cancel: () => reader.cancel().catch(() => {}),
  };
}

function decode(captured: Captured, limit: number): string {
  const bytes = new Uint8Array(Math.min(captured.total, limit));
  let offset = 0;
  for (const chunk of captured.chunks) {
    bytes.set(chunk, offset);
    offset += chunk.length;
  }
  const text = new TextDecoder("utf-8", { fatal: false }).decode(bytes);
  if (captured.total <= limit) return text;
  return `${text}\n[dcm-agent: output truncated after ${limit} bytes; ${captured.total} bytes were written]`;
}

interface Deadline {
  promise: Promise<void>;
  clear(): void;
}

function deadline(ms: number): Deadline {
  let id: ReturnType<typeof setTimeout> | undefined;
  const promise = new Promise<void>((resolve) => {
    id = setTimeout(resolve, ms);
  });
  return { promise, clear: () => clearTimeout(id) };
}
