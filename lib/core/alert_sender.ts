/**
 * Sends queued intrusion-detection alerts to the manager as ALERT frames and
 * retransmits each one until its ALERT_ACK. Only a small window of alerts is
 * held in memory (ids and timestamps); the rest wait in the journal, so a
 * long absence of the manager costs disk, not memory. An alert keeps one
 * request_id for its whole life, so it is never in flight twice and a late
 * ACK still matches it after a restart.
 */
import { getLogger } from "../logging/mod.ts";
import { type AlertFields, alertFrame } from "../protocol/mod.ts";
import type { AlertStore } from "./journal_alerts.ts";
import type { Transport } from "./listener_state.ts";

const log = getLogger(["dcm", "agent", "alerts"]);

/** Alerts sent and not yet acknowledged, at most. */
const DEFAULT_WINDOW = 100;
/** Request ids of recently acknowledged alerts: a repeated ACK is not an error. */
const RECENT_ACKS = 1000;

/** Options of {@linkcode AlertSender}. */
export interface AlertSenderOptions {
  store: AlertStore;
  transport: Transport;
  /** Seconds between retransmissions of an unacknowledged alert (read at each tick). */
  retransmitSeconds: () => number;
  /** Alerts in flight at once (default 100). */
  window?: number;
}

interface Flight {
  alert: AlertFields;
  sentAt: number;
}

/** The alert half of the wire: ALERT out, ALERT_ACK in. */
export class AlertSender {
  #o: AlertSenderOptions;
  #window: number;
  #inflight = new Map<string, Flight>();
  /** Highest queue seq loaded into the window. */
  #loadedSeq = 0;
  #recent = new Set<string>();
  #timer: ReturnType<typeof setInterval> | undefined;

  constructor(options: AlertSenderOptions) {
    this.#o = options;
    this.#window = options.window ?? DEFAULT_WINDOW;
  }

  /** Starts retransmitting and sends what the journal holds. */
  start(): void {
    const tickMs = Math.min(1000, Math.max(50, this.#o.retransmitSeconds() * 500));
    this.#timer ??= setInterval(() => this.#retransmit(), tickMs);
    this.pump();
  }

  /** Stops the retransmission timer. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** The number of alerts sent and awaiting their ACK. */
  get inFlight(): number {
    return this.#inflight.size;
  }

  /** The connection opened: send the window again at once, then fill it. */
  onOpen(): void {
    for (const [id, f] of this.#inflight) this.#send(id, f);
    this.pump();
  }

  /** Fills the window from the journal and sends the new alerts (only while connected). */
  pump(): void {
    if (!this.#o.transport.isOpen()) return;
    while (this.#inflight.size < this.#window) {
      const rows = this.#o.store.pending(this.#loadedSeq, this.#window - this.#inflight.size);
      if (rows.length === 0) return;
      for (const r of rows) {
        this.#loadedSeq = r.seq;
        if (this.#inflight.has(r.requestId) || this.#recent.has(r.requestId)) continue;
        const f = { alert: r.alert, sentAt: 0 };
        this.#inflight.set(r.requestId, f);
        if (!this.#send(r.requestId, f)) return;
      }
    }
  }

  /** An ALERT_ACK arrived; resolves false when no queued alert has this id. */
  async onAck(requestId: string): Promise<boolean> {
    if (this.#recent.has(requestId)) return true;
    const wasInFlight = this.#inflight.delete(requestId);
    if (wasInFlight) this.pump();
    const known = await this.#o.store.acknowledge(requestId);
    if (known || wasInFlight) this.#remember(requestId);
    if (known) log.debug("alert {id} acknowledged by the manager", { id: requestId });
    return known || wasInFlight;
  }

  #remember(id: string): void {
    this.#recent.add(id);
    if (this.#recent.size > RECENT_ACKS) {
      this.#recent.delete(this.#recent.values().next().value!);
    }
  }

  #retransmit(): void {
    // Nothing in flight: every enqueue, ACK and reconnect already pumped, so an
    // idle tick need not query the journal.
    if (this.#inflight.size === 0 || !this.#o.transport.isOpen()) return;
    const due = Date.now() - this.#o.retransmitSeconds() * 1000;
    for (const [id, f] of this.#inflight) {
      if (f.sentAt <= due && !this.#send(id, f)) return;
    }
    this.pump();
  }

  #send(id: string, f: Flight): boolean {
    const now = Date.now();
    if (!this.#o.transport.send(alertFrame(id, f.alert, { now }))) return false;
    f.sentAt = now;
    return true;
  }
}
