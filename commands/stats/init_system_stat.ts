/** `init_system_stat`: starts a named system-stat collector. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "init_system_stat",
  description: "Starts collecting a system statistic every checkInterval seconds under statName.",
  args: {
    statType: {
      type: "str",
      required: true,
      help: "cpu-idle, system-stats, disk-*-ops/bytes or net-bytes-in/out",
    },
    statName: { type: "str", required: true, help: "the caller's name for this collector" },
    holdCount: { type: "int", required: true, help: "how many of the newest samples to keep" },
    checkInterval: { type: "float", required: true, help: "seconds between samples" },
  },
  run(args, ctx) {
    const { statType, statName, holdCount, checkInterval } = args;
    // Mandatory arguments may still be null (ARCHITECTURE.md, Command rules); none of these can be.
    if (statType === null || statName === null || holdCount === null || checkInterval === null) {
      throw new Error("statType, statName, holdCount and checkInterval must not be null");
    }
    ctx.services.stats.init({ statType, statName, holdCount, checkInterval });
    return Promise.resolve(makeReply(0));
  },
});
