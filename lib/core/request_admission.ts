/**
 * Where a frame enters the agent. Each text frame is parsed (a malformed one is
 * NACKed with the reason); a new REQUEST is checked (known command, capacity),
 * journalled as ACKED and ACKed only once that row is durable; a duplicate
 * REQUEST (same request_id) never runs twice: it gets an ACK, the stored reply
 * or the earlier NACK again. CANCEL, STATUS and HEMLOCK are answered here too;
 * ACK/NACK of a REPLY go to reply delivery, ALERT_ACK to the alert sender.
 */
import { CONSOLE_CATEGORY, getLogger, LogThrottle } from "../logging/mod.ts";
import {
  ackFrame,
  type IncomingMessage,
  parseFrame,
  type RequestMessage,
  statusFrame,
} from "../protocol/mod.ts";
import type { RequestRow } from "./journal.ts";
import { failureReason, type ListenerState, newFlight } from "./listener_state.ts";
import type { ReplyDelivery } from "./reply_delivery.ts";
import { cancelledBeforeStart, type RequestRunner } from "./request_runner.ts";

const log = getLogger(["dcm", "agent", "messaging"]);
const consoleLog = getLogger(CONSOLE_CATEGORY);

/** Outstanding requests allowed when `[messaging] max_at_once` is -1. */
const MAX_OUTSTANDING = 10000;
/** Malformed messages logged one by one per minute; the rest are counted in one line. */
const MALFORMED_LOGGED_PER_MINUTE = 10;

