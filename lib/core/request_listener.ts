/**
 * The request listener (spec 1.5-1.7): turns incoming frames into journalled,
 * at-most-once command executions and makes sure every reply reaches the
 * manager. It knows the journal, the plugin table and a `Transport`; it does
 * not know websockets.
 *
 * Memory stays bounded: only requests being worked on and replies awaiting an
 * ACK are held (ids and timers, not payloads), capped by `max_at_once` or,
 * when that is -1, by MAX_OUTSTANDING.
 */
import { getLogger } from "../logging/mod.ts";
import { CONSOLE_CATEGORY } from "../logging/mod.ts";
import type { AgentConfig } from "../config/mod.ts";
import type { CommandContext, CommandServices, Execution } from "./command.ts";
import { executeCommand } from "./dispatch.ts";
import { ArgumentError, parseArguments } from "../protocol/mod.ts";
import { type JobRow, Journal, type RequestRow } from "./journal.ts";
import { JobTable, publicView } from "./jobs.ts";
import type { PluginEntry, PluginTable } from "./plugin_conf.ts";
import { WorkerPool } from "./worker_pool.ts";
import {
  ackFrame,
  type Envelope,
  errorReply,
  type IncomingMessage,
  type LogLevel,
  makeReply,
  MessageIds,
  nackFrame,
  parseFrame,
  replyFrame,
  type ReplyPayload,
  type RequestMessage,
  statusFrame,
} from "../protocol/mod.ts";

const log = getLogger(["dcm", "agent", "messaging"]);
const consoleLog = getLogger(CONSOLE_CATEGORY);

/** Outstanding requests allowed when `[messaging] max_at_once` is -1. */
const MAX_OUTSTANDING = 10000;

/** How the listener sends frames. */
export interface Transport {
  /** Sends a frame if the connection is open; returns false otherwise. */
  send(frame: Record<string, unknown>): boolean;
  isOpen(): boolean;
}

/** Options for {@linkcode RequestListener}. */
export interface ListenerOptions {
  config: AgentConfig;
  journal: Journal;
  plugins: () => PluginTable;
  transport: Transport;
  /** The agentID of the current session, or null before the first handshake. */
  agentId: () => string | null;
  /** Services for commands; `jobs` is provided by the listener. */
  services: Omit<CommandServices, "jobs">;
  /** Called for HEMLOCK: the agent must die at once. */
  onHemlock: () => void;
}

interface InFlight {
  command: string;
  abort: AbortController;
  cancelled: boolean;
  /** The manager NACKed while the command ran: store the reply, do not send it. */
  nacked: boolean;
}

interface Awaiting {
  messageId: string;
  due: number;
}

/** Handles every post-handshake frame and owns reply delivery. */
export class RequestListener {
  readonly jobs: JobTable;
  #o: ListenerOptions;
  #ids = new MessageIds();
  #inflight = new Map<string, InFlight>();
  #awaiting = new Map<string, Awaiting>();
  #normal: WorkerPool;
  #long: WorkerPool;
  #services: CommandServices;
  #timer: ReturnType<typeof setInterval> | undefined;
  /** Workers promised to accepted requests whose rows are still committing. */
  #reserved = 0;
  /** Aborts of the long jobs running now (jobs outlive their request's REPLY). */
  #jobAborts = new Set<AbortController>();
  /** The same aborts by request id: a CANCEL of a long job's request stops the job. */
  #jobAbortsByRequest = new Map<string, AbortController>();
  #accepting = true;

  constructor(options: ListenerOptions) {
    this.#o = options;
    this.jobs = new JobTable(options.journal);
    this.#services = { ...options.services, jobs: this.jobs };
    this.#normal = new WorkerPool(options.config.workers.count);
    this.#long = new WorkerPool(options.config.workers.long_runner_threads);
  }

