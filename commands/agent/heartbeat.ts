/** `heartbeat`: the agent's STARTING/RUNNING state. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "heartbeat",
  description: "Reports the agent's state: STARTING until initialize succeeds, then RUNNING.",
  readOnly: true,
  args: {},
  run(_args, ctx) {
    return Promise.resolve(
      makeReply(0, { reply_type: "string", reply_object: ctx.services.state.get() }),
    );
  },
});
