/**
 * The journal's part for intrusion-detection alerts. An alert read from the
 * alert file waits in `alert_queue` (with the position in the file, stored in
 * the same commit) until the manager acknowledges it; it then moves to the
 * original agent's `alerts` table, which also keeps it from being queued
 * again. Alerts wait here, not in memory, however long the manager is away.
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { AlertFields } from "../protocol/mod.ts";
import type { GroupCommitWriter } from "./journal_writer.ts";
import { statementCache } from "./journal_schema.ts";

/** An alert waiting for its ALERT_ACK. */
export interface QueuedAlert {
  /** Order of arrival. */
  seq: number;
  /** The request_id of every ALERT frame for this alert (kept across restarts). */
  requestId: string;
  alert: AlertFields;
}

/** The `agent_state` key holding the alert file position. */
const CURSOR_KEY = "ossec_cursor";

/** Queue of unacknowledged alerts and record of acknowledged ones. */
export class AlertStore {
  #writer: GroupCommitWriter;
  #stmt: (sql: string) => StatementSync;

  constructor(db: DatabaseSync, writer: GroupCommitWriter) {
    this.#writer = writer;
    this.#stmt = statementCache(db);
  }

  /**
   * Queues alerts not seen before and stores the file position after them, in
   * one durable commit; resolves with the number queued.
   */
  async enqueue(alerts: readonly AlertFields[], cursor: string): Promise<number> {
    let queued = 0;
    await this.#writer.write(() => {
      const now = Date.now();
      for (const a of alerts) {
        if (this.#stmt("SELECT 1 FROM alerts WHERE alert_hash = ?").get(a.alert_hash)) continue;
        const r = this.#stmt(
          "INSERT OR IGNORE INTO alert_queue(alert_hash, request_id, alert_doc, added_time) VALUES(?, ?, ?, ?)",
        ).run(a.alert_hash, crypto.randomUUID(), JSON.stringify(a), now);
        queued += Number(r.changes);
      }
      this.#stmt(
        "INSERT INTO agent_state(key, value) VALUES(?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
      ).run(CURSOR_KEY, cursor);
    });
    return queued;
  }

  /** The stored alert file position, or undefined. */
  cursor(): string | undefined {
    const r = this.#stmt("SELECT value FROM agent_state WHERE key = ?").get(CURSOR_KEY) as
      | { value: string }
      | undefined;
    return r?.value;
  }

  /** Up to `limit` queued alerts after `afterSeq`, oldest first. */
  pending(afterSeq: number, limit: number): QueuedAlert[] {
    const rows = this.#stmt(
      "SELECT seq, request_id, alert_doc FROM alert_queue WHERE seq > ? ORDER BY seq LIMIT ?",
    ).all(afterSeq, limit) as { seq: number; request_id: string; alert_doc: string }[];
    return rows.map((r) => ({
      seq: r.seq,
      requestId: r.request_id,
      alert: JSON.parse(r.alert_doc) as AlertFields,
    }));
  }

  /** The number of alerts waiting for an acknowledgement. */
  size(): number {
    return (this.#stmt("SELECT count(*) AS n FROM alert_queue").get() as { n: number }).n;
  }

  /**
   * Records the manager's ALERT_ACK: the alert leaves the queue for the
   * `alerts` table. Resolves false when no queued alert has this request_id.
   */
  async acknowledge(requestId: string): Promise<boolean> {
    const row = this.#stmt("SELECT seq, alert_doc FROM alert_queue WHERE request_id = ?").get(
      requestId,
    ) as { seq: number; alert_doc: string } | undefined;
    if (!row) return false;
    const a = JSON.parse(row.alert_doc) as AlertFields;
    await this.#writer.write(() => {
      this.#stmt(
        "INSERT OR IGNORE INTO alerts(alert_time, added_time, alert_hash, level, rule, message, subject) VALUES(?, ?, ?, ?, ?, ?, ?)",
      ).run(a.alert_timestamp, Date.now(), a.alert_hash, a.level, a.rule, a.message, a.subject);
      this.#stmt("DELETE FROM alert_queue WHERE seq = ?").run(row.seq);
    });
    return true;
  }
}
