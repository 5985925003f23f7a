/**
 * Running accepted requests: the worker pools (normal and long runners), the
 * start marks that make "at most once" hold across a crash, long-running jobs,
 * and the context each command runs with. Every outcome goes to reply delivery
 * (reply_delivery.ts); nothing here sends a frame itself.
 */
import { CONSOLE_CATEGORY, getLogger } from "../logging/mod.ts";
import type { AgentConfig } from "../config/mod.ts";
import type { CommandContext, CommandServices, Execution } from "./command.ts";
import { executeCommand } from "./dispatch.ts";
import {
  ArgumentError,
  errorReply,
  type LogLevel,
  makeReply,
  parseArguments,
  type ReplyPayload,
  type RequestMessage,
} from "../protocol/mod.ts";
import type { JobRow, RequestRow } from "./journal.ts";
import { JobTable, publicView } from "./jobs.ts";
import type { PluginEntry } from "./plugin_conf.ts";
import { WorkerPool } from "./worker_pool.ts";
import { failureReason, type ListenerState, newFlight } from "./listener_state.ts";
import type { ReplyDelivery } from "./reply_delivery.ts";

const log = getLogger(["dcm", "agent", "messaging"]);
const consoleLog = getLogger(CONSOLE_CATEGORY);

/** How an admitted request will run, decided before its row is journalled. */
export interface RunPlan {
  execution: Execution;
  /** Read-only and not long: runs while its row commits. */
  readOnly: boolean;
  /** Marked started in the same commit as its row (it gets a worker at once). */
  startsNow: boolean;
  /** Holds one of the reserved normal workers until its row is committed. */
  reserves: boolean;
}

/** Runs commands and jobs in worker pools and hands their replies to delivery. */
export class RequestRunner {
  readonly jobs: JobTable;
  #s: ListenerState;
  #delivery: ReplyDelivery;
  #normal: WorkerPool;
  #long: WorkerPool;
  #services: CommandServices;
  /** Workers promised to accepted requests whose rows are still committing. */
  #reserved = 0;
  /** Aborts of the long jobs running now (jobs outlive their request's REPLY). */
  #jobAborts = new Set<AbortController>();
  /** The same aborts by request id: a CANCEL of a long job's request stops the job. */
  #jobAbortsByRequest = new Map<string, AbortController>();

  constructor(state: ListenerState, delivery: ReplyDelivery) {
    const { options } = state;
    this.#s = state;
    this.#delivery = delivery;
    this.jobs = new JobTable(options.journal);
    this.#services = { ...options.services, jobs: this.jobs };
    this.#normal = new WorkerPool(options.config.workers.count);
    this.#long = new WorkerPool(options.config.workers.long_runner_threads);
  }

  /** Applies changed pool sizes (SIGHUP). */
  reconfigure(config: AgentConfig): void {
    this.#normal.resize(config.workers.count);
    this.#long.resize(config.workers.long_runner_threads);
  }

