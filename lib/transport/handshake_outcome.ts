/**
 * What the manager's reply to the handshake means for the connection: 200
 * accepts with the manager's handshake object; anything else refuses, with
 * the reason to log, whether this agent's token must be replaced (409), and
 * how long the manager asked the agent to wait (503 and FORCE_BACKOFF).
 */
import { parseHandshakeReply } from "../protocol/mod.ts";

/** Seconds to wait after a 503 handshake reply without FORCE_BACKOFF, as the original agent waits. */
const DEFAULT_FORCE_BACKOFF_S = 60;

/** The manager's answer to the handshake, decided. */
export type HandshakeOutcome =
  | {
    accepted: true;
    /** The manager's handshake object. */
    handshake: Record<string, unknown>;
  }
  | {
    accepted: false;
    /** Why, in plain words. */
    reason: string;
    /** 409: another server uses this agent's token; the caller makes a new one. */
    tokenConflict?: boolean;
    /** 503: seconds to wait at least before the next attempt. */
    forceBackoffS?: number;
  };

/** Decides what the handshake reply `text` means; never throws. */
export function handshakeOutcome(text: string): HandshakeOutcome {
  const reply = parseHandshakeReply(text);
  if (typeof reply === "string") return { accepted: false, reason: reply };
  switch (reply.return_code) {
    case 200:
      if (!reply.handshake) {
        return {
          accepted: false,
          reason: "the manager accepted the handshake but sent no handshake object",
        };
      }
      return { accepted: true, handshake: reply.handshake };
    case 401:
      return {
        accepted: false,
        reason: "the manager refused the handshake (401 unauthorised): it does not accept this " +
          "agent's token; check that the manager still has this agent registered and that " +
          "<base_dir>/secure/token is the token it was registered with (a cloned VM or a " +
          "restored base directory brings another one)",
      };
    case 409:
      return {
        accepted: false,
        reason:
          "the manager reports that this agent's token is used by another server (409); a new token was made",
        tokenConflict: true,
      };
    case 503: {
      const seconds = forceBackoffSeconds(reply.FORCE_BACKOFF);
      return {
        accepted: false,
        reason: `the manager is busy (503) and asked the agent to wait ${seconds} s`,
        forceBackoffS: seconds,
      };
    }
    default:
      return {
        accepted: false,
        reason:
          `the manager answered the handshake with the unexpected return_code ${reply.return_code}`,
      };
  }
}

function forceBackoffSeconds(value: unknown): number {
  const n = typeof value === "string" ? Number(value) : value;
  return typeof n === "number" && Number.isFinite(n) && n >= 0 ? n : DEFAULT_FORCE_BACKOFF_S;
}
