/**
 * One connection attempt and, once the manager accepted it, its live session:
 * the heartbeat that finds a dead peer (no pong, frame or draining send
 * buffer since the last ping), the cap on bytes waiting for a peer that has
 * stopped reading, and the wire log of every frame in and out.
 */
import { getLogger, redactSecrets } from "../logging/mod.ts";
import type { WsClient } from "./ws_client.ts";

/** Outgoing bytes that may wait for a peer that reads nothing before it counts as dead. */
const MIN_SEND_BUFFER = 4 * 1024 * 1024;
const wire = getLogger(["DCM_AGENT_WIRE"]);

/** One connection attempt and, once accepted, its session. */
export interface Attempt {
  url: string;
  ended: boolean;
  /** Abandons the connect and upgrade. */
  abort: AbortController;
  /** The websocket once the upgrade succeeded. */
  ws: WsClient | null;
  /** Settles once the connect has failed, or the websocket has closed. */
  done: Promise<void>;
  handshakeTimer?: ReturnType<typeof setTimeout>;
  heartbeatTimer?: ReturnType<typeof setInterval>;
  /** A pong or frame arrived since the last ping. */
  alive: boolean;
  /** bufferedAmount at the last heartbeat. */
  lastBuffered: number;
}

/** A new attempt at `url`, not yet connected. */
export function newAttempt(url: string): Attempt {
  return {
    url,
    ended: false,
    abort: new AbortController(),
    ws: null,
    done: Promise.resolve(),
    alive: true,
    lastBuffered: 0,
  };
}

/** Options for {@linkcode startHeartbeat}. */
export interface HeartbeatOptions {
  /** Seconds between pings ([connection] heartbeat_frequency). */
  seconds: number;
  /** The peer is dead: why, in plain words. The heartbeat has sent its last ping. */
  onDead(ws: WsClient, why: string): void;
}

/** Pings every `seconds`; no pong, frame or draining buffer since the last ping means dead. */
export function startHeartbeat(attempt: Attempt, options: HeartbeatOptions): void {
  clearInterval(attempt.heartbeatTimer);
  const { seconds } = options;
  const ws = attempt.ws;
  if (!ws) return;
  attempt.alive = true;
  attempt.lastBuffered = ws.bufferedAmount;
  attempt.heartbeatTimer = setInterval(() => {
    const buffered = ws.bufferedAmount;
    // A send buffer that shrinks shows the peer is still reading.
    const draining = buffered < attempt.lastBuffered;
    if (!attempt.alive && !draining) {
      options.onDead(
        ws,
        buffered > 0
          ? `its send buffer stopped draining (${buffered} bytes waiting)`
          : `no answer to a ping within ${seconds} s`,
      );
      return;
    }
    attempt.lastBuffered = buffered;
    attempt.alive = false;
    try {
      ws.ping();
    } catch { /* the socket is closing; its close event ends the attempt */ }
  }, seconds * 1000);
}

/**
 * Why nothing more may be queued on `ws`, or null if it may. A peer that
 * sends but never reads would grow our write queue without bound until the
 * next heartbeat check; it is dropped as dead at once instead.
 */
export function stalledSend(ws: WsClient, maxMessageSize: number): string | null {
  const limit = Math.max(MIN_SEND_BUFFER, maxMessageSize);
  if (ws.bufferedAmount <= limit) return null;
  return `the manager stopped reading (${ws.bufferedAmount} bytes waiting)`;
}

/** Marks an attempt ended, stops its timers and closes its socket. */
export function release(attempt: Attempt): void {
  attempt.ended = true;
  clearTimeout(attempt.handshakeTimer);
  clearInterval(attempt.heartbeatTimer);
  attempt.handshakeTimer = undefined;
  attempt.heartbeatTimer = undefined;
  closeSocket(attempt);
}

/** Abandons a connect in progress, or closes an open socket (torn down after its closeTimeoutMs). */
export function closeSocket(attempt: Attempt): void {
  attempt.abort.abort();
  if (attempt.ws?.readyState === "open") void attempt.ws.close(1000);
}

/** Writes a serialised frame to the wire log (at DEBUG) and the socket; throws unless the socket is open. */
export function sendText(ws: WsClient, text: string): void {
  wireDebug(() => `OUTGOING ${renderFrame(text)}`);
  ws.send(text);
}

/** Writes an incoming frame to the wire log (at DEBUG). */
export function logIncoming(text: string): void {
  wireDebug(() => `INCOMING ${renderFrame(text)}`);
}

/**
 * Logs a line verbatim at DEBUG on the wire logger. The lazy callback means
 * the frame is only redacted and serialised when that level is enabled, and
 * a lazy message is never searched for placeholders, so JSON braces stay.
 */
function wireDebug(build: () => string): void {
  wire.debug(() => [build()]);
}

/** A serialised frame for the wire log, secrets hidden. */
function renderFrame(frame: string): string {
  try {
    return JSON.stringify(redactSecrets(JSON.parse(frame)));
  } catch {
    return `<${frame.length} characters that are not JSON>`;
  }
}
