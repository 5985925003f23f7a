/**
 * The websocket link to the agent manager (ARCHITECTURE.md, The wire protocol): connect outbound
 * with subprotocol `dcm`, send the handshake first, evaluate the manager's
 * reply, deliver later frames in order, detect dead connections with pings,
 * and reconnect for ever with backoff. This module is the reconnect loop and
 * the handling of the handshake's outcome; session.ts watches a live session
 * (heartbeat, dead peer, send cap, wire log).
 *
 * Uses the small client in ws_client.ts: Deno's built-in WebSocket has no
 * ping, no connect timeout and hangs on close while the peer is silent, and
 * npm `ws` costs ~14 MB of resident memory.
 */
import { getLogger } from "../logging/mod.ts";
import { Backoff } from "./backoff.ts";
import type { AgentConfig } from "../config/mod.ts";
import { handshakeOutcome } from "./handshake_outcome.ts";
import {
  type Attempt,
  closeSocket,
  logIncoming,
  newAttempt,
  release,
  sendText,
  stalledSend,
  startHeartbeat,
} from "./session.ts";
import { connectWebSocket, type WsClient, type WsClientOptions } from "./ws_client.ts";
import { closeText, describeError, tlsOptions } from "./ws_config.ts";

const log = getLogger(["dcm", "agent", "connection"]);

/** How long a graceful close may take before the socket is torn down. */
const CLOSE_GRACE_MS = 1000;

/** The websocket subprotocol the agent asks for (ARCHITECTURE.md, The wire protocol). */
const SUBPROTOCOL = "dcm";

/** Connection states (ARCHITECTURE.md, The wire protocol). */
export type ConnectionState = "WAITING" | "CONNECTING" | "HANDSHAKING" | "OPEN" | "DONE";

/** What the connection needs from the agent core. */
export interface ConnectionOptions {
  /** Uses [connection] agentmanager_url, backoff, max_backoff, heartbeat_frequency, handshake_timeout and the TLS keys. */
  config: AgentConfig;
  /** Builds the handshake document; called on every attempt. */
  buildHandshake(): Promise<Record<string, unknown>>;
  /** The manager accepted (200): `handshake` is its handshake object; runs before any later frame is delivered. */
  onAccepted(handshake: Record<string, unknown>): void;
  /** The manager answered 409: the caller regenerates the token for the next handshake. */
  onTokenConflict(): void;
  /** The connection became OPEN (right after onAccepted); send() works from here on. */
  onOpen(): void;
  /** A post-handshake text frame, in arrival order. */
  onMessage(text: string): void;
  /** An OPEN session ended (dropped, found dead, reconfigured or stopped). */
  onDisconnect(reason: string): void;
}

