/**
 * What the parts of the request listener share: its options, the table of
 * requests being worked on, and the outbox that addresses and sends frames.
 * Admission (request_admission.ts), running (request_runner.ts) and reply
 * delivery (reply_delivery.ts) all work on one {@linkcode ListenerState}.
 */
import type { AgentConfig } from "../config/mod.ts";
import type { CommandServices } from "./command.ts";
import type { Journal } from "./journal.ts";
import type { PluginTable } from "./plugin_conf.ts";
import { type Envelope, MessageIds, nackFrame, percentDecode } from "../protocol/mod.ts";

/** How the listener sends frames. */
export interface Transport {
  /** Sends a frame if the connection is open; returns false otherwise. */
  send(frame: Record<string, unknown>): boolean;
  isOpen(): boolean;
}

/** Options for `RequestListener`. */
export interface ListenerOptions {
  config: AgentConfig;
  journal: Journal;
  plugins: () => PluginTable;
  transport: Transport;
  /** The agentID of the current session, or null before the first handshake. */
  agentId: () => string | null;
  /** Services for commands; `jobs` is provided by the listener. */
  services: Omit<CommandServices, "jobs">;
  /** Called for HEMLOCK: the agent must die at once. */
  onHemlock: () => void;
  /**
   * Called for ALERT_ACK: resolves false for an unknown alert id (it is
   * NACKed); returns null or is unset while intrusion detection is off.
   */
  onAlertAck?: (requestId: string) => Promise<boolean> | null;
}

/** A request accepted and not yet replied to. */
export interface InFlight {
  command: string;
  abort: AbortController;
  cancelled: boolean;
  /** The manager NACKed while the command ran: store the reply, do not send it. */
  nacked: boolean;
  /** A read-only request whose row could not be journalled: answered, never ACKed. */
  unjournalled: boolean;
}

/** A fresh in-flight entry for `command`. */
export function newFlight(command: string): InFlight {
  return {
    command,
    abort: new AbortController(),
    cancelled: false,
    nacked: false,
    unjournalled: false,
  };
}

/** Addresses frames about a request and sends them through the transport. */
export class Outbox {
  #o: ListenerOptions;
  #ids = new MessageIds();

  constructor(options: ListenerOptions) {
    this.#o = options;
  }

  /** A new message id. */
  nextId(): string {
    return this.#ids.next();
  }

  /** The envelope of a frame about `id`; a new message id unless a retransmission gives one. */
  env(id: string, messageId: string = this.#ids.next()): Envelope {
    return { message_id: messageId, request_id: id, agent_id: this.#o.agentId() };
  }

  /** Rejects the frame about `id` with a reason the manager can show; every NACK passes here. */
  nack(id: string, error: string, entity?: string): void {
    this.send(nackFrame(this.env(id), error, entity));
  }

  /** Sends a frame; false when the connection is not open. */
  send(frame: Record<string, unknown>): boolean {
    return this.#o.transport.send(frame);
  }
}

/** Longest reason written in a failure line; a script's stderr keeps its end, where errors are. */
const MAX_REASON_CHARS = 1000;

/**
 * The reason of a failed reply or NACK as one log line: percent-encoding
 * undone, line breaks shown as " | ", and a long text cut to its tail.
 */
export function failureReason(text: string): string {
  const line = percentDecode(text).trim().replace(/\s*\r?\n\s*/g, " | ");
  if (line === "") return "(no error message)";
  return line.length > MAX_REASON_CHARS ? `…${line.slice(-MAX_REASON_CHARS)}` : line;
}

/** The state the listener's parts share; `options.config` changes on SIGHUP. */
export interface ListenerState {
  options: ListenerOptions;
  inflight: Map<string, InFlight>;
  outbox: Outbox;
}
