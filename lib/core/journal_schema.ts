/**
 * Opening the journal's SQLite file: durability settings, the tables, and the
 * in-place upgrade of a database left by the original agent (same tables, two
 * columns added). Everything about the file's layout lives here.
 */
import { DatabaseSync } from "node:sqlite";
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

/** How long SQLite waits for a lock held by another connection. */
const BUSY_TIMEOUT_MS = 5000;

/** Options for {@linkcode openJournalDatabase}. */
export interface JournalOptions {
  /** Open without creating or changing anything (dcm-agent status). */
  readOnly?: boolean;
}

/** Opens the journal file at `file`, creating or upgrading it unless read-only. */
export function openJournalDatabase(file: string, options: JournalOptions = {}): DatabaseSync {
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
  if (!options.readOnly) initSchema(db);
  return db;
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
}
