/**
 * The request listener: turns incoming frames into journalled, at-most-once
 * command executions and makes sure every reply reaches the manager. It knows
 * the journal, the plugin table and a `Transport`; it does not know websockets.
 *
 * This is the public face and the wiring of its parts:
 * - request_admission.ts: where a frame enters (parse, journal, ACK/NACK,
 *   duplicates, CANCEL/STATUS/HEMLOCK);
 * - request_runner.ts: worker pools, commands and long jobs;
 * - reply_delivery.ts: REPLY, retransmission until acknowledged, replay after
 *   a restart;
 * - listener_state.ts: what they share (options, in-flight table, outbox).
 *
 * Memory stays bounded: only requests being worked on and replies awaiting an
 * ACK are held (ids and timers, not payloads), capped by `max_at_once` or,
 * when that is -1, by a fixed maximum.
 */
import { getLogger } from "../logging/mod.ts";
import type { AgentConfig } from "../config/mod.ts";
import type { JobTable } from "./jobs.ts";
import { type ListenerOptions, type ListenerState, Outbox } from "./listener_state.ts";
import { ReplyDelivery } from "./reply_delivery.ts";
import { RequestAdmission } from "./request_admission.ts";
import { RequestRunner } from "./request_runner.ts";

export type { ListenerOptions, Transport } from "./listener_state.ts";

const log = getLogger(["dcm", "agent", "messaging"]);

/** Handles every post-handshake frame and owns reply delivery. */
export class RequestListener {
  readonly jobs: JobTable;
  #s: ListenerState;
  #delivery: ReplyDelivery;
  #runner: RequestRunner;
  #admission: RequestAdmission;

  constructor(options: ListenerOptions) {
    this.#s = { options, inflight: new Map(), outbox: new Outbox(options) };
    this.#delivery = new ReplyDelivery(this.#s);
    this.#runner = new RequestRunner(this.#s, this.#delivery);
    this.#admission = new RequestAdmission(this.#s, {
      runner: this.#runner,
      delivery: this.#delivery,
    });
    this.jobs = this.#runner.jobs;
  }

  /** Recovers the journal after a restart and starts the retransmission timer. */
  async start(): Promise<void> {
    const { journal, plugins } = this.#s.options;
    const recovery = journal.recover();
    if (recovery.lost > 0) {
      log.warn(
        "{n} command(s) were running when the agent stopped; they get a 'lost' reply and are not run again",
        { n: recovery.lost },
      );
    }
    this.#delivery.restorePending();
    for (const row of recovery.notStarted) this.#runner.resume(row);
    for (const job of await this.jobs.recover()) {
      const entry = plugins().find(job.command);
      if (!entry) continue;
      log.info("resuming job {id} ({command}) that had not started before the restart", {
        id: job.job_id,
        command: job.command,
      });
      this.#runner.queueJob(entry, job);
    }
    this.#delivery.armTimer();
  }

  /** Applies changed settings (SIGHUP). */
  reconfigure(config: AgentConfig): void {
    this.#s.options.config = config;
    this.#runner.reconfigure(config);
    this.#delivery.armTimer();
  }

  /** Called when the connection becomes OPEN: push every unacknowledged reply now. */
  onOpen(): void {
    this.#delivery.onOpen();
  }

  /** Handles one incoming text frame; never throws. */
  handleFrame(text: string): void {
    this.#admission.handleFrame(text);
  }

  /** Number of requests being worked on and replies awaiting an ACK. */
  get outstanding(): { running: number; awaitingAck: number } {
    return { running: this.#s.inflight.size, awaitingAck: this.#delivery.size };
  }

  /**
   * Graceful stop: accept nothing new, let running commands finish for
   * `graceMs`, then cancel them so their (cancelled) replies are journalled.
   */
  async stop(graceMs: number): Promise<void> {
    this.#admission.stopAccepting();
    const drained = this.#runner.drain();
    if (!await settlesWithin(drained, graceMs)) {
      log.warn("{n} command(s) still running after the shutdown grace period; stopping them", {
        n: this.#s.inflight.size + this.#runner.runningJobs,
      });
      this.#runner.abortAll(new Error("the agent is shutting down"));
      await settlesWithin(drained, 5000);
    }
    this.#delivery.stopTimer();
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
