/** `initialize`: renames the host, adds the customer account and sets the state RUNNING. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

/** The customer account's user name: `c` and the id zero-padded to 3 digits (5 → c005). */
export function customerUserName(customerId: number): string {
  return `c${String(customerId).padStart(3, "0")}`;
}

export default defineCommand({
  name: "initialize",
  description: "Renames the host, adds the customer account c<id> and marks the agent RUNNING.",
  args: {
    cloudId: { type: "str", required: true, help: "Unused." },
    customerId: { type: "int", required: true, help: "Names the customer account c%03d." },
    regionId: { type: "str", required: true, help: "Unused." },
    zoneId: { type: "str", required: true, help: "Unused." },
    serverId: { type: "str", required: true, help: "Unused." },
    serverName: { type: "str", required: true, help: "The new hostname." },
    encryptedEphemeralFsKey: { type: "base64_text", required: true, help: "Unused." },
  },
  async run(args, ctx) {
    if (args.customerId === null || args.customerId < 0) {
      return makeReply(1, {
        message: `customerId must be a whole number of 0 or more to name the customer ` +
          `account, not ${args.customerId}`,
      });
    }
    try {
      const renamed = await ctx.invoke("rename", { serverName: args.serverName });
      if (renamed.return_code !== 0) {
        return { ...renamed, message: `${renamed.message} : rename failed` };
      }
      const added = await ctx.invoke("add_user", {
        userId: customerUserName(args.customerId),
        firstName: "Customer",
        lastName: "Account",
        authentication: null,
        administrator: "false",
      });
      if (added.return_code !== 0) {
        return { ...added, message: `${added.message} : addUser failed` };
      }
      ctx.services.state.set("RUNNING");
      return makeReply(0);
    } catch (err) {
      // The original put the exception text in `message`.
      return makeReply(1, { message: err instanceof Error ? err.message : String(err) });
    }
  },
});
