/**
 * The SQLite request journal: the record of every request the agent accepted,
 * so that a command runs at most once across crashes and restarts. This module
 * holds the operations on requests, jobs and agent settings; the file's layout
 * and upgrade are in journal_schema.ts, durable batching in journal_writer.ts
 * and the row types in journal_rows.ts.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { ReplyPayload } from "../protocol/mod.ts";
import type { JobDescription } from "./command.ts";
import {
  type JobRow,
  lostReply,
  type Recovery,
  type RequestRow,
  type RequestState,
  SELECT_ROW,
  TERMINAL_SQL,
  timestamp,
  toJob,
  toRow,
} from "./journal_rows.ts";
import { type JournalOptions, openJournalDatabase, statementCache } from "./journal_schema.ts";
import { GroupCommitWriter } from "./journal_writer.ts";
import {
  JOURNAL_RESET_KEY,
  type JournalReset,
  openOrReplaceDamaged,
  parseJournalReset,
} from "./journal_recovery.ts";
import { AlertStore } from "./journal_alerts.ts";

export {
  type JobRow,
  lostReply,
  type Recovery,
  type RequestRow,
  type RequestState,
  timestamp,
} from "./journal_rows.ts";
export type { JournalOptions } from "./journal_schema.ts";
export type { JournalReset } from "./journal_recovery.ts";
export type { AlertStore, QueuedAlert } from "./journal_alerts.ts";

/** The request journal. */
export class Journal {
  #db: DatabaseSync;
  #stmt: (sql: string) => StatementSync;
  #writer: GroupCommitWriter;
  /** Intrusion-detection alerts waiting for the manager's ALERT_ACK. */
  readonly alerts: AlertStore;

  /** Set when a damaged journal was moved aside at this open and a fresh one started. */
  readonly reset: JournalReset | null;

