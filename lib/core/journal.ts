/**
 * The SQLite request journal (spec 1.7): the record of every request the agent
 * accepted, so that a command runs at most once across crashes and restarts.
 *
 * Writes are group-committed: each write joins the open transaction and its
 * promise resolves once that transaction is durably committed (WAL,
 * synchronous=FULL). Callers send an ACK or REPLY only after that promise.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { setImmediate } from "node:timers";
import { dirname } from "node:path";
import { getLogger } from "../logging/mod.ts";
import { makeReply, percentEncode, type ReplyPayload } from "../protocol/mod.ts";
import type { JobDescription } from "./command.ts";

const log = getLogger(["dcm", "agent", "journal"]);

/** Longest wait before a lazy write is committed on its own. */
const LAZY_COMMIT_MS = 20;

/** Request states, exactly as the original stores them. */
export type RequestState = "ACKED" | "REPLY" | "REPLY_ACKED" | "REPLY_NACKED" | "NACKED";

/** States after which nothing more happens to a request. */
const TERMINAL_STATES: readonly RequestState[] = ["REPLY_ACKED", "REPLY_NACKED", "NACKED"];
/** The columns {@linkcode toRow} reads. */
const SELECT_ROW =
  "SELECT request_id, state, request_doc, reply_doc, agent_id, started, reply_message_id FROM requests";
/** The terminal states as an SQL list, for `state IN (...)`. */
const TERMINAL_SQL = TERMINAL_STATES.map((s) => `'${s}'`).join(",");

/** One row of the `requests` table. */
export interface RequestRow {
  requestId: string;
  state: RequestState;
  requestDoc: Record<string, unknown> | null;
  reply: ReplyPayload | null;
  agentId: string | null;
  started: boolean;
  replyMessageId: string | null;
}

/** A long-running job row (survives restarts so get_job_description keeps working). */
export interface JobRow extends JobDescription {
  requestId: string;
  command: string;
  arguments: Record<string, unknown>;
}

/** What start-up recovery found (spec 1.7 step 4, improved). */
export interface Recovery {
  /** Commands that had started when the agent died: now "lost" replies. */
  lost: number;
  /** Commands journalled and ACKed that provably never started: to run now. */
  notStarted: RequestRow[];
}

/** The reply stored for a command that was running when the agent died. */
export function lostReply(): ReplyPayload & { Exception: string } {
  const text =
    "The agent stopped while this command was running, so its result was lost. The command was not run again; check the server's state before retrying with a new request.";
  return { ...makeReply(1, { error_message: percentEncode(text) }), Exception: text };
}

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS requests(request_id TEXT PRIMARY KEY NOT NULL, creation_time date,
  request_doc text, reply_doc text, state string, agent_id string, last_update_time date);
CREATE TABLE IF NOT EXISTS users(username string NOT NULL, added_time date, ssh_public_key text,
  owner integer, agent_id string, administrator integer, PRIMARY KEY(username, agent_id));
CREATE TABLE IF NOT EXISTS alerts(alert_time integer NOT NULL, added_time integer,
  alert_hash string NOT NULL PRIMARY KEY, level integer, rule integer, message text, subject text);
CREATE TABLE IF NOT EXISTS agent_state(key TEXT PRIMARY KEY NOT NULL, value TEXT);
CREATE TABLE IF NOT EXISTS jobs(job_id INTEGER PRIMARY KEY, request_id TEXT, command TEXT,
  arguments TEXT, customer_id TEXT, job_status TEXT, message TEXT, start_date INTEGER,
  end_date INTEGER, command_reply TEXT, update_time REAL);
