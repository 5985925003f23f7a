/**
 * The contract between the dispatcher and command modules. A command module
 * (one file in `commands/`) exports `defineCommand({...})`; it declares its
 * arguments once and receives converted values plus a context.
 */
import type { AgentConfig } from "../config/mod.ts";
import type { ArgSpec } from "../protocol/mod.ts";
import type { Accounts } from "../os/accounts/mod.ts";
import type { HostIdentity } from "../os/host_identity.ts";
import type { Volumes } from "../os/volumes/mod.ts";
import type { LogLevel, ReplyPayload } from "../protocol/mod.ts";

/** How a command runs (ARCHITECTURE.md, Command rules). */
export type Execution = "normal" | "long" | "immediate";

/** Console logging for a running command (becomes LOG frames, ARCHITECTURE.md, LOG frames). */
export interface CommandLog {
  /** A line the command or its script reported (DEBUG "job details"). */
  detail(line: string): void;
  /** A console event at the given level. */
  console(level: LogLevel, message: string): void;
}

/** The agent's persistent STARTING/RUNNING state (seen by heartbeat). */
export interface AgentStateStore {
  get(): string;
  set(state: string): void;
}

/** A long-running job as the manager sees it (ARCHITECTURE.md, Command rules). */
export interface JobDescription {
  customer_id: unknown;
  description: string;
  job_id: number;
  job_status: "WAITING" | "RUNNING" | "COMPLETE" | "ERROR";
  message: string | null;
  start_date: number;
  end_date: number | null;
  command_reply: ReplyPayload | null;
}

/** Looks up long-running jobs. */
export interface JobLookup {
  describe(jobId: number): JobDescription | undefined;
}

/** Options of a system-stat collector. */
export interface StatOptions {
  statType: string;
  statName: string;
  holdCount: number;
  checkInterval: number;
}

/** The registry of system-stat collectors. Methods throw Error with a clear text. */
export interface StatRegistryLike {
  init(options: StatOptions): void;
  get(statName: string): { replyType: string; samples: Record<string, number>[] };
  delete(statName: string): void;
}

/** Facts about this host and the manager session. */
export interface HostInfo {
  /** The agent's version string. */
  version: string;
  platformName: string;
  platformVersion: string;
  /** This host's IPv4 addresses, primary first, as `rename` chooses from them (ARCHITECTURE.md, Cloud metadata). */
  ipv4Addresses(): Promise<string[]>;
  /** customerId from the last successful handshake, or null. */
  customerId(): unknown;
}

/**
 * The OS adapters command families use, by name. Types only: each family
 * imports its adapter's code on first use, so an idle agent does not load it.
 */
export interface OsAdapters {
  accounts: Accounts;
  hostIdentity: HostIdentity;
  volumes: Volumes;
  /** The root the scrubber cleans for clean_image ("/" when unset). */
  scrubRoot: string;
}

/** The agent process itself, for the life-cycle commands (clean_image, terminate). */
export interface AgentControl {
  /** Deletes every journal row (requests and jobs) except those of `keepRequestId`. */
  clearJournal(keepRequestId: string): Promise<void>;
  /** Empties the agent's log files and deletes rotated ones; returns the files touched. */
  truncateLogs(): Promise<string[]>;
  /** Stops the agent's service once the REPLY to `requestId` is durable and acknowledged (or after a grace). */
  stopAfterReply(requestId: string): void;
}

/** Shared services a command may use; tests provide their own. */
export interface CommandServices {
  state: AgentStateStore;
  jobs: JobLookup;
  stats: StatRegistryLike;
  host: HostInfo;
  /** OS adapters handed in (tests: throw-away roots); a family creates a live one when unset. */
  adapters: Partial<OsAdapters>;
  /** The running agent; absent when a command runs outside one (unit tests). */
  agent?: AgentControl;
}

/** What a running command gets besides its arguments. */
export interface CommandContext {
  requestId: string;
  config: AgentConfig;
  /** Aborted when the command is cancelled or the agent shuts down for good. */
  signal: AbortSignal;
  log: CommandLog;
  services: CommandServices;
  /** Runs another command in-process (initialize runs rename and add_user). */
  invoke(command: string, args: Record<string, unknown>): Promise<ReplyPayload>;
}

type ArgValue<S extends ArgSpec> = S["type"] extends "str" | "user_name" | "base64_text" ? string
  : S["type"] extends "int" | "float" ? number
  : S["type"] extends "bool" ? boolean
  : S["type"] extends "list" ? unknown[]
  : S["type"] extends "dict" ? Record<string, unknown>
  : S["type"] extends "base64_bytes" ? Uint8Array
  : unknown;

/** Converted argument values of a command; optional ones may be null. */
export type ArgValues<A extends Record<string, ArgSpec>> = {
  [K in keyof A]: A[K]["required"] extends true ? ArgValue<A[K]> | null
    : A[K]["default"] extends undefined ? ArgValue<A[K]> | null
    : ArgValue<A[K]>;
};

/** A command the manager can ask for. */
export interface CommandModule {
  name: string;
  /** The plugin.conf section name when it is a pattern wider than the name (`unmount.*`). */
  pluginSection?: string;
  /** One line for `--help`-style listings. */
  description: string;
  args: Record<string, ArgSpec>;
  execution: Execution;
  /**
   * The command changes nothing on the system, so running it again is
   * harmless: it may start before its journal row is durable, which lets its
   * ACK and REPLY share one commit.
   */
  readOnly: boolean;
  /** Handshake features this command contributes (ARCHITECTURE.md, Handshake). */
  features?(config: AgentConfig): Record<string, unknown>;
  run(args: Record<string, unknown>, ctx: CommandContext): Promise<ReplyPayload>;
}

/** Definition accepted by {@linkcode defineCommand}. */
export interface CommandDefinition<A extends Record<string, ArgSpec>> {
  name: string;
  /** See {@linkcode CommandModule.pluginSection}. */
  pluginSection?: string;
  description: string;
  args: A;
  execution?: Execution;
  /** See {@linkcode CommandModule.readOnly}; default false. */
  readOnly?: boolean;
  features?(config: AgentConfig): Record<string, unknown>;
  run(args: ArgValues<A>, ctx: CommandContext): Promise<ReplyPayload>;
}

/** Declares a command with typed arguments. */
export function defineCommand<const A extends Record<string, ArgSpec>>(
  def: CommandDefinition<A>,
): CommandModule {
  return {
    name: def.name,
    pluginSection: def.pluginSection,
    description: def.description,
    args: def.args,
    execution: def.execution ?? "normal",
    readOnly: def.readOnly ?? false,
    features: def.features,
    run: (args, ctx) => def.run(args as ArgValues<A>, ctx),
  };
}