  private constructor(db: DatabaseSync, reset: JournalReset | null = null) {
    this.#db = db;
    this.#stmt = statementCache(db);
    this.#writer = new GroupCommitWriter(db);
    this.reset = reset;
    this.alerts = new AlertStore(db, this.#writer);
  }

  /** Opens (and creates or upgrades) the journal at `file`; throws if it is damaged. */
  static open(file: string, options: JournalOptions = {}): Journal {
    return new Journal(openJournalDatabase(file, options));
  }

  /** Opens the agent's journal; a damaged one is moved aside and a fresh one started. */
  static openForAgent(file: string): Journal {
    const { db, reset } = openOrReplaceDamaged(file);
    return new Journal(db, reset);
  }

  /** The last time a damaged journal was replaced, as recorded in this journal. */
  lastReset(): JournalReset | null {
    return parseJournalReset(this.getValue(JOURNAL_RESET_KEY));
  }

  /**
   * Records a newly accepted request (state ACKED) before its ACK is sent.
   * `started` marks it as starting in the same commit, for a command that
   * starts as soon as the row is durable.
   */
  insertAcked(
    requestId: string,
    requestDoc: unknown,
    options: { agentId: string | null; started?: boolean },
  ): Promise<void> {
    return this.#writer.write(() => {
      const now = timestamp();
      this.#stmt(
        "INSERT INTO requests(request_id, creation_time, request_doc, reply_doc, state, agent_id, last_update_time, started) VALUES(?, ?, ?, NULL, 'ACKED', ?, ?, ?)",
      ).run(
        requestId,
        now,
        JSON.stringify(requestDoc),
        options.agentId,
        now,
        options.started ? 1 : 0,
      );
    });
  }

  /** Durably records that a command is about to start. */
  markStarted(requestId: string): Promise<void> {
    return this.#writer.write(() => {
      this.#stmt("UPDATE requests SET started = 1, last_update_time = ? WHERE request_id = ?")
        .run(timestamp(), requestId);
    });
  }

  /** Stores a command's reply (state REPLY, or REPLY_NACKED if the manager already rejected it). */
  storeReply(
    requestId: string,
    reply: ReplyPayload,
    options: { messageId: string; state?: "REPLY" | "REPLY_NACKED" },
  ): Promise<void> {
    return this.#writer.write(() => {
      const state = options.state ?? "REPLY";
      const doc = JSON.stringify(reply);
      const now = timestamp();
      const r = this.#stmt(
        "UPDATE requests SET state = ?, reply_doc = ?, reply_message_id = ?, last_update_time = ? WHERE request_id = ?",
      ).run(state, doc, options.messageId, now, requestId);
      if (r.changes === 0) {
        // The row is gone (purged by an operator or clean_image): keep the reply anyway.
        this.#stmt(
          "INSERT INTO requests(request_id, creation_time, request_doc, reply_doc, state, agent_id, last_update_time, started, reply_message_id) VALUES(?, ?, NULL, ?, ?, NULL, ?, 1, ?)",
        ).run(requestId, now, doc, state, now, options.messageId);
      }
    });
  }

  /**
   * Moves a replied request to REPLY_ACKED or REPLY_NACKED; the stored reply is
   * kept. Lazy: if a crash loses it, the reply is pushed again and re-acknowledged.
   */
  setReplyState(requestId: string, state: "REPLY_ACKED" | "REPLY_NACKED"): Promise<void> {
    return this.#writer.write(() => {
      this.#stmt("UPDATE requests SET state = ?, last_update_time = ? WHERE request_id = ?")
        .run(state, timestamp(), requestId);
    }, true);
  }

  /** Reads one request row, or undefined. */
  get(requestId: string): RequestRow | undefined {
    const r = this.#stmt(
      `${SELECT_ROW} WHERE request_id = ?`,
    ).get(requestId) as Record<string, unknown> | undefined;
    return r ? toRow(r) : undefined;
  }

  /** Rows in state REPLY (replies not yet acknowledged), oldest first. */
  pendingReplies(): RequestRow[] {
    return (this.#stmt(
      `${SELECT_ROW} WHERE state = 'REPLY' ORDER BY last_update_time`,
    ).all() as Record<string, unknown>[]).map(toRow);
  }

  /** Start-up recovery: started ACKED rows become "lost" replies; never-started ones are returned. */
  recover(): Recovery {
    const acked = (this.#stmt(
      `${SELECT_ROW} WHERE state = 'ACKED' ORDER BY creation_time`,
    ).all() as Record<string, unknown>[]).map(toRow);
    const lost = acked.filter((r) => r.started);
    if (lost.length) {
      const doc = JSON.stringify(lostReply());
      this.#db.exec("BEGIN IMMEDIATE");
      for (const r of lost) {
        this.#stmt(
          "UPDATE requests SET state = 'REPLY', reply_doc = ?, last_update_time = ? WHERE request_id = ?",
        )
          .run(doc, timestamp(), r.requestId);
      }
      this.#db.exec("COMMIT");
    }
    return { lost: lost.length, notStarted: acked.filter((r) => !r.started) };
  }

  /** After a successful handshake: forget finished rows written under another agent id. */
  purgeOtherAgents(agentId: string): Promise<void> {
    return this.#writer.write(() => {
      this.#stmt(
        `DELETE FROM requests WHERE agent_id IS NOT NULL AND agent_id <> ? AND state IN (${TERMINAL_SQL})`,
      ).run(agentId);
    });
  }

  /** clean_image: forgets every request and job except those of `requestId`. */
  purgeAllExcept(requestId: string): Promise<void> {
    return this.#writer.write(() => {
      this.#stmt("DELETE FROM requests WHERE request_id <> ?").run(requestId);
      this.#stmt("DELETE FROM jobs WHERE request_id <> ?").run(requestId);
    });
  }

  /** Deletes finished rows not updated for `maxAgeSeconds`; returns how many went. */
  sweep(maxAgeSeconds: number, now = new Date()): number {
    const cutoff = timestamp(new Date(now.getTime() - maxAgeSeconds * 1000));
    const r = this.#stmt(
      `DELETE FROM requests WHERE state IN (${TERMINAL_SQL}) AND last_update_time < ?`,
    ).run(cutoff);
    return Number(r.changes);
  }

  /** Number of rows per state. */
  countByState(): Record<string, number> {
    const out: Record<string, number> = {};
    for (
      const r of this.#stmt("SELECT state, count(*) AS n FROM requests GROUP BY state").all() as {
        state: string;
        n: number;
      }[]
    ) {
      out[r.state] = Number(r.n);
    }
    return out;
  }

  /** States of rows whose command is `command` (dcm-agent status). */
  statesOfCommand(command: string): RequestState[] {
    return (this.#stmt(
      "SELECT state FROM requests WHERE json_extract(request_doc, '$.payload.command') = ?",
    ).all(command) as { state: RequestState }[]).map((r) => r.state);
  }

  /** Reads a persisted agent setting. */
  getValue(key: string): string | undefined {
    const r = this.#stmt("SELECT value FROM agent_state WHERE key = ?").get(key) as {
      value: string;
    } | undefined;
    return r?.value;
  }

  /** Persists an agent setting. */
  setValue(key: string, value: string): Promise<void> {
    return this.#writer.write(() => {
      this.#stmt(
        "INSERT INTO agent_state(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      )
        .run(key, value);
    });
  }

  /** The next free job id (job ids keep counting up across restarts). */
  nextJobId(): number {
    const r = this.#stmt("SELECT max(job_id) AS m FROM jobs").get() as { m: number | null };
    return Number(r.m ?? 0) + 1;
  }

  /** Inserts or updates a job. */
  saveJob(job: JobRow): Promise<void> {
    return this.#writer.write(() => {
      this.#stmt(
        `INSERT INTO jobs(job_id, request_id, command, arguments, customer_id, job_status, message, start_date, end_date, command_reply, update_time)
         VALUES(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT(job_id) DO UPDATE SET job_status = excluded.job_status, message = excluded.message,
           start_date = excluded.start_date, end_date = excluded.end_date, command_reply = excluded.command_reply,
           update_time = excluded.update_time`,
      ).run(
        job.job_id,
        job.requestId,
        job.command,
        JSON.stringify(job.arguments),
        JSON.stringify(job.customer_id ?? null),
        job.job_status,
        job.message,
        job.start_date,
        job.end_date,
        job.command_reply ? JSON.stringify(job.command_reply) : null,
        Date.now() / 1000,
      );
    });
  }

  /** Reads one job. */
  getJob(jobId: number): JobRow | undefined {
    const r = this.#stmt("SELECT * FROM jobs WHERE job_id = ?").get(jobId) as
      | Record<string, unknown>
      | undefined;
    return r ? toJob(r) : undefined;
  }

  /** The job created by a request, if any. */
  jobForRequest(requestId: string): JobRow | undefined {
    const r = this.#stmt("SELECT * FROM jobs WHERE request_id = ?").get(requestId) as
      | Record<string, unknown>
      | undefined;
    return r ? toJob(r) : undefined;
  }

  /** Jobs in the given states, by id. */
  jobsInState(states: JobDescription["job_status"][]): JobRow[] {
    const marks = states.map(() => "?").join(",");
    return (this.#stmt(`SELECT * FROM jobs WHERE job_status IN (${marks}) ORDER BY job_id`).all(
      ...states,
    ) as Record<string, unknown>[])
      .map(toJob);
  }

  /** Deletes finished jobs that ended more than `retainSeconds` ago. */
  sweepJobs(retainSeconds: number, nowSeconds = Date.now() / 1000): number {
    const r = this.#stmt(
      "DELETE FROM jobs WHERE job_status IN ('COMPLETE','ERROR') AND end_date IS NOT NULL AND end_date < ?",
    ).run(Math.floor(nowSeconds - retainSeconds));
    return Number(r.changes);
  }

  /** Commits pending writes and closes the database. */
  close(): void {
    if (this.#writer.closed) return;
    this.#writer.close();
    this.#db.close();
  }
}
