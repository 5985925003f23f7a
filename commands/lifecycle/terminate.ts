/**
 * `terminate`: the manager is about to destroy the VM. The agent replies,
 * and once that REPLY is durable and acknowledged (or after a short grace)
 * it stops its service (systemd) or exits (SysV or no service manager), so
 * the manager always gets an answer. At-most-once holds as for any command:
 * a restart answers a retransmitted request from the journal, never runs it
 * again.
 */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "terminate",
  description: "Replies, then stops the agent's service once the reply is acknowledged.",
  args: {
    ignoreErrors: { type: "str", help: "Accepted for compatibility; not used." },
  },
  run(_args, ctx) {
    const agent = ctx.services.agent;
    if (!agent) {
      return Promise.resolve(
        makeReply(1, { error_message: "terminate needs a running agent to stop" }),
      );
    }
    agent.stopAfterReply(ctx.requestId);
    ctx.log.console("INFO", "terminate: the agent stops once this reply is acknowledged");
    return Promise.resolve(
      makeReply(0, { message: "The agent stops once this reply is acknowledged." }),
    );
  },
});
