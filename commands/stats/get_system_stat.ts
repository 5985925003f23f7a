/** `get_system_stat`: the newest samples of a named collector. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "get_system_stat",
  description: "Returns the samples a system-stat collector holds, oldest first.",
  readOnly: true,
  args: {
    statName: { type: "str", required: true, help: "the name given to init_system_stat" },
  },
  run(args, ctx) {
    if (args.statName === null) throw new Error("statName must not be null");
    const { replyType, samples } = ctx.services.stats.get(args.statName);
    return Promise.resolve(
      makeReply(0, { reply_type: replyType, reply_object: { status: samples } }),
    );
  },
});
