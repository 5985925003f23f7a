/**
 * clean_image on a throw-away root with real useradd: the journal cleared
 * except this request, the agent's logs emptied, listed users removed
 * through remove_user, histories and private keys scrubbed, and a recovery
 * archive encrypted for the customer account's RSA key that restores the
 * files byte for byte. A failed user removal stops it with the original's
 * message.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { canManageAccounts, makeThrowawayRoot, tool } from "../helpers/throwaway_root.ts";
import { makeTestContext } from "../helpers/context.ts";
import { executeCommand, Journal } from "../../lib/core/mod.ts";
import { Accounts } from "../../lib/os/accounts/mod.ts";
import { makeAgentControl } from "../../lib/agent/agent_control.ts";
import cleanImage, { RECOVERY_FILE } from "../../commands/lifecycle/clean_image.ts";
import removeUser from "../../commands/users/remove_user.ts";

Deno.test({
  name: "clean_image: journal, logs, users, histories, keys and an encrypted recovery archive",
  ignore: !canManageAccounts(),
  async fn() {
    const fx = await makeThrowawayRoot();
    const work = await Deno.makeTempDir({ prefix: "dcm-clean-image-" });
    const journal = Journal.open(join(work, "secure/agentdb.sql"));
    try {
      // The customer account (c050) holds the RSA key the archive is encrypted for.
      await tool(["openssl", "genrsa", "-out", join(work, "id_rsa"), "2048"]);
      const sshRsa = (await tool(["ssh-keygen", "-y", "-f", join(work, "id_rsa")])).trim();
      const accounts = new Accounts({ root: fx.root, sudo: null });
      const base = { firstName: null, lastName: null, administrator: false };
      await accounts.addUser({ ...base, userName: "c050", publicKey: sshRsa });
      await accounts.addUser({ ...base, userName: "leaver", publicKey: null });
      const files: Record<string, string> = {
        "/home/c050/.bash_history": "secret command\n",
        "/home/c050/.ssh/id_rsa": "-----BEGIN OPENSSH PRIVATE KEY-----\nxx\n",
        "/tmp/boot.log": "boot\n",
      };
      for (const [p, text] of Object.entries(files)) {
        await Deno.mkdir(join(fx.root, p, ".."), { recursive: true });
        await Deno.writeTextFile(join(fx.root, p), text);
      }
      await Deno.mkdir(join(work, "logs"));
      await Deno.writeTextFile(join(work, "logs/agent.log"), "old lines\n");
      await Deno.writeTextFile(join(work, "logs/agent.log.1"), "rotated\n");

      const ctx = makeTestContext({
        commands: [removeUser],
        services: {
          adapters: { accounts, scrubRoot: fx.root },
          agent: makeAgentControl({ journal, baseDir: work, exit: () => {} }),
          host: {
            version: "0.0.0-test",
            platformName: "debian",
            platformVersion: "12",
            ipv4Addresses: () => Promise.resolve([]),
            customerId: () => 50,
          },
        },
      });
      for (const id of ["other-1", "other-2", ctx.requestId]) {
        await journal.insertAcked(id, { payload: { command: "x" } }, { agentId: "a" });
      }

      const reply = await executeCommand(cleanImage, {
        delUser: ["leaver"],
        delHistory: true,
        delKeys: true,
        recovery: true,
      }, ctx);
      assert.equal(reply.return_code, 0, `${reply.message} ${reply.error_message}`);
      assert.equal(reply.message, "Clean image command ran successfully");
      assert.deepEqual(journal.countByState(), { ACKED: 1 });
      assert.ok(journal.get(ctx.requestId));
      assert.deepEqual([...Deno.readDirSync(join(work, "logs"))].map((e) => e.name), [
        "agent.log",
      ]);
      assert.equal(Deno.statSync(join(work, "logs/agent.log")).size, 0);
      assert.equal(await accounts.lookupUser("leaver"), undefined);
      assert.ok(await accounts.lookupUser("c050"));
      for (const p of Object.keys(files)) {
        assert.throws(() => Deno.statSync(join(fx.root, p)), Deno.errors.NotFound, p);
      }
      assert.ok(ctx.details.includes("deleted /home/c050/.bash_history"));

      // Only the customer's private key opens the archive, and it holds every file.
      const unpacked = join(work, "unpacked");
      await Deno.mkdir(unpacked);
      await tool(["tar", "-xzf", join(fx.root, RECOVERY_FILE), "-C", unpacked]);
      await tool([
        "sh",
        join(unpacked, "recovery.sh"),
        join(work, "restored"),
        join(work, "id_rsa"),
      ]);
      for (const [p, text] of Object.entries(files)) {
        assert.equal(Deno.readTextFileSync(join(work, "restored", p)), text);
      }

      // A scrubber failure is reported, not ignored (here: a key it cannot encrypt for).
      await Deno.writeTextFile(join(fx.root, "tmp/boot.log"), "again\n");
      const bad = await executeCommand(cleanImage, {
        recovery: true,
        recoveryPublicKey: "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAA x",
      }, ctx);
      assert.equal(bad.return_code, 1);
      assert.match(bad.message, /^the scrubber failed: .*RSA public key/);
      assert.equal(Deno.readTextFileSync(join(fx.root, "tmp/boot.log")), "again\n");

      // A user that cannot be removed stops the command with the original's message.
      const failed = await executeCommand(cleanImage, { delUser: ["-bad-"] }, ctx);
      assert.equal(failed.return_code, 1);
      assert.match(failed.message, / : Delete users failed on -bad-$/);
    } finally {
      journal.close();
      await fx.cleanup();
      await Deno.remove(work, { recursive: true });
    }
  },
});
