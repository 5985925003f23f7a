/**
 * The rows of the journal as the rest of the agent sees them, and how they are
 * read from SQLite. Column meanings follow the original agent's database so
 * that an existing file keeps working.
 */
import { makeReply, percentEncode, type ReplyPayload } from "../protocol/mod.ts";
import type { JobDescription } from "./command.ts";

/** Request states, exactly as the original stores them. */
export type RequestState = "ACKED" | "REPLY" | "REPLY_ACKED" | "REPLY_NACKED" | "NACKED";

/** States after which nothing more happens to a request. */
export const TERMINAL_STATES: readonly RequestState[] = [
  "REPLY_ACKED",
  "REPLY_NACKED",
  "NACKED",
];
/** The columns {@linkcode toRow} reads. */
export const SELECT_ROW =
  "SELECT request_id, state, request_doc, reply_doc, agent_id, started, reply_message_id FROM requests";
/** The terminal states as an SQL list, for `state IN (...)`. */
export const TERMINAL_SQL = TERMINAL_STATES.map((s) => `'${s}'`).join(",");

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

/** What start-up recovery found. */
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

/** Converts a `requests` row read with {@linkcode SELECT_ROW}. */
export function toRow(r: Record<string, unknown>): RequestRow {
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

/** Converts a `jobs` row. */
export function toJob(r: Record<string, unknown>): JobRow {
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
    // The original stored some replies double-encoded; unwrap those.
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
