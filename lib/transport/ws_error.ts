/**
 * The websocket client's one error type: a machine-readable kind, so callers
 * can explain failures in their own words, and a plain-words message.
 */

/** What went wrong, for callers that explain failures in their own words. */
export type WsErrorKind =
  /** The URL is not a ws:// or wss:// URL. */
  | "url"
  /** Nothing listens on the port. */
  | "refused"
  /** The host name has no address. */
  | "unresolved"
  /** No route to the host or network. */
  | "unreachable"
  /** The peer reset the TCP connection. */
  | "reset"
  /** The connect and upgrade did not finish within `timeoutMs`. */
  | "timeout"
  /** `signal` aborted the connect. */
  | "aborted"
  /** The server's certificate chain is not trusted. */
  | "tls_untrusted"
  /** The server's certificate is not valid for the host name. */
  | "tls_name"
  /** The server's certificate is expired or not yet valid. */
  | "tls_expired"
  /** The server answered the TLS handshake in plain text (a ws:// server). */
  | "tls_plain"
  /** Any other TLS handshake failure. */
  | "tls"
  /** The server answered the upgrade with a status other than 101 (see `status`). */
  | "http_status"
  /** The 101 response is not a valid websocket upgrade. */
  | "handshake"
  /** The server chose a subprotocol that was not asked for. */
  | "subprotocol"
  /** The server sent a message larger than `maxPayload` (closed with 1009). */
  | "too_large"
  /** The server broke the framing rules (closed with 1002). */
  | "protocol"
  /** The server sent text that is not UTF-8 (closed with 1007). */
  | "invalid_utf8"
  /** send() or ping() on a socket that is closing or closed. */
  | "closed"
  /** Any other read, write or connect failure. */
  | "network";

/** A websocket failure with a machine-readable kind and a plain-words message. */
export class WsError extends Error {
  /** What went wrong. */
  readonly kind: WsErrorKind;
  /** The HTTP status of a refused upgrade (kind "http_status"). */
  readonly status?: number;

  constructor(
    kind: WsErrorKind,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "WsError";
    this.kind = kind;
    this.status = options.status;
  }
}

/** Classifies a connect, read or write failure (Deno errors and node error codes). */
export function toWsError(err: unknown): WsError {
  if (err instanceof WsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = String((err as { code?: unknown } | null)?.code ?? "");
  const options = { cause: err };
  if (err instanceof Deno.errors.ConnectionRefused || code === "ECONNREFUSED") {
    return new WsError("refused", "connection refused", options);
  }
  if (
    code === "ENOTFOUND" || code === "EAI_AGAIN" || message.startsWith("failed to lookup address")
  ) {
    return new WsError("unresolved", "the host name could not be resolved", options);
  }
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return new WsError("unreachable", "no route to the host", options);
  }
  if (
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    code === "ECONNRESET" || code === "EPIPE"
  ) {
    return new WsError("reset", "the connection was reset", options);
  }
  if (err instanceof Deno.errors.TimedOut || code === "ETIMEDOUT") {
    return new WsError("network", "the connection timed out", options);
  }
  return new WsError("network", message, options);
}
