/**
 * Opening a journal that may be damaged. A journal that is not a database,
 * fails SQLite's quick check (a half-written page, a truncated file) or was
 * written in a format newer than this agent reads would stop the agent at every
 * start, a crash loop under systemd. Instead the damaged file (with its -wal
 * and -shm) is moved aside, kept for inspection, and a fresh journal starts;
 * the event is recorded in the new journal for `dcm-agent status`. A file the
 * agent may not open (permissions, a read-only file system) is not damaged:
 * that stays an error, never a silent new journal.
 */
import type { DatabaseSync } from "node:sqlite";
import { JournalDamagedError, openJournalDatabase } from "./journal_schema.ts";
import { timestamp } from "./journal_rows.ts";

/** The agent_state key holding the last {@linkcode JournalReset}. */
export const JOURNAL_RESET_KEY = "journal_reset";

/** A damaged journal that was moved aside and replaced by a fresh one. */
export interface JournalReset {
  /** Local time of the reset (journal timestamp format). */
  at: string;
  /** Why the old journal could not be used. */
  reason: string;
  /** Where the old file now is. */
  savedAs: string;
}

/** Opens the journal at `file`; a damaged one is moved aside and replaced. */
export function openOrReplaceDamaged(
  file: string,
): { db: DatabaseSync; reset: JournalReset | null } {
  try {
    return { db: openJournalDatabase(file), reset: null };
  } catch (err) {
    if (!(err instanceof JournalDamagedError)) throw err;
    const at = timestamp();
    const savedAs = `${file}.damaged-${at.slice(0, 19).replace(/[- :]/g, "")}`;
    for (const suffix of ["", "-wal", "-shm"]) {
      try {
        Deno.renameSync(file + suffix, savedAs + suffix);
      } catch (e) {
        if (!(e instanceof Deno.errors.NotFound)) {
          throw new Error(
            `the request journal ${file} is damaged (${err.reason}) and could not be moved ` +
              `aside: ${(e as Error).message}; move it away by hand and start the agent again`,
          );
        }
      }
    }
    const reset = { at, reason: err.reason, savedAs };
    const db = openJournalDatabase(file);
    db.prepare("INSERT OR REPLACE INTO agent_state(key, value) VALUES(?, ?)")
      .run(JOURNAL_RESET_KEY, JSON.stringify(reset));
    return { db, reset };
  }
}

/** Reads a recorded reset back, or null. */
export function parseJournalReset(text: string | undefined): JournalReset | null {
  if (!text) return null;
  try {
    const v = JSON.parse(text);
    return typeof v?.at === "string" && typeof v?.reason === "string" &&
        typeof v?.savedAs === "string"
      ? v
      : null;
  } catch {
    return null;
  }
}
