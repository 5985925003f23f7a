/**
 * `clean_image` (long runner): prepares the VM to become an image. Clears
 * the journal (except this request) and the agent's logs, removes the listed
 * users through remove_user, then runs the scrubber with the agent running
 * (its temp files; histories and private keys when asked; a recovery archive
 * encrypted for the customer's RSA key when asked). Any failure is reported.
 */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { pathUnderRoot } from "../../lib/os/mod.ts";

/** Where the recovery archive goes, inside the root (as the original). */
export const RECOVERY_FILE = "/tmp/dcm_agent_recovery.tar.gz";

export default defineCommand({
  name: "clean_image",
  description:
    "Clears the journal and logs, removes users, and scrubs histories, keys and agent files.",
  execution: "long",
  args: {
    delUser: { type: "list", help: "User names to remove." },
    delHistory: { type: "bool", help: "Delete shell and tool histories in every home." },
    recovery: {
      type: "bool",
      help: `Save the deleted files in ${RECOVERY_FILE}, encrypted for an RSA public key.`,
    },
    delKeys: { type: "bool", default: false, help: "Delete private keys in every ~/.ssh." },
    recoveryPublicKey: {
      type: "str",
      help: "The RSA public key (ssh-rsa line) for the archive; default: the customer " +
        "account's first ssh-rsa key in authorized_keys.",
    },
  },
  async run(args, ctx) {
    const root = ctx.services.adapters.scrubRoot ?? "/";
    const agent = ctx.services.agent;
    if (agent) {
      await agent.clearJournal(ctx.requestId);
      for (const f of await agent.truncateLogs()) ctx.log.detail(`emptied ${f}`);
    }
    for (const user of args.delUser ?? []) {
      const r = await ctx.invoke("remove_user", { userId: user });
      if (r.return_code !== 0) {
        return { ...r, message: `${r.message} : Delete users failed on ${String(user)}` };
      }
    }
    let publicKey: string | null = null;
    if (args.recovery) {
      publicKey = args.recoveryPublicKey ?? customerKey(root, ctx.services.host.customerId());
      if (publicKey === null) {
        return makeReply(1, {
          message: "recovery was asked but there is no RSA public key to encrypt the archive " +
            "for; send recoveryPublicKey or add an ssh-rsa key to the customer account",
        });
      }
    }
    const { scrub } = await import("../../lib/os/scrubber/mod.ts");
    try {
      const result = await scrub({
        root,
        baseDir: ctx.config.storage.base_dir ?? "/dcm",
        dbFile: ctx.config.storage.dbfile ?? undefined,
        agent: true,
        agentRunning: true,
        history: args.delHistory ?? false,
        privateKeys: args.delKeys,
        rescueFile: args.recovery ? pathUnderRoot(root, RECOVERY_FILE) : null,
        publicKey,
        tempDir: ctx.config.storage.temppath ?? undefined,
      });
      for (const f of result.files) ctx.log.detail(`deleted ${f}`);
      return makeReply(0, { message: "Clean image command ran successfully" });
    } catch (err) {
      const text = `the scrubber failed: ${(err as Error).message}`;
      return makeReply(1, { message: text, error_message: text });
    }
  },
});

/** The first ssh-rsa key of the customer account c<id> (the image's owner), or null. */
function customerKey(root: string, customerId: unknown): string | null {
  if (typeof customerId !== "number" && typeof customerId !== "string") return null;
  const user = `c${String(customerId).padStart(3, "0")}`;
  try {
    const passwd = Deno.readTextFileSync(pathUnderRoot(root, "/etc/passwd"));
    const home = passwd.split("\n").map((l) => l.split(":")).find((f) => f[0] === user)?.[5];
    if (!home) return null;
    const keys = Deno.readTextFileSync(pathUnderRoot(root, `${home}/.ssh/authorized_keys`));
    return keys.split("\n").find((l) => l.trim().startsWith("ssh-rsa "))?.trim() ?? null;
  } catch {
    return null;
  }
}
