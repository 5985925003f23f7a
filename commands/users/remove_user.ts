/** `remove_user`: removes a login user, its home, mail spool and sudo rights. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { liveAdapterOptions } from "../../lib/os/mod.ts";

export default defineCommand({
  name: "remove_user",
  description: "Removes a user with its processes, home, mail spool and own sudoers drop-in.",
  args: {
    userId: { type: "user_name", required: true, help: "The login name to remove." },
  },
  async run(args, ctx) {
    if (args.userId === null) {
      throw new Error("userId is null; give the name of the user to remove");
    }
    const { Accounts } = await import("../../lib/os/accounts/mod.ts");
    const accounts = ctx.services.adapters.accounts ?? new Accounts(liveAdapterOptions(ctx.config));
    // A failure throws: the original raised here, so the reply is return_code 1 with the
    // percent-encoded text (ARCHITECTURE.md, Command rules).
    const done = await accounts.removeUser(args.userId, {
      agentUser: ctx.config.system.user,
    });
    for (const line of done) ctx.log.detail(line);
    return makeReply(0, { message: "job removeUser succeeded." });
  },
});
