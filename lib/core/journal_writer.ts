/**
 * The journal's group-commit writer: each write joins the open transaction and
 * its promise resolves once that transaction is durably committed (WAL,
 * synchronous=FULL). Callers send an ACK or REPLY only after that promise, so
 * a frame never promises more than the disk holds.
 *
 * A failed COMMIT (disk full, I/O error) is rolled back and rejects every
 * write of that transaction; callers decide what to tell the manager.
 */
import type { DatabaseSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import { getLogger } from "../logging/mod.ts";

const log = getLogger(["dcm", "agent", "journal"]);

/** Failed writes are reported at most this often (ms). */
const FAILURE_REPORT_MS = 60_000;

/** Longest wait before a lazy write is committed on its own. */
const LAZY_COMMIT_MS = 20;

/** Batches the journal's writes into few durable commits. */
export class GroupCommitWriter {
  #db: DatabaseSync;
  #inTx = false;
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #flushScheduled = false;
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;
  #quietUntil = 0;
  #suppressed = 0;

  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Whether {@linkcode GroupCommitWriter.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Runs a write inside the open group transaction; resolves when it is
   * committed. A `lazy` write (one whose loss in a crash is harmless) does not
   * ask for a commit of its own at once: it rides along with the next urgent
   * commit, or is committed within LAZY_COMMIT_MS.
   */
  write(fn: () => void, lazy = false): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the journal is closed"));
    if (!this.#inTx) {
      try {
        this.#db.exec("BEGIN IMMEDIATE");
      } catch (err) {
        this.#failed(err as Error);
        return Promise.reject(err);
      }
      this.#inTx = true;
    }
    try {
      fn();
    } catch (err) {
      return Promise.reject(err);
    }
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (lazy) {
      this.#lazyTimer ??= setTimeout(() => this.flush(), LAZY_COMMIT_MS);
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // setImmediate runs after the I/O callbacks of this loop turn, so the other
      // frames of the same socket read join this commit (setTimeout(0) costs ~2 ms).
      setImmediate(() => this.flush());
    }
    return p;
  }

  /** Commits the open transaction now and settles its writers. */
  flush(): void {
    this.#flushScheduled = false;
    clearTimeout(this.#lazyTimer);
    this.#lazyTimer = undefined;
    if (!this.#inTx) return;
    const waiters = this.#waiters;
    this.#waiters = [];
    try {
      this.#db.exec("COMMIT");
      this.#inTx = false;
      for (const w of waiters) w.resolve();
    } catch (err) {
      this.#inTx = false;
      try {
        this.#db.exec("ROLLBACK");
      } catch { /* nothing left to roll back */ }
      this.#failed(err as Error);
      for (const w of waiters) w.reject(err as Error);
    }
  }

  /**
   * Logs a failed write, at most once a minute: a full disk fails every write,
   * and a log line per request would only fill the log disk too.
   */
  #failed(err: Error): void {
    const now = performance.now();
    if (now < this.#quietUntil) {
      this.#suppressed++;
      return;
    }
    const more = this.#suppressed
      ? ` (${this.#suppressed} more failures since the last report)`
      : "";
    log.error(
      "cannot write the request journal: {error}{more}; requests that change the system are " +
        "refused until it can be written again (free space on its file system)",
      { error: err.message, more },
    );
    this.#quietUntil = now + FAILURE_REPORT_MS;
    this.#suppressed = 0;
  }

  /** Commits pending writes; later writes are refused. The caller closes the database. */
  close(): void {
    if (this.#closed) return;
    this.flush();
    this.#closed = true;
  }
}
