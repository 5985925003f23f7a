/**
 * What the running agent records in the journal's `agent_state` table for
 * `dcm-agent status` (a separate process): whether it is connected to the
 * manager and since when, and how many requests it rejected. Rejections are
 * NACKs, which never become journal rows, so they are counted here. Written
 * only on connect, disconnect and (at most once a second) after a NACK.
 */
import type { Journal } from "./journal.ts";
import { timestamp } from "./journal_rows.ts";
import { VERSION } from "../protocol/mod.ts";

const CONNECTION_KEY = "connection";
const REJECTED_KEY = "requests_rejected";

/** The agent's link to the manager, as last recorded. */
export interface ConnectionRecord {
  /** True while the handshake has been accepted and the socket is open. */
  connected: boolean;
  /** Local time (journal timestamp format) of the change. */
  since: string;
  /** The manager URL the agent uses. */
  url: string;
  /** The agent process that wrote the record, and its version. */
  pid: number;
  version: string;
  /** Why the connection went down (disconnected only). */
  reason?: string;
}

/** Records a connect or disconnect. */
export function recordConnection(
  journal: Journal,
  record: Omit<ConnectionRecord, "since" | "pid" | "version">,
): Promise<void> {
  const full: ConnectionRecord = { ...record, since: timestamp(), pid: Deno.pid, version: VERSION };
  return journal.setValue(CONNECTION_KEY, JSON.stringify(full));
}

/** The last recorded connection state, or null when none is recorded (or it is unreadable). */
export function readConnection(journal: Journal): ConnectionRecord | null {
  try {
    const v = JSON.parse(journal.getValue(CONNECTION_KEY) ?? "null");
    if (typeof v?.connected !== "boolean" || typeof v.since !== "string") return null;
    return v as ConnectionRecord;
  } catch {
    return null;
  }
}

/** Requests rejected with a NACK over the journal's life. */
export function readRejectedCount(journal: Journal): number {
  const n = Number(journal.getValue(REJECTED_KEY) ?? 0);
  return Number.isFinite(n) && n >= 0 ? n : 0;
}

/** Counts NACKs in memory and persists the total at most once per second. */
export class RejectionCounter {
  #journal: Journal;
  #total: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dirty = false;

  constructor(journal: Journal) {
    this.#journal = journal;
    this.#total = readRejectedCount(journal);
  }

  /** Counts one rejected request. */
  add(): void {
    this.#total++;
    this.#dirty = true;
    this.#timer ??= setTimeout(() => this.flush(), 1000);
  }

  /** Writes the total now if it changed (call before closing the journal). */
  flush(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#dirty) return Promise.resolve();
    this.#dirty = false;
    return this.#journal.setValue(REJECTED_KEY, String(this.#total)).catch(() => {});
  }
}
