/** `rename`: sets the hostname, /etc/hostname and the primary address's /etc/hosts line. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { liveAdapterOptions } from "../../lib/os/mod.ts";

export default defineCommand({
  name: "rename",
  description: "Renames the host: running hostname, /etc/hostname and the /etc/hosts line of " +
    "the primary IPv4 address.",
  args: {
    serverName: {
      type: "str",
      required: true,
      help: "The new hostname; characters other than letters, digits, '.' and '-' are removed.",
    },
  },
  async run(args, ctx) {
    const { describeHostFailure, HostIdentity, sanitizeHostname } = await import(
      "../../lib/os/host_identity.ts"
    );
    try {
      // Validate before anything else runs, including the metadata lookup.
      const name = sanitizeHostname(args.serverName ?? "");
      // A loopback address is never the host's own line: rewriting it would drop "localhost".
      const ip = (await ctx.services.host.ipv4Addresses()).find((a) => !a.startsWith("127."));
      if (!ip) return makeReply(1, { error_message: "No IP Address was found" });
      const done = await (ctx.services.adapters.hostIdentity ??
        new HostIdentity(liveAdapterOptions(ctx.config))).rename(name, ip);
      for (const line of done) ctx.log.detail(line);
      return makeReply(0, {
        message: done.length ? done.join("; ") : `the hostname is already ${name}`,
      });
    } catch (err) {
      // Like the original's rename script: a failure is a reply with readable stderr.
      const text = describeHostFailure(err);
      if (text === null) throw err;
      return makeReply(1, { error_message: text });
    }
  },
});
