/**
 * Opening the journal's SQLite file: durability settings, the tables, and the
 * in-place upgrade of a database left by the original agent (same tables, two
 * columns added). Everything about the file's layout lives here.
 */
import { DatabaseSync, type StatementSync } from "node:sqlite";
import { dirname } from "node:path";

const SCHEMA_SQL = `
CREATE TABLE IF NOT EXISTS requests(request_id TEXT PRIMARY KEY NOT NULL, creation_time date,
  request_doc text, reply_doc text, state string, agent_id string, last_update_time date);
CREATE TABLE IF NOT EXISTS users(username string NOT NULL, added_time date, ssh_public_key text,
  owner integer, agent_id string, administrator integer, PRIMARY KEY(username, agent_id));
CREATE TABLE IF NOT EXISTS alerts(alert_time integer NOT NULL, added_time integer,
  alert_hash string NOT NULL PRIMARY KEY, level integer, rule integer, message text, subject text);
CREATE TABLE IF NOT EXISTS alert_queue(seq INTEGER PRIMARY KEY AUTOINCREMENT,
  alert_hash TEXT NOT NULL UNIQUE, request_id TEXT NOT NULL UNIQUE, alert_doc TEXT NOT NULL,
  added_time integer);
CREATE TABLE IF NOT EXISTS agent_state(key TEXT PRIMARY KEY NOT NULL, value TEXT);
CREATE TABLE IF NOT EXISTS jobs(job_id INTEGER PRIMARY KEY, request_id TEXT, command TEXT,
  arguments TEXT, customer_id TEXT, job_status TEXT, message TEXT, start_date INTEGER,
  end_date INTEGER, command_reply TEXT, update_time REAL);
CREATE INDEX IF NOT EXISTS jobs_request ON jobs(request_id);
`;

/**
 * The journal format, in `PRAGMA user_version`. It is raised only by a change
 * older agents cannot read, so a rollback to an older agent keeps the journal
 * whenever that is safe. The original agent's file has 0.
 */
export const JOURNAL_FORMAT = 1;

/** The file is not a usable journal (corrupt, truncated, or a newer format). */
export class JournalDamagedError extends Error {
  readonly reason: string;
  constructor(file: string, reason: string) {
    super(`the request journal ${file} cannot be used: ${reason}`);
    this.name = "JournalDamagedError";
    this.reason = reason;
  }
}

/** How long SQLite waits for a lock held by another connection. */
const BUSY_TIMEOUT_MS = 5000;

/** Options for {@linkcode openJournalDatabase}. */
export interface JournalOptions {
  /** Open without creating or changing anything (dcm-agent status). */
  readOnly?: boolean;
}

/** Opens the journal file at `file`, creating or upgrading it unless read-only. */
export function openJournalDatabase(file: string, options: JournalOptions = {}): DatabaseSync {
  if (!options.readOnly) {
    Deno.mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    checkWritable(file);
  }
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
  try {
    checkUsable(db, file);
    if (!options.readOnly) initSchema(db);
  } catch (err) {
    db.close();
    if (err instanceof JournalDamagedError || !isDamage(err)) throw err;
    throw new JournalDamagedError(file, (err as Error).message);
  }
  return db;
}

/** Permission problems are the operator's to fix: say so rather than treat the file as damaged. */
function checkWritable(file: string): void {
  try {
    Deno.openSync(file, { read: true, write: true }).close();
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return;
    throw new Error(
      `cannot open the request journal ${file} for writing: ${(err as Error).message}; ` +
        "the agent runs as root and needs to read and write it: fix its owner, mode or file " +
        "system (it was left as it is)",
    );
  }
}

/** Throws JournalDamagedError unless the file is a sound journal of a format this agent reads. */
function checkUsable(db: DatabaseSync, file: string): void {
  const check = db.prepare("PRAGMA quick_check").all() as Record<string, unknown>[];
  const verdict = check.map((r) => String(Object.values(r)[0])).join("; ");
  if (verdict !== "ok") throw new JournalDamagedError(file, `SQLite's check failed: ${verdict}`);
  const format = Number(
    (db.prepare("PRAGMA user_version").get() as Record<string, unknown>).user_version,
  );
  if (format > JOURNAL_FORMAT) {
    throw new JournalDamagedError(
      file,
      `it was written by a newer agent (journal format ${format}; this agent reads up to ` +
        `${JOURNAL_FORMAT})`,
    );
  }
}

/** SQLite's words for a file that is not a sound database (SQLITE_CORRUPT, SQLITE_NOTADB). */
function isDamage(err: unknown): boolean {
  const e = err as { errcode?: number; message?: string };
  return e?.errcode === 11 || e?.errcode === 26 ||
    /not a database|malformed|disk image/i.test(e?.message ?? "");
}

/** Sets durability, creates missing tables and adds the columns the original's schema lacks. */
function initSchema(db: DatabaseSync): void {
  db.exec("PRAGMA journal_mode=WAL");
  db.exec("PRAGMA synchronous=FULL");
  db.exec(SCHEMA_SQL);
  // Columns the original's schema lacks; added in place so its DB keeps working.
  const cols = new Set(
    (db.prepare("PRAGMA table_info(requests)").all() as { name: string }[]).map((c) => c.name),
  );
  if (!cols.has("started")) {
    // Rows the original agent left in ACKED had started running: default 1
    // makes them "lost" replies at recovery instead of running them again.
    // Every insert names the column, so the default applies only to those rows.
    db.exec("ALTER TABLE requests ADD COLUMN started integer DEFAULT 1");
  }
  if (!cols.has("reply_message_id")) {
    db.exec("ALTER TABLE requests ADD COLUMN reply_message_id text");
  }
  db.exec("CREATE INDEX IF NOT EXISTS requests_state ON requests(state)");
  db.exec(`PRAGMA user_version=${JOURNAL_FORMAT}`);
}

/** Prepares each SQL text once on `db` and hands out the same statement after. */
export function statementCache(db: DatabaseSync): (sql: string) => StatementSync {
  const statements = new Map<string, StatementSync>();
  return (sql) => {
    let s = statements.get(sql);
    if (!s) {
      s = db.prepare(sql);
      statements.set(sql, s);
    }
    return s;
  };
}
