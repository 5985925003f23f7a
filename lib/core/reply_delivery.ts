/**
 * Reply delivery: every reply is journalled, then sent as a REPLY and sent
 * again every `retransmission_timeout` until the manager answers with ACK
 * (REPLY_ACKED) or NACK (REPLY_NACKED). Replies still unacknowledged when the
 * agent stopped are replayed after a restart, and all of them are pushed at
 * once whenever the connection opens.
 *
 * Memory stays bounded: only ids and due times of unacknowledged replies are
 * held, never their payloads (they are read back from the journal).
 */
import { getLogger } from "../logging/mod.ts";
import { makeReply, replyFrame, type ReplyPayload } from "../protocol/mod.ts";
import type { RequestRow } from "./journal.ts";
import { failureReason, type ListenerState } from "./listener_state.ts";

const log = getLogger(["dcm", "agent", "messaging"]);

/** Ids of replies sent without a journal row that are remembered for their ACK. */
const MAX_UNSTORED = 1000;

interface Awaiting {
  messageId: string;
  /** performance.now() of the next retransmission: a wall-clock step must not stall or flood it. */
  due: number;
}

/** Owns the replies sent and not yet acknowledged by the manager. */
export class ReplyDelivery {
  #s: ListenerState;
  #awaiting = new Map<string, Awaiting>();
  #timer: ReturnType<typeof setInterval> | undefined;
  #unstored = new Set<string>();

  constructor(state: ListenerState) {
    this.#s = state;
  }

  /** Number of replies awaiting an ACK. */
  get size(): number {
    return this.#awaiting.size;
  }

  /** Whether the reply to `id` was sent and is not yet acknowledged. */
  has(id: string): boolean {
    return this.#awaiting.has(id);
  }

  /** After a restart: takes up every journalled reply the manager never acknowledged. */
  restorePending(): void {
    for (const row of this.#s.options.journal.pendingReplies()) {
      this.#awaiting.set(row.requestId, {
        messageId: row.replyMessageId ?? this.#s.outbox.nextId(),
        due: 0,
      });
    }
  }

  /** Persists a reply, then sends it and keeps retransmitting it until ACK/NACK. */
  async finish(id: string, reply: ReplyPayload): Promise<void> {
    const { inflight, outbox, options } = this.#s;
    const flight = inflight.get(id);
    if (!flight) return; // The request was never journalled (its insert failed and was NACKed).
    const messageId = outbox.nextId();
    const nacked = flight.nacked;
    if (reply.return_code !== 0) {
      // The manager gets the reason in the reply; the VM's own log gets it here.
      log.warn("request {id} ({command}) failed with return code {code}: {reason}", {
        id,
        command: flight.command,
        code: reply.return_code,
        reason: failureReason(reply.error_message),
        requestId: id,
      });
    }
    let stored = !flight.unjournalled;
    if (stored) {
      try {
        await options.journal.storeReply(id, reply, {
          messageId,
          state: nacked ? "REPLY_NACKED" : "REPLY",
        });
      } catch (err) {
        // Never leave the manager waiting for ever: send it, though it is not durable.
        stored = false;
        log.error("could not journal the reply of {id}: {error}", {
          id,
          error: (err as Error).message,
        });
      }
    }
    inflight.delete(id);
    // A read-only request's row may have failed while it ran.
    if (flight.unjournalled) stored = false;
    if (nacked) return;
    // Retransmission reads the reply back from the journal; an unstored one is sent once and
    // the manager's retransmitted REQUEST asks for it again.
    if (stored) {
      this.#awaiting.set(id, { messageId, due: performance.now() + this.#retransmitMs() });
    } else this.#rememberUnstored(id);
    outbox.send(replyFrame(outbox.env(id, messageId), reply));
  }

  /** Sends the journalled reply of `id` again (a duplicate REQUEST for a replied request). */
  resendStored(id: string, row: RequestRow | undefined): void {
    this.#s.outbox.send(replyFrame(this.#s.outbox.env(id), storedReply(row)));
  }

  /** The manager's ACK or NACK of a REPLY (or a NACK of a request still running). */
  onReplyAck(id: string, type: "ACK" | "NACK"): void {
    const { inflight, outbox, options } = this.#s;
    if (this.#awaiting.delete(id)) {
      options.journal.setReplyState(id, type === "ACK" ? "REPLY_ACKED" : "REPLY_NACKED").catch((
        err,
      ) =>
        log.error("could not record the {type} of {id}: {error}", {
          type,
          id,
          error: (err as Error).message,
        })
      );
      return;
    }
    const flight = inflight.get(id);
    if (flight) {
      if (type === "NACK") {
        log.warn(
          "the manager rejected request {id} while it runs; its reply will be kept but not sent",
          { id },
        );
        flight.nacked = true;
      } else {
        outbox.nack(id, `the event REPLY_ACK is not valid when in state ACKED`, "request_received");
      }
      return;
    }
    if (this.#unstored.has(id)) return; // The ACK of a reply that could not be journalled.
    if (options.journal.get(id)) return; // A late duplicate for a finished request: nothing to do.
    outbox.nack(id, `${id} is an unknown ID`);
  }

  /** Called when the connection becomes OPEN: push every unacknowledged reply now. */
  onOpen(): void {
    for (const a of this.#awaiting.values()) a.due = 0;
    this.#retransmit();
  }

  /** (Re)starts the retransmission timer at the configured pace. */
  armTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    const every = Math.max(20, Math.min(1000, this.#retransmitMs() / 4));
    this.#timer = setInterval(() => this.#retransmit(), every);
  }

  /** Stops retransmitting (shutdown). */
  stopTimer(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Remembers a few ids answered without a journal row, so the manager's ACK is not NACKed. */
  #rememberUnstored(id: string): void {
    this.#unstored.add(id);
    if (this.#unstored.size > MAX_UNSTORED) {
      this.#unstored.delete(this.#unstored.values().next().value!);
    }
  }

  #retransmitMs(): number {
    return this.#s.options.config.messaging.retransmission_timeout * 1000;
  }

  #retransmit(): void {
    const { outbox, options } = this.#s;
    if (!options.transport.isOpen() || this.#awaiting.size === 0) return;
    const now = performance.now();
    for (const [id, a] of this.#awaiting) {
      if (a.due > now) continue;
      const row = options.journal.get(id);
      if (!row || row.state !== "REPLY") {
        this.#awaiting.delete(id);
        continue;
      }
      if (!outbox.send(replyFrame(outbox.env(id, a.messageId), storedReply(row)))) return;
      a.due = now + this.#retransmitMs();
    }
  }
}

/** A row's stored reply; a row whose reply_doc cannot be read still gets an answer. */
function storedReply(row: RequestRow | undefined): ReplyPayload {
  return row?.reply ?? makeReply(1, { error_message: "the stored reply could not be read" });
}
