/** `delete_system_stat`: stops and removes a named collector. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "delete_system_stat",
  description: "Stops a system-stat collector and discards its samples.",
  args: {
    statName: { type: "str", required: true, help: "the name given to init_system_stat" },
  },
  run(args, ctx) {
    if (args.statName === null) throw new Error("statName must not be null");
    ctx.services.stats.delete(args.statName);
    return Promise.resolve(makeReply(0));
  },
});