  /** Recovers the journal after a restart and starts the retransmission timer. */
  async start(): Promise<void> {
    const { journal } = this.#o;
    const recovery = journal.recover();
    if (recovery.lost > 0) {
      log.warn(
        "{n} command(s) were running when the agent stopped; they get a 'lost' reply and are not run again",
        { n: recovery.lost },
      );
    }
    for (const row of journal.pendingReplies()) {
      this.#awaiting.set(row.requestId, {
        messageId: row.replyMessageId ?? this.#ids.next(),
        due: 0,
      });
    }
    for (const row of recovery.notStarted) this.#resume(row);
    for (const job of await this.jobs.recover()) {
      const entry = this.#o.plugins().find(job.command);
      if (!entry) continue;
      log.info("resuming job {id} ({command}) that had not started before the restart", {
        id: job.job_id,
        command: job.command,
      });
      this.#queueJob(entry, job);
    }
    this.#armTimer();
  }

  /** Applies changed settings (SIGHUP). */
  reconfigure(config: AgentConfig): void {
    this.#o.config = config;
    this.#normal.resize(config.workers.count);
    this.#long.resize(config.workers.long_runner_threads);
    this.#armTimer();
  }

  /** Called when the connection becomes OPEN: push every unacknowledged reply now. */
  onOpen(): void {
    for (const a of this.#awaiting.values()) a.due = 0;
    this.#retransmit();
  }

  /** Handles one incoming text frame; never throws. */
  handleFrame(text: string): void {
    const parsed = parseFrame(text);
    if (!parsed.ok) {
      log.warn("rejected a malformed message: {error}", { error: parsed.error });
      this.#nack(parsed.requestId, parsed.error);
      return;
    }
    try {
      this.#dispatch(parsed.message);
    } catch (err) {
      log.error("failed to handle {type} for {id}: {error}", {
        type: parsed.message.type,
        id: parsed.message.request_id,
        error: (err as Error).message,
      });
      this.#nack(
        parsed.message.request_id,
        `the agent could not handle the message: ${(err as Error).message}`,
      );
    }
  }

  #dispatch(msg: IncomingMessage): void {
    const id = msg.request_id;
    switch (msg.type) {
      case "HEMLOCK":
        log.warn("HEMLOCK received: the agent kills itself now");
        this.#o.onHemlock();
        return;
      case "ALERT_ACK":
        return; // Intrusion-detection alerts are not sent by this agent.
      case "REQUEST":
        this.#onRequest(msg);
        return;
      case "ACK":
      case "NACK":
        this.#onReplyAck(id, msg.type);
        return;
      case "CANCEL":
        this.#onCancel(id);
        return;
      case "STATUS":
        this.#onStatus(id);
        return;
    }
  }

  #onRequest(msg: RequestMessage): void {
    const id = msg.request_id;
    if (this.#inflight.has(id)) {
      this.#send(ackFrame(this.#env(id), "request_received"));
      return;
    }
    if (this.#awaiting.has(id)) {
      this.#resendStoredReply(id, this.#o.journal.get(id));
      return;
    }
    const row = this.#o.journal.get(id);
    if (row) {
      this.#answerKnownRequest(row);
      return;
    }
    if (!this.#accepting) return; // Shutting down: the manager retransmits to the next agent.
    const entry = this.#o.plugins().find(msg.payload.command);
    if (!entry) {
      this.#nack(
        id,
        `the command '${msg.payload.command}' is not known to this agent (plugin.conf: ${this.#o.plugins().source})`,
      );
      return;
    }
    const limit = this.#o.config.messaging.max_at_once;
    const cap = limit > -1 ? limit : MAX_OUTSTANDING;
    if (this.#inflight.size + this.#awaiting.size >= cap) {
      const text = `the agent can only handle ${cap} commands at once; retry later`;
      consoleLog.fatal("The agent is overloaded: {text}", { text, requestId: id });
      this.#nack(id, text);
      return;
    }
    this.#inflight.set(id, newFlight(entry.name));
    const execution = executionOf(entry, msg.payload.longer_runner);
    const readOnly = entry.module.readOnly && execution !== "long";
    // A command with side effects is marked started in the same commit when it
    // will start right away; one that waits for a worker is marked when it starts.
    const startsNow = !readOnly && execution !== "long" &&
      (execution === "immediate" || this.#normal.freeWorkers > this.#reserved);
    const reserves = startsNow && execution === "normal";
    if (reserves) this.#reserved++;
    const committed = this.#o.journal.insertAcked(id, msg, {
      agentId: this.#o.agentId(),
      started: startsNow,
    });
    committed.then(
      () => this.#send(ackFrame(this.#env(id))),
      (err) => {
        this.#inflight.delete(id);
        log.error("could not journal request {id}: {error}", { id, error: (err as Error).message });
        this.#nack(id, `the agent could not record the request: ${(err as Error).message}`);
      },
    );
    const args = msg.payload.arguments;
    if (readOnly) {
      // Nothing to protect: run while the row commits, so ACK and REPLY share one commit.
      this.#submit(id, execution, () => this.#execute(id, entry, args, false));
      return;
    }
    committed.then(() => {
      if (reserves) this.#reserved--;
      if (execution === "long") void this.#acceptJob(id, entry, args);
      else this.#submit(id, execution, () => this.#execute(id, entry, args, !startsNow));
    }, () => {
      if (reserves) this.#reserved--; // NACKed above
    });
  }

  /** A REQUEST for a request the journal knows but memory does not. */
  #answerKnownRequest(row: RequestRow): void {
    switch (row.state) {
      case "NACKED":
        this.#nack(row.requestId, `${row.requestId} was already rejected`, "request_received");
        return;
      case "ACKED":
        // Only possible for a row that start-up recovery is about to run.
        this.#send(ackFrame(this.#env(row.requestId), "request_received"));
        return;
      default:
        this.#resendStoredReply(row.requestId, row);
    }
  }

  #resendStoredReply(id: string, row: RequestRow | undefined): void {
    this.#send(replyFrame(this.#env(id), storedReply(row)));
  }

  #submit(id: string, execution: Execution, run: () => Promise<void>): void {
    if (execution === "immediate") void run();
    else this.#normal.submit({ id, run });
  }

  /** Re-runs a request that was ACKed but provably never started before a restart. */
  #resume(row: RequestRow): void {
    // The stored document is the REQUEST as received (possibly by the original agent).
    const doc = row.requestDoc as Partial<RequestMessage> | null;
    const entry = doc?.payload?.command ? this.#o.plugins().find(doc.payload.command) : undefined;
    const id = row.requestId;
    this.#inflight.set(id, newFlight(entry?.name ?? "unknown"));
    if (!entry) {
      void this.#finish(
        id,
        errorReply("the command of this request is no longer offered by the agent"),
      );
      return;
    }
    log.info(
      "running request {id} ({command}) that was accepted but had not started before the restart",
      { id, command: entry.name },
    );
    const args = doc?.payload?.arguments ?? {};
    const execution = executionOf(entry, doc?.payload?.longer_runner);
    if (execution === "long") void this.#acceptJob(id, entry, args);
    else this.#submit(id, execution, () => this.#execute(id, entry, args, true));
  }

  /** Runs a command in a worker; the reply is stored and sent after the worker is free again. */
  async #execute(
    id: string,
    entry: PluginEntry,
    args: Record<string, unknown>,
    markStart: boolean,
  ): Promise<void> {
    const flight = this.#inflight.get(id);
    if (!flight) return;
    if (flight.cancelled) {
      // Cancelled while its row was committing, before it reached the pool.
      void this.#finish(id, cancelledBeforeStart());
      return;
    }
    if (markStart) {
      try {
        await this.#o.journal.markStarted(id);
      } catch (err) {
        void this.#finish(
          id,
          errorReply(
            `the agent could not record the start of the command: ${(err as Error).message}`,
          ),
        );
        return;
      }
    }
    consoleLog.info("Job {name} started", { name: entry.name, requestId: id });
    let reply = await executeCommand(entry.module, args, this.#context(id, flight.abort.signal));
    if (flight.cancelled) {
      reply = makeReply(1, {
        message: reply.message,
        error_message: "the command was cancelled by the manager",
      });
    }
    if (reply.return_code === 0) {
      consoleLog.info("Job {name} succeeded", { name: entry.name, requestId: id });
    } else consoleLog.error("Job {name} failed", { name: entry.name, requestId: id });
    void this.#finish(id, reply);
  }

  /** Long runner: validate, create the job, reply with its description at once, then queue it. */
  async #acceptJob(id: string, entry: PluginEntry, args: Record<string, unknown>): Promise<void> {
    try {
      parseArguments(entry.module.args, args);
    } catch (err) {
      const text = err instanceof ArgumentError ? err.message : String(err);
      await this.#finish(id, errorReply(text));
      return;
    }
    // A restart may have come between creating the job and replying: reply with
    // that job; start-up recovery has already queued it if it had not started.
    const existing = this.jobs.forRequest(id);
    const job = existing ?? await this.jobs.create(id, {
      command: entry.name,
      arguments: args,
      customerId: this.#services.host.customerId(),
    });
    await this.#finish(
      id,
      makeReply(0, { reply_type: "job_description", reply_object: publicView(job) }),
    );
    if (!existing) this.#queueJob(entry, job);
  }

  #queueJob(entry: PluginEntry, job: JobRow): void {
    this.#long.submit({ id: `job:${job.job_id}`, run: () => this.#runJob(entry, job) });
  }

  async #runJob(entry: PluginEntry, job: JobRow): Promise<void> {
    await this.jobs.markRunning(job);
    const abort = new AbortController();
    this.#jobAborts.add(abort);
    this.#jobAbortsByRequest.set(job.requestId, abort);
    try {
      const ctx = this.#context(job.requestId, abort.signal);
      await this.jobs.finish(job, await executeCommand(entry.module, job.arguments, ctx));
    } finally {
      this.#jobAborts.delete(abort);
      this.#jobAbortsByRequest.delete(job.requestId);
    }
  }

  #context(id: string, signal: AbortSignal): CommandContext {
    const ctx: CommandContext = {
      requestId: id,
      config: this.#o.config,
      signal,
      log: {
        detail: (line) => consoleLog.debug("{line}", { line, requestId: id }),
        console: (level, message) => logAt(level, message, id),
      },
      services: this.#services,
      invoke: (command, args) => {
        const entry = this.#o.plugins().find(command);
        if (!entry) return Promise.resolve(errorReply(`the command '${command}' is not available`));
        return executeCommand(entry.module, args, ctx);
      },
    };
    return ctx;
  }

  /** Persists a reply, then sends it and keeps retransmitting it until ACK/NACK. */
  async #finish(id: string, reply: ReplyPayload): Promise<void> {
    const flight = this.#inflight.get(id);
    if (!flight) return; // The request was never journalled (its insert failed and was NACKed).
    const messageId = this.#ids.next();
    const nacked = flight.nacked;
    try {
      await this.#o.journal.storeReply(id, reply, {
        messageId,
        state: nacked ? "REPLY_NACKED" : "REPLY",
      });
    } catch (err) {
      // Never leave the manager waiting for ever: send it, though it is not durable.
      log.error("could not journal the reply of {id}: {error}", {
        id,
        error: (err as Error).message,
      });
    }
    this.#inflight.delete(id);
    if (nacked) return;
    this.#awaiting.set(id, { messageId, due: Date.now() + this.#retransmitMs() });
    this.#send(replyFrame(this.#env(id, messageId), reply));
  }

  #onReplyAck(id: string, type: "ACK" | "NACK"): void {
    if (this.#awaiting.delete(id)) {
      this.#o.journal.setReplyState(id, type === "ACK" ? "REPLY_ACKED" : "REPLY_NACKED").catch((
        err,
      ) =>
        log.error("could not record the {type} of {id}: {error}", {
          type,
          id,
          error: (err as Error).message,
        })
      );
      return;
    }
    const flight = this.#inflight.get(id);
    if (flight) {
      if (type === "NACK") {
        log.warn(
          "the manager rejected request {id} while it runs; its reply will be kept but not sent",
          { id },
        );
        flight.nacked = true;
      } else {
        this.#nack(id, `the event REPLY_ACK is not valid when in state ACKED`, "request_received");
      }
      return;
    }
    if (this.#o.journal.get(id)) return; // A late duplicate for a finished request: nothing to do.
    this.#nack(id, `${id} is an unknown ID`);
  }

  #onCancel(id: string): void {
    const flight = this.#inflight.get(id);
    const job = this.#jobAbortsByRequest.get(id);
    if (!flight && job) {
      // The job's REPLY (its description) is sent; its outcome reaches get_job_description.
      log.info("cancelling the running job of request {id}", { id });
      job.abort(new Error("cancelled by the manager"));
      return;
    }
    if (!flight) {
      if (!this.#o.journal.get(id)) this.#nack(id, `${id} is an unknown ID`);
      return; // Cancelling a finished request is harmless.
    }
    log.info("cancelling request {id} ({command})", { id, command: flight.command });
    flight.cancelled = true;
    if (this.#normal.withdraw(id)) {
      void this.#finish(id, cancelledBeforeStart());
      return;
    }
    flight.abort.abort(new Error("cancelled by the manager"));
  }

  #onStatus(id: string): void {
    if (this.#inflight.has(id)) {
      this.#send(statusFrame(this.#env(id), "ACKED", null));
      return;
    }
    const row = this.#o.journal.get(id);
    if (!row) {
      this.#nack(id, `${id} is an unknown ID`);
      return;
    }
    this.#send(statusFrame(this.#env(id), row.state, row.reply));
  }

  #retransmitMs(): number {
    return this.#o.config.messaging.retransmission_timeout * 1000;
  }

  #armTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    const every = Math.max(20, Math.min(1000, this.#retransmitMs() / 4));
    this.#timer = setInterval(() => this.#retransmit(), every);
  }

  #retransmit(): void {
    if (!this.#o.transport.isOpen() || this.#awaiting.size === 0) return;
    const now = Date.now();
    for (const [id, a] of this.#awaiting) {
      if (a.due > now) continue;
      const row = this.#o.journal.get(id);
      if (!row || row.state !== "REPLY") {
        this.#awaiting.delete(id);
        continue;
      }
      if (!this.#send(replyFrame(this.#env(id, a.messageId), storedReply(row)))) return;
      a.due = now + this.#retransmitMs();
    }
  }

  /** The envelope of a frame about `id`; a new message id unless a retransmission gives one. */
  #env(id: string, messageId = this.#ids.next()): Envelope {
    return { message_id: messageId, request_id: id, agent_id: this.#o.agentId() };
  }

  #nack(id: string, error: string, entity?: string): void {
    this.#send(nackFrame(this.#env(id), error, entity));
  }

  #send(frame: Record<string, unknown>): boolean {
    return this.#o.transport.send(frame);
  }

  /** Number of requests being worked on and replies awaiting an ACK. */
  get outstanding(): { running: number; awaitingAck: number } {
    return { running: this.#inflight.size, awaitingAck: this.#awaiting.size };
  }

  /**
   * Graceful stop: accept nothing new, let running commands finish for
   * `graceMs`, then cancel them so their (cancelled) replies are journalled.
   */
  async stop(graceMs: number): Promise<void> {
    this.#accepting = false;
    const drained = Promise.all([this.#normal.drain(), this.#long.drain()]);
    if (!await settlesWithin(drained, graceMs)) {
      log.warn("{n} command(s) still running after the shutdown grace period; stopping them", {
        n: this.#inflight.size + this.#jobAborts.size,
      });
      const why = new Error("the agent is shutting down");
      for (const f of this.#inflight.values()) f.abort.abort(why);
      for (const a of this.#jobAborts) a.abort(why);
      await settlesWithin(drained, 5000);
    }
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Whether `p` settles within `ms`; the timer is cleared either way so it cannot hold the process. */
async function settlesWithin(p: Promise<unknown>, ms: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p.then(() => true),
      new Promise<boolean>((r) => timer = setTimeout(() => r(false), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

function cancelledBeforeStart(): ReplyPayload {
  return makeReply(1, {
    error_message: "the command was cancelled by the manager before it started",
  });
}

/** A row's stored reply; a row whose reply_doc cannot be read still gets an answer. */
function storedReply(row: RequestRow | undefined): ReplyPayload {
  return row?.reply ?? makeReply(1, { error_message: "the stored reply could not be read" });
}

function newFlight(command: string): InFlight {
  return { command, abort: new AbortController(), cancelled: false, nacked: false };
}

/** The execution class; the payload's `longer_runner` overrides plugin.conf (spec 2.0). */
function executionOf(entry: PluginEntry, longer: unknown): Execution {
  if (longer === undefined) return entry.execution;
  if (
    longer === true || longer === 1 ||
    (typeof longer === "string" && /^(true|yes|1)$/i.test(longer))
  ) return "long";
  return entry.execution === "long" ? "normal" : entry.execution;
}

function logAt(level: LogLevel, message: string, requestId: string): void {
  const props = { message, requestId };
  switch (level) {
    case "DEBUG":
      return consoleLog.debug("{message}", props);
    case "INFO":
      return consoleLog.info("{message}", props);
    case "WARNING":
      return consoleLog.warn("{message}", props);
    case "ERROR":
      return consoleLog.error("{message}", props);
    case "CRITICAL":
      return consoleLog.fatal("{message}", props);
  }
}