  /**
   * Decides how a newly admitted request runs. A command with side effects is
   * marked started in the same commit when it will start right away; one that
   * waits for a worker is marked when it starts.
   */
  plan(entry: PluginEntry, longerRunner: unknown): RunPlan {
    const execution = executionOf(entry, longerRunner);
    const readOnly = entry.module.readOnly && execution !== "long";
    const startsNow = !readOnly && execution !== "long" &&
      (execution === "immediate" || this.#normal.freeWorkers > this.#reserved);
    const reserves = startsNow && execution === "normal";
    if (reserves) this.#reserved++;
    return { execution, readOnly, startsNow, reserves };
  }

  /** Schedules an admitted request once its row is `committed` (a read-only one at once). */
  schedule(
    id: string,
    entry: PluginEntry,
    options: { args: Record<string, unknown>; plan: RunPlan; committed: Promise<void> },
  ): void {
    const { args, plan, committed } = options;
    const { execution, reserves, startsNow } = plan;
    if (plan.readOnly) {
      // Nothing to protect: run while the row commits, so ACK and REPLY share one commit.
      this.#submit(id, execution, () => this.#execute(id, entry, args, false));
      return;
    }
    committed.then(() => {
      if (reserves) this.#reserved--;
      if (execution === "long") void this.#acceptJob(id, entry, args);
      else this.#submit(id, execution, () => this.#execute(id, entry, args, !startsNow));
    }, () => {
      if (reserves) this.#reserved--; // NACKed by admission
    });
  }

  /**
   * Stops the running long job of request `id`; false if there is none. The job's REPLY (its
   * description) is already sent: its outcome reaches get_job_description.
   */
  cancelJob(id: string): boolean {
    const abort = this.#jobAbortsByRequest.get(id);
    if (!abort) return false;
    abort.abort(new Error("cancelled by the manager"));
    return true;
  }

  /** Takes a request that waits for a worker out of the queue; true if it was queued. */
  withdraw(id: string): boolean {
    return this.#normal.withdraw(id);
  }

  /** Re-runs a request that was ACKed but provably never started before a restart. */
  resume(row: RequestRow): void {
    // The stored document is the REQUEST as received (possibly by the original agent).
    const doc = row.requestDoc as Partial<RequestMessage> | null;
    const entry = doc?.payload?.command
      ? this.#s.options.plugins().find(doc.payload.command)
      : undefined;
    const id = row.requestId;
    this.#s.inflight.set(id, newFlight(entry?.name ?? "unknown"));
    if (!entry) {
      void this.#delivery.finish(
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

  /** Queues a job found not started after a restart. */
  queueJob(entry: PluginEntry, job: JobRow): void {
    this.#long.submit({ id: `job:${job.job_id}`, run: () => this.#runJob(entry, job) });
  }

  /** Resolves when both pools are idle. */
  drain(): Promise<unknown> {
    return Promise.all([this.#normal.drain(), this.#long.drain()]);
  }

  /** Number of long jobs running now. */
  get runningJobs(): number {
    return this.#jobAborts.size;
  }

  /** Aborts every running command and job (end of the shutdown grace period). */
  abortAll(why: Error): void {
    for (const f of this.#s.inflight.values()) f.abort.abort(why);
    for (const a of this.#jobAborts) a.abort(why);
  }

  #submit(id: string, execution: Execution, run: () => Promise<void>): void {
    if (execution === "immediate") void run();
    else this.#normal.submit({ id, run });
  }

  /** Runs a command in a worker; the reply is stored and sent after the worker is free again. */
  async #execute(
    id: string,
    entry: PluginEntry,
    args: Record<string, unknown>,
    markStart: boolean,
  ): Promise<void> {
    const flight = this.#s.inflight.get(id);
    if (!flight) return;
    if (flight.cancelled) {
      // Cancelled while its row was committing, before it reached the pool.
      void this.#delivery.finish(id, cancelledBeforeStart());
      return;
    }
    if (markStart) {
      try {
        await this.#s.options.journal.markStarted(id);
      } catch (err) {
        void this.#delivery.finish(
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
    void this.#delivery.finish(id, reply);
  }

  /** Long runner: validate, create the job, reply with its description at once, then queue it. */
  async #acceptJob(id: string, entry: PluginEntry, args: Record<string, unknown>): Promise<void> {
    try {
      parseArguments(entry.module.args, args);
    } catch (err) {
      const text = err instanceof ArgumentError ? err.message : String(err);
      await this.#delivery.finish(id, errorReply(text));
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
    await this.#delivery.finish(
      id,
      makeReply(0, { reply_type: "job_description", reply_object: publicView(job) }),
    );
    if (!existing) this.queueJob(entry, job);
  }

  async #runJob(entry: PluginEntry, job: JobRow): Promise<void> {
    await this.jobs.markRunning(job);
    const abort = new AbortController();
    this.#jobAborts.add(abort);
    this.#jobAbortsByRequest.set(job.requestId, abort);
    try {
      const ctx = this.#context(job.requestId, abort.signal);
      const result = await executeCommand(entry.module, job.arguments, ctx);
      if (result.return_code !== 0) {
        log.warn("job {job} of request {id} ({command}) failed with return code {code}: {reason}", {
          job: job.job_id,
          id: job.requestId,
          command: entry.name,
          code: result.return_code,
          reason: failureReason(result.error_message),
          requestId: job.requestId,
        });
      }
      await this.jobs.finish(job, result);
    } finally {
      this.#jobAborts.delete(abort);
      this.#jobAbortsByRequest.delete(job.requestId);
    }
  }

  #context(id: string, signal: AbortSignal): CommandContext {
    const ctx: CommandContext = {
      requestId: id,
      config: this.#s.options.config,
      signal,
      log: {
        detail: (line) => consoleLog.debug("{line}", { line, requestId: id }),
        console: (level, message) => logAt(level, message, id),
      },
      services: this.#services,
      invoke: (command, args) => {
        const entry = this.#s.options.plugins().find(command);
        if (!entry) return Promise.resolve(errorReply(`the command '${command}' is not available`));
        return executeCommand(entry.module, args, ctx);
      },
    };
    return ctx;
  }
}

/** The reply of a request cancelled before its command started. */
export function cancelledBeforeStart(): ReplyPayload {
  return makeReply(1, {
    error_message: "the command was cancelled by the manager before it started",
  });
}

/** The execution class; the payload's `longer_runner` overrides plugin.conf. */
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
