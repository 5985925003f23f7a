/** `add_user`: creates or updates a login user with an SSH key and optional sudo rights. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { liveAdapterOptions } from "../../lib/os/mod.ts";

export default defineCommand({
  name: "add_user",
  description: "Adds a user (group of the same name, /home/<u>, bash), its SSH key and optional " +
    "passwordless sudo.",
  args: {
    userId: { type: "user_name", required: true, help: "The login name; also the group name." },
    firstName: { type: "str", required: true, help: "First name, for the GECOS field." },
    lastName: { type: "str", required: true, help: "Last name, for the GECOS field." },
    authentication: {
      type: "str",
      required: true,
      help: "One SSH public key line for ~/.ssh/authorized_keys, or null.",
    },
    administrator: {
      type: "str",
      required: true,
      help: "'true' (any case) grants passwordless sudo; anything else removes it.",
    },
  },
  async run(args, ctx) {
    if (args.userId === null) {
      return makeReply(1, { error_message: "userId is null; give the name of the user to add" });
    }
    const { Accounts, describeFailure } = await import("../../lib/os/accounts/mod.ts");
    const accounts = ctx.services.adapters.accounts ?? new Accounts(liveAdapterOptions(ctx.config));
    try {
      const done = await accounts.addUser({
        userName: args.userId,
        firstName: args.firstName,
        lastName: args.lastName,
        publicKey: args.authentication,
        administrator: (args.administrator ?? "").toLowerCase() === "true",
        agentUser: ctx.config.system.user,
      });
      for (const line of done) ctx.log.detail(line);
      return makeReply(0, { message: done.length ? done.join("; ") : "nothing to change" });
    } catch (err) {
      // Like the original's addUser script: a failure is a reply with readable stderr.
      const text = describeFailure(err);
      if (text === null) throw err;
      return makeReply(1, { error_message: text });
    }
  },
});
