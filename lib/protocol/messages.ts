/**
 * Protocol 104 message types, validation of incoming frames and builders of
 * outgoing ones (ARCHITECTURE.md, Messages). Nothing else in the agent knows wire field names.
 */

/** The protocol version sent in the handshake. */
export const PROTOCOL_VERSION = 104;

/** Request id used in a NACK when the incoming frame has none (ARCHITECTURE.md, Messages). */
export const MISSING_REQUEST_ID = "DEADBEEF";

/** Longest command name accepted (names are echoed in NACKs). */
const MAX_COMMAND_NAME = 200;

/** Message types the manager sends. */
export const INCOMING_TYPES = [
  "REQUEST",
  "ACK",
  "NACK",
  "CANCEL",
  "STATUS",
  "ALERT_ACK",
  "HEMLOCK",
] as const;

/** A message type the manager sends. */
export type IncomingType = typeof INCOMING_TYPES[number];

/** The payload of a REQUEST. */
export interface RequestPayload {
  command: string;
  arguments: Record<string, unknown>;
  longer_runner?: unknown;
}

/** A validated incoming REQUEST. */
export interface RequestMessage {
  type: "REQUEST";
  request_id: string;
  message_id?: unknown;
  payload: RequestPayload;
}

/** A validated incoming message other than REQUEST. */
export interface ControlMessage {
  type: Exclude<IncomingType, "REQUEST">;
  request_id: string;
  message_id?: unknown;
}

/** Any validated incoming message. */
export type IncomingMessage = RequestMessage | ControlMessage;

/** The five-key result of every command (ARCHITECTURE.md, Command rules). */
export interface ReplyPayload {
  return_code: number;
  reply_type: string;
  reply_object: unknown;
  message: string;
  error_message: string;
}

/** The result of parsing one incoming frame. */
export type ParseResult =
  | { ok: true; message: IncomingMessage }
  | { ok: false; requestId: string; error: string };

/** The handshake reply fields the agent reads (ARCHITECTURE.md, Handshake). */
export interface HandshakeReply {
  return_code: number;
  handshake?: Record<string, unknown>;
  FORCE_BACKOFF?: unknown;
}

/** Parses and validates one incoming text frame; never throws. */
export function parseFrame(text: string): ParseResult {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return fail(MISSING_REQUEST_ID, `the message is not valid JSON: ${(err as Error).message}`);
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return fail(MISSING_REQUEST_ID, "the message must be a JSON object");
  }
  const m = doc as Record<string, unknown>;
  const rid = m.request_id;
  if (typeof rid !== "string" || rid === "") {
    const what = rid === undefined
      ? "has no request_id"
      : "has a request_id that is not a non-empty string";
    return fail(MISSING_REQUEST_ID, `the message ${what}`);
  }
  if (rid.length > 512) {
    return fail(MISSING_REQUEST_ID, "the request_id is longer than 512 characters");
  }
  if (m.type === undefined) return fail(rid, "the message has no type");
  if (typeof m.type !== "string" || !(INCOMING_TYPES as readonly string[]).includes(m.type)) {
    // Echo at most a little of a hostile value: a NACK must not amplify its input.
    const shown = String(JSON.stringify(m.type)).slice(0, 60);
    return fail(rid, `the message type ${shown} is not one of ${INCOMING_TYPES.join(", ")}`);
  }
  if (m.type !== "REQUEST") {
    return {
      ok: true,
      message: {
        type: m.type as ControlMessage["type"],
        request_id: rid,
        message_id: m.message_id,
      },
    };
  }
  const p = m.payload;
  if (typeof p !== "object" || p === null || Array.isArray(p)) {
    return fail(rid, "the REQUEST has no payload object");
  }
  const payload = p as Record<string, unknown>;
  if (typeof payload.command !== "string" || payload.command === "") {
    return fail(rid, "the REQUEST payload has no command name (payload.command)");
  }
  if (payload.command.length > MAX_COMMAND_NAME) {
    return fail(rid, `the command name is longer than ${MAX_COMMAND_NAME} characters`);
  }
  const args = payload.arguments === undefined ? {} : payload.arguments;
  if (typeof args !== "object" || args === null || Array.isArray(args)) {
    return fail(rid, "the REQUEST payload.arguments must be a JSON object");
  }
  return {
    ok: true,
    message: {
      type: "REQUEST",
      request_id: rid,
      message_id: m.message_id,
      payload: {
        command: payload.command,
        arguments: args as Record<string, unknown>,
        ...("longer_runner" in payload ? { longer_runner: payload.longer_runner } : {}),
      },
    },
  };
}

function fail(requestId: string, error: string): ParseResult {
  return { ok: false, requestId, error };
}