/** The agent's websocket client; reconnects until stop(). */
export class Connection {
  #options: ConnectionOptions;
  #config: AgentConfig;
  #backoff: Backoff;
  #state: ConnectionState = "WAITING";
  #started = false;
  #attempt: Attempt | null = null;
  /** Bumped to abandon an attempt whose handshake is still being built. */
  #generation = 0;
  #reconnectTimer?: ReturnType<typeof setTimeout>;
  /** The warning about an unconfirmed subprotocol was logged for the current URL. */
  #warnedSubprotocol = false;

  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#config = options.config;
    this.#backoff = new Backoff({
      initialMs: options.config.connection.backoff,
      maxMs: options.config.connection.max_backoff,
    });
  }

  /** Starts connecting (the first attempt is immediate). */
  start(): void {
    if (this.#started || this.#state === "DONE") return;
    this.#started = true;
    this.#schedule();
  }

  /** True while the session is OPEN. */
  isOpen(): boolean {
    return this.#state === "OPEN";
  }

  /** The current state. */
  state(): ConnectionState {
    return this.#state;
  }

  /** Sends a frame if OPEN; returns false otherwise (the caller keeps it). */
  send(frame: Record<string, unknown>): boolean {
    const ws = this.#attempt?.ws;
    if (this.#state !== "OPEN" || !ws) return false;
    const stalled = stalledSend(ws, this.#config.connection.max_message_size);
    if (stalled) {
      this.#dead(this.#attempt!, ws, stalled);
      return false;
    }
    const text = JSON.stringify(frame);
    try {
      sendText(ws, text);
      return true;
    } catch (err) {
      log.warn("cannot send a frame to the manager: {error}", { error: (err as Error).message });
      return false;
    }
  }

  /** Applies a reloaded config: timings at once; a new URL or TLS setting reconnects. */
  updateConfig(config: AgentConfig): void {
    const before = this.#config.connection;
    const after = config.connection;
    this.#config = config;
    this.#backoff.setLimits(after.backoff, after.max_backoff);
    if (!this.#started || this.#state === "DONE") return;
    const moved = before.agentmanager_url !== after.agentmanager_url ||
      before.ca_cert !== after.ca_cert ||
      before.allow_unknown_certs !== after.allow_unknown_certs ||
      before.check_hostname !== after.check_hostname;
    if (moved) {
      log.info("the manager URL or TLS settings changed; reconnecting to {url}", {
        url: after.agentmanager_url,
      });
      this.#abandon("the manager URL or TLS settings changed");
      this.#warnedSubprotocol = false;
      // A new target owes nothing to the old one's failures.
      this.#backoff.activity();
      this.#schedule();
    } else {
      this.#attempt?.ws?.setMaxPayload(after.max_message_size);
      // Restarting the heartbeat resets its liveness check, so only a new period does.
      if (
        before.heartbeat_frequency !== after.heartbeat_frequency &&
        this.#attempt?.heartbeatTimer !== undefined
      ) {
        this.#startHeartbeat(this.#attempt);
      }
    }
  }

  /**
   * Ends the current session and connects again at once, so the manager gets
   * a new handshake (the offered commands changed).
   */
  reconnect(reason: string): void {
    if (!this.#started || this.#state === "DONE") return;
    log.info("reconnecting to send a new handshake: {reason}", { reason });
    this.#abandon(reason);
    this.#schedule();
  }

  /** Stops reconnecting and closes the socket (torn down if the close takes over ~1 s). */
  async stop(): Promise<void> {
    if (this.#state === "DONE") return;
    const attempt = this.#abandon("the agent is shutting down");
    this.#state = "DONE";
    await attempt?.done;
  }

  /** Ends the current attempt without backoff or reconnect; returns it. */
  #abandon(reason: string): Attempt | null {
    this.#generation++;
    clearTimeout(this.#reconnectTimer);
    this.#reconnectTimer = undefined;
    const attempt = this.#attempt;
    this.#attempt = null;
    const wasOpen = this.#state === "OPEN";
    this.#state = "WAITING";
    if (!attempt) return null;
    release(attempt);
    if (wasOpen) this.#notifyDisconnect(reason);
    return attempt;
  }

  #schedule(): void {
    clearTimeout(this.#reconnectTimer);
    this.#state = "WAITING";
    this.#reconnectTimer = setTimeout(() => {
      this.#reconnectTimer = undefined;
      void this.#connect();
    }, this.#backoff.delayMs());
  }

  async #connect(): Promise<void> {
    const generation = ++this.#generation;
    this.#state = "CONNECTING";
    let handshake: Record<string, unknown>;
    try {
      handshake = await this.#options.buildHandshake();
    } catch (err) {
      if (generation !== this.#generation) return;
      const reason = `cannot build the handshake: ${(err as Error).message}`;
      this.#retry("CONNECTING", this.#config.connection.agentmanager_url ?? "", reason, true);
      return;
    }
    if (generation !== this.#generation) return;
    // Read after the await: a reload may have changed the timings meanwhile.
    const conn = this.#config.connection;
    const url = conn.agentmanager_url ?? "";
    let tls: Partial<WsClientOptions>;
    try {
      tls = tlsOptions(this.#config);
    } catch (err) {
      this.#retry("CONNECTING", url, (err as Error).message, true);
      return;
    }
    const attempt = newAttempt(url);
    this.#attempt = attempt;
    const alive = (): void => {
      attempt.alive = true;
    };
    attempt.done = connectWebSocket(url, {
      ...tls,
      protocol: SUBPROTOCOL,
      timeoutMs: conn.handshake_timeout * 1000,
      maxPayload: conn.max_message_size,
      closeTimeoutMs: CLOSE_GRACE_MS,
      signal: attempt.abort.signal,
      onMessage: (text) => this.#onFrame(attempt, text),
      onPing: alive,
      onPong: alive,
      onError: (err) => this.#onSocketError(attempt, err),
      onClose: (code, reason) => this.#end(attempt, closeText(code, reason), false),
    }).then((ws) => {
      attempt.ws = ws;
      // A SIGHUP during the upgrade may have changed the limit.
      ws.setMaxPayload(this.#config.connection.max_message_size);
      // Abandoned while the upgrade finished: close what just opened.
      if (attempt.ended) closeSocket(attempt);
      else this.#onSocketOpen(attempt, ws, handshake);
      return ws.closed;
    }, (err) => this.#onSocketError(attempt, err));
  }

  #onSocketOpen(attempt: Attempt, ws: WsClient, handshake: Record<string, unknown>): void {
    // The original agent accepted a manager that confirms no subprotocol.
    if (ws.protocol !== SUBPROTOCOL && !this.#warnedSubprotocol) {
      log.warn(
        "the manager at {url} did not confirm the websocket subprotocol 'dcm'; " +
          "using the connection anyway, as the original agent did",
        { url: attempt.url },
      );
      this.#warnedSubprotocol = true;
    }
    this.#state = "HANDSHAKING";
    try {
      sendText(ws, JSON.stringify(handshake));
    } catch (err) {
      this.#end(attempt, `cannot send the handshake: ${(err as Error).message}`, true);
      return;
    }
    const seconds = this.#config.connection.handshake_timeout;
    attempt.handshakeTimer = setTimeout(() => {
      this.#end(attempt, `the manager did not answer the handshake within ${seconds} s`, true);
    }, seconds * 1000);
    this.#startHeartbeat(attempt);
  }

  #onSocketError(attempt: Attempt, err: unknown): void {
    // Errors on an open socket are refused frames (too large, invalid): back
    // off so that a manager resending the same frame does not cause a hot loop.
    this.#end(attempt, describeError(err, this.#config), true);
  }

  #onFrame(attempt: Attempt, text: string): void {
    if (attempt.ended) return;
    attempt.alive = true;
    logIncoming(text);
    if (this.#state === "HANDSHAKING") {
      this.#onHandshakeReply(attempt, text);
    } else if (this.#state === "OPEN") {
      this.#backoff.activity();
      try {
        this.#options.onMessage(text);
      } catch (err) {
        log.error("handling a message from the manager failed: {error}", {
          error: (err as Error).message,
        });
      }
    }
  }

  #onHandshakeReply(attempt: Attempt, text: string): void {
    clearTimeout(attempt.handshakeTimer);
    attempt.handshakeTimer = undefined;
    const outcome = handshakeOutcome(text);
    if (!outcome.accepted) {
      if (outcome.tokenConflict) {
        try {
          this.#options.onTokenConflict();
        } catch (err) {
          log.error("cannot replace the token after a 409 reply: {error}", {
            error: (err as Error).message,
          });
        }
      }
      if (outcome.forceBackoffS !== undefined) this.#backoff.force(outcome.forceBackoffS);
      this.#end(attempt, outcome.reason, true);
      return;
    }
    try {
      this.#options.onAccepted(outcome.handshake);
    } catch (err) {
      this.#end(
        attempt,
        `the accepted handshake could not be used: ${(err as Error).message}`,
        true,
      );
      return;
    }
    // onAccepted may have stopped or reconfigured the connection.
    if (attempt.ended) return;
    this.#state = "OPEN";
    this.#backoff.activity();
    log.info("connected to the manager at {url}", { url: attempt.url });
    try {
      this.#options.onOpen();
    } catch (err) {
      log.error("the open-connection handler failed: {error}", {
        error: (err as Error).message,
      });
    }
  }

  /** Starts (or restarts) the session's heartbeat with the configured period. */
  #startHeartbeat(attempt: Attempt): void {
    startHeartbeat(attempt, {
      seconds: this.#config.connection.heartbeat_frequency,
      onDead: (ws, why) => this.#dead(attempt, ws, why),
    });
  }

  /** Drops a session whose peer is gone or not reading, without waiting for a close handshake. */
  #dead(attempt: Attempt, ws: WsClient, why: string): void {
    ws.terminate();
    this.#end(attempt, `the connection is dead: ${why}`, false);
  }

  /**
   * Ends an attempt once. A session that was OPEN reconnects as soon as the
   * backoff allows (normally at once, ARCHITECTURE.md, The wire protocol) unless `failed` says the
   * agent refused something; any earlier failure backs off.
   */
  #end(attempt: Attempt, reason: string, failed: boolean): void {
    if (attempt.ended) return;
    release(attempt);
    if (this.#attempt !== attempt) return;
    this.#attempt = null;
    const phase = this.#state;
    if (phase === "OPEN") this.#notifyDisconnect(reason);
    if (this.#state === "DONE") return;
    this.#retry(phase, attempt.url, reason, phase !== "OPEN" || failed);
  }

  /** Logs why the attempt in `phase` ended and schedules the next one. */
  #retry(phase: ConnectionState, url: string, reason: string, increase: boolean): void {
    const wait = increase ? this.#backoff.error() : this.#backoff.delayMs();
    const when = wait === 0 ? "now" : `in ${formatSeconds(wait)} s`;
    const values = { url, reason, when };
    if (phase === "OPEN") {
      log.info(
        "lost the connection to the manager at {url}: {reason}; reconnecting {when}",
        values,
      );
    } else if (phase === "HANDSHAKING") {
      log.warn(
        "the manager at {url} did not accept the handshake: {reason}; retrying {when}",
        values,
      );
    } else {
      log.warn("cannot reach the manager at {url}: {reason}; retrying {when}", values);
    }
    this.#schedule();
  }

  #notifyDisconnect(reason: string): void {
    try {
      this.#options.onDisconnect(reason);
    } catch (err) {
      log.error("the disconnect handler failed: {error}", { error: (err as Error).message });
    }
  }
}

function formatSeconds(ms: number): string {
  return (ms / 1000).toFixed(1);
}
