/**
 * What the life-cycle commands ask of the running agent: clear the journal
 * and logs (clean_image), stop the service once a REPLY is safe (terminate),
 * and confirm a waiting upgrade at the first accepted handshake so
 * `upgrade-binary` sees the new agent reach the manager.
 */
import { join } from "node:path";
import { CONSOLE_CATEGORY, getLogger } from "../logging/mod.ts";
import type { AgentControl, Journal } from "../core/mod.ts";
import { confirmUpgrade } from "../os/mod.ts";
import { VERSION } from "../protocol/mod.ts";

const log = getLogger(["dcm", "agent"]);
const consoleLog = getLogger(CONSOLE_CATEGORY);

/** How long a stop waits for the manager to acknowledge the REPLY once it is durable. */
const ACK_GRACE_MS = 10_000;
/** Longest wait for the REPLY to be durable at all. */
const REPLY_WAIT_MS = 120_000;
const POLL_MS = 100;

/** Options for {@linkcode makeAgentControl}. */
export interface AgentControlOptions {
  journal: Journal;
  baseDir: string;
  /** Ends the agent process gracefully (as SIGTERM does). */
  exit(): void;
}

/** The agent's {@linkcode AgentControl}. */
export function makeAgentControl(options: AgentControlOptions): AgentControl {
  const { journal } = options;
  return {
    clearJournal: (keep) => journal.purgeAllExcept(keep),
    async truncateLogs() {
      const { truncateAgentLogs } = await import("../os/scrubber/mod.ts");
      return truncateAgentLogs(join(options.baseDir, "logs"));
    },
    stopAfterReply(requestId) {
      void stopWhenReplied(requestId, options).catch((err) =>
        log.error("could not stop the agent after terminate: {error}", {
          error: (err as Error).message,
        })
      );
    },
  };
}

async function stopWhenReplied(requestId: string, options: AgentControlOptions): Promise<void> {
  const start = Date.now();
  let durableAt: number | undefined;
  while (Date.now() - start < REPLY_WAIT_MS) {
    await new Promise((r) => setTimeout(r, POLL_MS));
    const state = options.journal.get(requestId)?.state;
    if (state === "REPLY_ACKED" || state === "REPLY_NACKED") break;
    if (state === "REPLY") {
      durableAt ??= Date.now();
      if (Date.now() - durableAt >= ACK_GRACE_MS) break;
    }
  }
  const { ownSystemdUnit, serviceAction } = await import("../os/service.ts");
  const unit = ownSystemdUnit();
  if (unit !== null) {
    // systemd would restart an agent that simply exits (Restart=always): ask it to stop us.
    log.info("terminate: stopping the service {unit}", { unit });
    try {
      await serviceAction({ kind: "systemd", unit }, "stop", { noBlock: true });
      return;
    } catch (err) {
      log.error("terminate: {error}; the agent exits by itself", {
        error: (err as Error).message,
      });
    }
  } else {
    log.info(
      "terminate: the agent exits (no systemd unit; a SysV init script does not restart it)",
    );
  }
  options.exit();
}

/** At an accepted handshake: confirms a waiting upgrade or rollback and reports it as a LOG line. */
export function noteHandshake(baseDir: string, startedAt: string): void {
  try {
    const done = confirmUpgrade(baseDir, startedAt);
    if (done?.state === "upgraded") {
      consoleLog.info("dcm-agent upgraded from {from} to {to}; the previous executable is kept", {
        from: done.fromVersion,
        to: VERSION,
      });
    } else if (done?.state === "rolled_back") {
      consoleLog.warn(
        "the upgrade of dcm-agent to {to} was rolled back to {from}: {reason}",
        { from: done.fromVersion, to: done.toVersion, reason: done.reason ?? "unknown" },
      );
    }
  } catch (err) {
    log.warn("cannot confirm the upgrade in the secure directory: {error}", {
      error: (err as Error).message,
    });
  }
}