/** Validates the manager's handshake reply; returns an error text or the reply. */
export function parseHandshakeReply(text: string): HandshakeReply | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return "the handshake reply is not valid JSON";
  }
  if (typeof doc !== "object" || doc === null || Array.isArray(doc)) {
    return "the handshake reply is not a JSON object";
  }
  const d = doc as Record<string, unknown>;
  if (typeof d.return_code !== "number") return "the handshake reply has no numeric return_code";
  if (d.handshake !== undefined && (typeof d.handshake !== "object" || d.handshake === null)) {
    return "the handshake reply's 'handshake' is not an object";
  }
  return d as unknown as HandshakeReply;
}

/** Generates message ids: 8 hex digits chosen at start-up plus a counter (ARCHITECTURE.md, Messages). */
export class MessageIds {
  #prefix = crypto.randomUUID().replaceAll("-", "").slice(0, 8);
  #counter = 0;
  /** Returns the next unique message id. */
  next(): string {
    this.#counter++;
    return `${this.#prefix}${this.#counter}`;
  }
}

/** Fields every ACK, NACK, REPLY and STATUS carries. */
export interface Envelope {
  message_id: string;
  request_id: string;
  agent_id: string | null;
}

/** Builds an ACK frame. */
export function ackFrame(env: Envelope, entity = "user_accepts"): Record<string, unknown> {
  return { type: "ACK", ...env, entity };
}

/** Builds a NACK frame. */
export function nackFrame(
  env: Envelope,
  errorMessage: string,
  entity = "user_rejects",
): Record<string, unknown> {
  return { type: "NACK", ...env, error_message: errorMessage, entity };
}

/** Builds a REPLY frame. */
export function replyFrame(env: Envelope, payload: ReplyPayload): Record<string, unknown> {
  return { type: "REPLY", ...env, entity: "timer", payload };
}

/** Builds a STATUS frame answering a STATUS request. */
export function statusFrame(
  env: Envelope,
  state: string,
  reply: ReplyPayload | null,
): Record<string, unknown> {
  return { type: "STATUS", ...env, entity: "status send", state, reply };
}

/** Console log levels of LOG frames (ARCHITECTURE.md, LOG frames). */
export type LogLevel = "DEBUG" | "INFO" | "WARNING" | "ERROR" | "CRITICAL";

/** Longest LOG text before percent-encoding (ARCHITECTURE.md, LOG frames). */
const MAX_LOG_CHARS = 10240;

/** Builds a LOG frame: the line is cut to 10240 characters, then percent-encoded. */
export function logFrame(level: LogLevel, line: string): Record<string, unknown> {
  return { type: "LOG", token: "", level, message: percentEncode(line.slice(0, MAX_LOG_CHARS)) };
}

/** Percent-encodes text as Python's `urllib.parse.quote` does ('/' stays literal). */
export function percentEncode(text: string): string {
  return encodeURIComponent(text)
    .replace(/%2F/g, "/")
    .replace(/[!'()*]/g, (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`);
}

/**
 * Decodes a {@linkcode percentEncode}d text for people. Text that is not
 * percent-encoded (a script's stderr, with its spaces) comes back unchanged.
 */
export function percentDecode(text: string): string {
  if (/\s/.test(text) || !/%[0-9A-Fa-f]{2}/.test(text)) return text;
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Builds a reply payload with the protocol's defaults for missing keys. */
export function makeReply(
  returnCode: number,
  fields: Partial<Omit<ReplyPayload, "return_code">> = {},
): ReplyPayload {
  return {
    return_code: returnCode,
    reply_type: fields.reply_type ?? "void",
    reply_object: fields.reply_object ?? null,
    message: fields.message ?? "",
    error_message: fields.error_message ?? "",
  };
}

/** The reply for a command that raised: return_code 1, percent-encoded error (ARCHITECTURE.md, Command rules). */
export function errorReply(error: string): ReplyPayload {
  return makeReply(1, { error_message: percentEncode(error) });
}

/** An intrusion-detection alert as the manager receives it in an ALERT frame. */
export interface AlertFields {
  /** When the alert happened, epoch milliseconds. */
  alert_timestamp: number;
  level: number;
  rule: number;
  user: string | null;
  source_ip: string | null;
  message: string;
  subject: string;
  /** Hex SHA-256 of `String(alert_timestamp) + subject + message`. */
  alert_hash: string;
}

/** Builds an ALERT frame; it has no message_id, and `request_id` is the alert's own id. */
export function alertFrame(
  requestId: string,
  alert: AlertFields,
  options: { now?: number } = {},
): Record<string, unknown> {
  return {
    type: "ALERT",
    request_id: requestId,
    current_timestamp: options.now ?? Date.now(),
    alert_timestamp: alert.alert_timestamp,
    level: alert.level,
    rule: alert.rule,
    user: alert.user,
    source_ip: alert.source_ip,
    message: alert.message,
    subject: alert.subject,
    alert_hash: alert.alert_hash,
  };
}
