/**
 * Launches the real agent as a separate process (for integration tests, the
 * demo and the bench) with a throw-away base directory and agent.conf, and
 * makes sure it never outlives its caller.
 */
import { renderIni } from "../lib/config/ini.ts";
import { AGENT_RUNTIME_FLAGS } from "../lib/config/runtime_flags.ts";

/** The agent process ended while a caller was waiting for something. */
export class AgentExitedError extends Error {}

/** Options of {@linkcode AgentProcess.start}. */
export interface AgentProcessOptions {
  /** The manager's websocket URL, written to `[connection]agentmanager_url`. */
  managerUrl: string;
  /** Reuse this base dir (to restart with the same journal and token); default a new temp dir. */
  baseDir?: string;
  /** Extra agent.conf sections/keys laid over the defaults. */
  conf?: Record<string, Record<string, string>>;
  /** The program to run, relative to the repo root; default env DCM_AGENT_TEST_ENTRY or "main.ts". */
  entry?: string;
  /** Extra environment variables for the agent. */
  env?: Record<string, string>;
  /**
   * Ignore the checkout's deno.json and lockfile, as the compiled binary does
   * (default false for .ts entries; a .js bundle always runs without them).
   */
  noConfig?: boolean;
}

/** The repository root (this file lives in <root>/scripts/). */
export const REPO_ROOT: string = decodeURIComponent(new URL("..", import.meta.url).pathname)
  .replace(/\/$/, "");

/** How much agent output is kept in memory. */
const OUTPUT_LIMIT_CHARS = 1 << 20;
/** stop() waits this long after SIGTERM before SIGKILL. */
const STOP_GRACE_MS = 10_000;

/** Every agent started by this module and not yet reaped, so none can outlive the caller. */
const live = new Set<AgentProcess>();
let unloadHookInstalled = false;

/** Synchronously SIGKILLs the process group of every agent still running. */
export function killAllAgents(): void {
  for (const agent of live) agent.kill("SIGKILL");
}

/** The agent.conf this module writes before applying `options.conf`. */
function defaultAgentConf(
  baseDir: string,
  managerUrl: string,
): Record<string, Record<string, string>> {
  return {
    connection: {
      agentmanager_url: managerUrl,
      backoff: "100",
      max_backoff: "1000",
      heartbeat_frequency: "5",
    },
    storage: {
      base_dir: baseDir,
      dbfile: `${baseDir}/secure/agentdb.sql`,
      script_dir: `${baseDir}/bin`,
      temppath: `${baseDir}/tmp`,
    },
    messaging: { retransmission_timeout: "1" },
    platform: { name: "debian", version: "12" },
    system: { user: "root" },
    cloud: { type: "UNKNOWN" },
  };
}

function mergeConf(
  base: Record<string, Record<string, string>>,
  extra: Record<string, Record<string, string>> = {},
): Record<string, Record<string, string>> {
  const out: Record<string, Record<string, string>> = {};
  for (const [s, keys] of Object.entries(base)) out[s] = { ...keys };
  for (const [s, keys] of Object.entries(extra)) out[s] = { ...(out[s] ?? {}), ...keys };
  return out;
}

interface ProcessInit {
  baseDir: string;
  confFile: string;
  ownsBaseDir: boolean;
  commandLine: string;
  spawnedAt: number;
}

/** The real agent running as a child process in its own process group. */
export class AgentProcess {
  /** The agent's base dir. */
  readonly baseDir: string;
  /** The agent.conf it was started with. */
  readonly confFile: string;
  /** Process id (also the process group id). */
  readonly pid: number;
  /** The command line, for messages. */
  readonly commandLine: string;
  /** performance.now() just before the process was spawned. */
  readonly spawnedAt: number;

  #child: Deno.ChildProcess;
  #status: Promise<Deno.CommandStatus>;
  #exited: Deno.CommandStatus | undefined;
  #pumps: Promise<void>;
  #readers: ReadableStreamDefaultReader<Uint8Array>[] = [];
  #output = "";
  #dropped = 0;
  #ownsBaseDir: boolean;