/** Turns incoming frames into journalled requests and answers the control frames. */
export class RequestAdmission {
  #s: ListenerState;
  #runner: RequestRunner;
  #delivery: ReplyDelivery;
  #accepting = true;
  #malformed = new LogThrottle({
    burst: MALFORMED_LOGGED_PER_MINUTE,
    periodMs: 60_000,
    onSuppressed: (n) =>
      log.warn("rejected {n} more malformed messages in the last minute (not logged one by one)", {
        n,
      }),
  });

  constructor(state: ListenerState, parts: { runner: RequestRunner; delivery: ReplyDelivery }) {
    this.#s = state;
    this.#runner = parts.runner;
    this.#delivery = parts.delivery;
  }

  /** Stops admitting new requests (shutdown); duplicates and controls are still answered. */
  stopAccepting(): void {
    this.#accepting = false;
  }

  /** Handles one incoming text frame; never throws. */
  handleFrame(text: string): void {
    const parsed = parseFrame(text);
    if (!parsed.ok) {
      if (this.#malformed.allow()) {
        logRejected(parsed.requestId, "(malformed message)", parsed.error);
      }
      this.#s.outbox.nack(parsed.requestId, parsed.error);
      return;
    }
    try {
      this.#dispatch(parsed.message);
    } catch (err) {
      log.error("failed to handle {type} for {id}: {error}", {
        type: parsed.message.type,
        id: parsed.message.request_id,
        error: (err as Error).message,
      });
      this.#s.outbox.nack(
        parsed.message.request_id,
        `the agent could not handle the message: ${(err as Error).message}`,
      );
    }
  }

  #dispatch(msg: IncomingMessage): void {
    const id = msg.request_id;
    switch (msg.type) {
      case "HEMLOCK":
        log.warn("HEMLOCK received: the agent kills itself now");
        this.#s.options.onHemlock();
        return;
      case "ALERT_ACK":
        this.#onAlertAck(id);
        return;
      case "REQUEST":
        this.#onRequest(msg);
        return;
      case "ACK":
      case "NACK":
        this.#delivery.onReplyAck(id, msg.type);
        return;
      case "CANCEL":
        this.#onCancel(id);
        return;
      case "STATUS":
        this.#onStatus(id);
        return;
    }
  }

  #onRequest(msg: RequestMessage): void {
    const { inflight, outbox, options } = this.#s;
    const id = msg.request_id;
    if (inflight.has(id)) {
      outbox.send(ackFrame(outbox.env(id), "request_received"));
      return;
    }
    if (this.#delivery.has(id)) {
      this.#delivery.resendStored(id, options.journal.get(id));
      return;
    }
    const row = options.journal.get(id);
    if (row) {
      this.#answerKnownRequest(row);
      return;
    }
    if (!this.#accepting) return; // Shutting down: the manager retransmits to the next agent.
    const entry = options.plugins().find(msg.payload.command);
    if (!entry) {
      const reason =
        `the command '${msg.payload.command}' is not known to this agent (plugin.conf: ${options.plugins().source})`;
      logRejected(id, msg.payload.command, reason);
      outbox.nack(id, reason);
      return;
    }
    const limit = options.config.messaging.max_at_once;
    const cap = limit > -1 ? limit : MAX_OUTSTANDING;
    if (inflight.size + this.#delivery.size >= cap) {
      const text = `the agent can only handle ${cap} commands at once; retry later`;
      consoleLog.fatal("The agent is overloaded: {text}", { text, requestId: id });
      logRejected(id, entry.name, text);
      outbox.nack(id, text);
      return;
    }
    inflight.set(id, newFlight(entry.name));
    const plan = this.#runner.plan(entry, msg.payload.longer_runner);
    // The request is journalled here; the ACK waits for that commit.
    const committed = options.journal.insertAcked(id, msg, {
      agentId: options.agentId(),
      started: plan.startsNow,
    });
    committed.then(
      () => outbox.send(ackFrame(outbox.env(id))),
      (err) => {
        const flight = inflight.get(id);
        if (plan.readOnly && flight) {
          // Running it again is harmless, so answer it (without an ACK, which would promise
          // a journalled request): heartbeats keep working while the disk is full.
          flight.unjournalled = true;
          return;
        }
        inflight.delete(id);
        const reason = `the agent could not record the request, so it did not run it: ${
          (err as Error).message
        }; it can be sent again once the agent's disk has space`;
        logRejected(id, entry.name, reason);
        outbox.nack(id, reason);
      },
    );
    this.#runner.schedule(id, entry, { args: msg.payload.arguments, plan, committed });
  }

  /** A REQUEST for a request the journal knows but memory does not. */
  #answerKnownRequest(row: RequestRow): void {
    const { outbox } = this.#s;
    switch (row.state) {
      case "NACKED":
        outbox.nack(row.requestId, `${row.requestId} was already rejected`, "request_received");
        return;
      case "ACKED":
        // Only possible for a row that start-up recovery is about to run.
        outbox.send(ackFrame(outbox.env(row.requestId), "request_received"));
        return;
      default:
        this.#delivery.resendStored(row.requestId, row);
    }
  }

  /** Hands an ALERT_ACK to the alert sender; ignored while alerts are off, NACKed when unknown. */
  #onAlertAck(id: string): void {
    const known = this.#s.options.onAlertAck?.(id);
    if (!known) return;
    known.then(
      (ok) => {
        if (!ok) this.#s.outbox.nack(id, `${id} is an unknown alert id`);
      },
      (err) => log.error("could not record ALERT_ACK {id}: {error}", { id, error: String(err) }),
    );
  }

  #onCancel(id: string): void {
    const { inflight, outbox, options } = this.#s;
    const flight = inflight.get(id);
    if (!flight && this.#runner.cancelJob(id)) {
      log.info("cancelling the running job of request {id}", { id });
      return;
    }
    if (!flight) {
      if (!options.journal.get(id)) outbox.nack(id, `${id} is an unknown ID`);
      return; // Cancelling a finished request is harmless.
    }
    log.info("cancelling request {id} ({command})", { id, command: flight.command });
    flight.cancelled = true;
    if (this.#runner.withdraw(id)) {
      void this.#delivery.finish(id, cancelledBeforeStart());
      return;
    }
    flight.abort.abort(new Error("cancelled by the manager"));
  }

  #onStatus(id: string): void {
    const { inflight, outbox, options } = this.#s;
    if (inflight.has(id)) {
      outbox.send(statusFrame(outbox.env(id), "ACKED", null));
      return;
    }
    const row = options.journal.get(id);
    if (!row) {
      outbox.nack(id, `${id} is an unknown ID`);
      return;
    }
    outbox.send(statusFrame(outbox.env(id), row.state, row.reply));
  }
}

/** The agent's own record of a NACKed request: one line with id, command and reason. */
function logRejected(id: string, command: string, reason: string): void {
  log.warn("request {id} ({command}) rejected: {reason}", {
    id,
    command,
    reason: failureReason(reason),
    requestId: id,
  });
}