CREATE INDEX IF NOT EXISTS jobs_request ON jobs(request_id);
`;

/** How long SQLite waits for a lock held by another connection. */
const BUSY_TIMEOUT_MS = 5000;

/** Options for {@linkcode Journal.open}. */
export interface JournalOptions {
  /** Open without creating or changing anything (dcm-agent status). */
  readOnly?: boolean;
}

/** The request journal. */
export class Journal {
  #db: DatabaseSync;
  #stmts = new Map<string, StatementSync>();
  #inTx = false;
  #waiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  #flushScheduled = false;
  #lazyTimer: ReturnType<typeof setTimeout> | undefined;
  #closed = false;

  private constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Opens (and creates or upgrades) the journal at `file`. */
  static open(file: string, options: JournalOptions = {}): Journal {
    if (!options.readOnly) Deno.mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    let db: DatabaseSync;
    try {
      db = new DatabaseSync(file, {
        timeout: BUSY_TIMEOUT_MS,
        readOnly: options.readOnly ?? false,
      });
    } catch (err) {
      throw new Error(
        `cannot open the request journal ${file}: ${
          (err as Error).message
        }; check [storage] dbfile and the directory's permissions`,
      );
    }
    const j = new Journal(db);
    if (!options.readOnly) j.#init();
    return j;
  }

  #init(): void {
    this.#db.exec("PRAGMA journal_mode=WAL");
    this.#db.exec("PRAGMA synchronous=FULL");
    this.#db.exec(SCHEMA_SQL);
    // Columns the original's schema lacks; added in place so its DB keeps working.
    const cols = new Set(
      (this.#db.prepare("PRAGMA table_info(requests)").all() as { name: string }[]).map((c) =>
        c.name
      ),
    );
    if (!cols.has("started")) {
      // Rows the original agent left in ACKED had started running (spec 1.7 step 4):
      // default 1 makes them "lost" replies at recovery instead of running them again.
      // Every insert names the column, so the default applies only to those rows.
      this.#db.exec("ALTER TABLE requests ADD COLUMN started integer DEFAULT 1");
    }
    if (!cols.has("reply_message_id")) {
      this.#db.exec("ALTER TABLE requests ADD COLUMN reply_message_id text");
    }
    this.#db.exec("CREATE INDEX IF NOT EXISTS requests_state ON requests(state)");
  }

  #stmt(sql: string): StatementSync {
    let s = this.#stmts.get(sql);
    if (!s) {
      s = this.#db.prepare(sql);
      this.#stmts.set(sql, s);
    }
    return s;
  }

  /**
   * Runs a write inside the open group transaction; resolves when it is
   * committed. A `lazy` write (one whose loss in a crash is harmless) does not
   * ask for a commit of its own at once: it rides along with the next urgent
   * commit, or is committed within LAZY_COMMIT_MS.
   */
  #write(fn: () => void, lazy = false): Promise<void> {
    if (this.#closed) return Promise.reject(new Error("the journal is closed"));
    if (!this.#inTx) {
      this.#db.exec("BEGIN IMMEDIATE");
      this.#inTx = true;
    }
    try {
      fn();
    } catch (err) {
      return Promise.reject(err);
    }
    const p = new Promise<void>((resolve, reject) => this.#waiters.push({ resolve, reject }));
    if (lazy) {
      this.#lazyTimer ??= setTimeout(() => this.#flush(), LAZY_COMMIT_MS);
    } else if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      // setImmediate runs after the I/O callbacks of this loop turn, so the other
      // frames of the same socket read join this commit (setTimeout(0) costs ~2 ms).
      setImmediate(() => this.#flush());
    }
    return p;
  }

  /** Commits the open transaction now and settles its writers. */
  #flush(): void {
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
      log.error("journal commit failed: {error}", { error: (err as Error).message });
      for (const w of waiters) w.reject(err as Error);
    }
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
    return this.#write(() => {
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
    return this.#write(() => {
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
    return this.#write(() => {
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
    return this.#write(() => {
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
    return this.#write(() => {
      this.#stmt(
        `DELETE FROM requests WHERE agent_id IS NOT NULL AND agent_id <> ? AND state IN (${TERMINAL_SQL})`,
      ).run(agentId);
    });
  }

  /** clean_image: forgets every request and job except those of `requestId`. */
  purgeAllExcept(requestId: string): Promise<void> {
    return this.#write(() => {
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
    return this.#write(() => {
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
    return this.#write(() => {
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
    if (this.#closed) return;
    this.#flush();
    this.#closed = true;
    this.#db.close();
  }
}

function toRow(r: Record<string, unknown>): RequestRow {
  return {
    requestId: String(r.request_id),
    state: r.state as RequestState,
    requestDoc: parseJson(r.request_doc) as Record<string, unknown> | null,
    reply: parseJson(r.reply_doc) as ReplyPayload | null,
    agentId: (r.agent_id as string | null) ?? null,
    started: Number(r.started ?? 0) === 1,
    replyMessageId: (r.reply_message_id as string | null) ?? null,
  };
}

function toJob(r: Record<string, unknown>): JobRow {
  return {
    job_id: Number(r.job_id),
    requestId: String(r.request_id),
    command: String(r.command),
    description: String(r.command),
    arguments: (parseJson(r.arguments) ?? {}) as Record<string, unknown>,
    customer_id: parseJson(r.customer_id),
    job_status: r.job_status as JobDescription["job_status"],
    message: (r.message as string | null) ?? null,
    start_date: Number(r.start_date ?? 0),
    end_date: r.end_date === null ? null : Number(r.end_date),
    command_reply: parseJson(r.command_reply) as ReplyPayload | null,
  };
}

function parseJson(v: unknown): unknown {
  if (typeof v !== "string") return null;
  try {
    // The original stored some replies double-encoded (spec 1.7); unwrap those.
    const once = JSON.parse(v);
    return typeof once === "string" && once.startsWith("{") ? JSON.parse(once) : once;
  } catch {
    return null;
  }
}

/** Formats a time as Python's sqlite3 default, local time: `YYYY-MM-DD HH:MM:SS.ffffff`. */
export function timestamp(d = new Date()): string {
  const p = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${
    p(d.getMinutes())
  }:${p(d.getSeconds())}.${p(d.getMilliseconds() * 1000, 6)}`;
}