  private constructor(child: Deno.ChildProcess, init: ProcessInit) {
    this.#child = child;
    this.pid = child.pid;
    this.baseDir = init.baseDir;
    this.confFile = init.confFile;
    this.#ownsBaseDir = init.ownsBaseDir;
    this.commandLine = init.commandLine;
    this.spawnedAt = init.spawnedAt;
    this.#pumps = Promise.all([this.#pump(child.stdout), this.#pump(child.stderr)]).then(() => {});
    this.#status = child.status.then((status) => {
      this.#exited = status;
      return status;
    });
  }

  /** Prepares the base dir and agent.conf and spawns the agent; does not wait for it to connect. */
  static async start(options: AgentProcessOptions): Promise<AgentProcess> {
    const ownsBaseDir = options.baseDir === undefined;
    const baseDir = options.baseDir ?? await Deno.makeTempDir({ prefix: "dcm-agent-test-" });
    try {
      for (const sub of ["bin", "etc", "logs", "tmp"]) {
        await Deno.mkdir(`${baseDir}/${sub}`, { recursive: true });
      }
      await Deno.mkdir(`${baseDir}/secure`, { recursive: true, mode: 0o700 });
      // mkdir's mode is filtered by the umask and ignored for an existing dir.
      await Deno.chmod(`${baseDir}/secure`, 0o700);
      const conf = mergeConf(defaultAgentConf(baseDir, options.managerUrl), options.conf);
      const confFile = `${baseDir}/etc/agent.conf`;
      await Deno.writeTextFile(confFile, renderIni(conf));

      const entry = options.entry ?? Deno.env.get("DCM_AGENT_TEST_ENTRY") ?? "main.ts";
      const entryPath = entry.startsWith("/") ? entry : `${REPO_ROOT}/${entry}`;
      try {
        await Deno.stat(entryPath);
      } catch {
        throw new Error(`the agent entry point ${entryPath} does not exist`);
      }
      // A bundle must not pick up deno.json or reach for the network, as in production.
      const flags = entry.endsWith(".js")
        ? ["--no-config", "--cached-only"]
        : options.noConfig
        ? ["--no-config"]
        : [];
      const args = ["run", "-A", ...AGENT_RUNTIME_FLAGS, ...flags, entry, "run", "-c", confFile];
      const spawnedAt = performance.now();
      const child = new Deno.Command(Deno.execPath(), {
        args,
        cwd: REPO_ROOT,
        env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1", ...(options.env ?? {}) },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        detached: true,
      }).spawn();
      const agent = new AgentProcess(child, {
        baseDir,
        confFile,
        ownsBaseDir,
        commandLine: `deno ${args.join(" ")}`,
        spawnedAt,
      });
      live.add(agent);
      installUnloadHook();
      return agent;
    } catch (err) {
      if (ownsBaseDir) await Deno.remove(baseDir, { recursive: true }).catch(() => {});
      throw err;
    }
  }

  /** Captured stdout and stderr so far (the oldest part is cut beyond 1 MiB). */
  output(): string {
    return this.#dropped > 0
      ? `[... ${this.#dropped} earlier characters dropped ...]\n${this.#output}`
      : this.#output;
  }

  /** The exit status once the agent has exited, else undefined. */
  get exitStatus(): Deno.CommandStatus | undefined {
    return this.#exited;
  }

  /** Sends a signal (default SIGTERM) to the agent's whole process group; no-op once it is gone. */
  kill(signal: Deno.Signal = "SIGTERM"): void {
    try {
      Deno.kill(-this.pid, signal);
    } catch {
      // The group is already gone (ESRCH): nothing to do.
    }
  }

  /** Resolves with `promise`, or rejects with {@linkcode AgentExitedError} if the agent exits first. */
  async whileRunning<T>(promise: Promise<T>, what: string): Promise<T> {
    const died = this.wait().then((status) => {
      const how = status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
      const tail = this.output().trimEnd().split("\n").slice(-20).join("\n");
      throw new AgentExitedError(
        `the agent exited (${how}) while ${what}; its last output:\n${tail}`,
      );
    });
    // The loser of the race must not surface later as an unhandled rejection.
    died.catch(() => {});
    return await Promise.race([promise, died]);
  }

  /** Resolves with the exit status when the agent exits. */
  wait(): Promise<Deno.CommandStatus> {
    return this.#status;
  }

  /** Graceful stop: SIGTERM to the agent, SIGKILL to its group after 10 s; leftovers are killed. */
  async stop(): Promise<Deno.CommandStatus> {
    if (this.#exited === undefined) {
      try {
        // Only the agent itself: a graceful shutdown lets it deal with its own children.
        Deno.kill(this.pid, "SIGTERM");
      } catch {
        // Already exited.
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const grace = new Promise<"timeout">((resolve) => {
        timer = setTimeout(() => resolve("timeout"), STOP_GRACE_MS);
      });
      const first = await Promise.race([this.#status, grace]);
      clearTimeout(timer);
      if (first === "timeout") this.kill("SIGKILL");
    }
    const status = await this.#status;
    await this.#reap();
    return status;
  }

  /** Kills the process group if needed, waits for it, and removes the base dir if start() made it. */
  async cleanup(): Promise<void> {
    if (this.#exited === undefined) this.kill("SIGKILL");
    await this.#status;
    await this.#reap();
    if (this.#ownsBaseDir) await Deno.remove(this.baseDir, { recursive: true }).catch(() => {});
  }

  /** Same as cleanup() (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.cleanup();
  }

  /** Kills stray members of the group (scripts the agent left behind) and drains the pipes. */
  async #reap(): Promise<void> {
    this.kill("SIGKILL");
    live.delete(this);
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((resolve) => {
      timer = setTimeout(() => resolve("late"), 2000);
    });
    const r = await Promise.race([this.#pumps, late]);
    clearTimeout(timer);
    if (r === "late") {
      // A descendant that left the group still holds a pipe open: stop reading it.
      await Promise.allSettled(this.#readers.map((r) => r.cancel()));
      await this.#pumps;
    }
  }

  async #pump(stream: ReadableStream<Uint8Array>): Promise<void> {
    const decoder = new TextDecoder();
    const reader = stream.getReader();
    this.#readers.push(reader);
    try {
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        this.#append(decoder.decode(value, { stream: true }));
      }
      this.#append(decoder.decode());
    } catch {
      // The reader was cancelled by #reap.
    } finally {
      reader.releaseLock();
    }
  }

  #append(text: string): void {
    if (text === "") return;
    this.#output += text;
    if (this.#output.length > OUTPUT_LIMIT_CHARS) {
      const cut = this.#output.length - OUTPUT_LIMIT_CHARS;
      this.#output = this.#output.slice(cut);
      this.#dropped += cut;
    }
  }
}

function installUnloadHook(): void {
  if (unloadHookInstalled) return;
  unloadHookInstalled = true;
  // Runs on a normal exit or Deno.exit(): kill agents a caller forgot, synchronously.
  globalThis.addEventListener("unload", killAllAgents);
}
