/**
 * add_user and remove_user against a throw-away root with the real shadow
 * tools, visudo, setpriv and pkill: every command runs twice, hostile input is
 * refused before anything changes, and planted links are never followed.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import addUser from "../../commands/users/add_user.ts";
import removeUser from "../../commands/users/remove_user.ts";
import type { CommandModule } from "../../lib/core/command.ts";
import { Accounts, parsePublicKey } from "../../lib/os/accounts/mod.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import type { ReplyPayload } from "../../lib/protocol/messages.ts";
import { makeTestContext, type TestContext } from "../helpers/context.ts";
import {
  canManageAccounts,
  makeThrowawayRoot,
  type ThrowawayRoot,
  tool,
} from "../helpers/throwaway_root.ts";

const ignore = !canManageAccounts();
// Well-formed public key lines: the blob encodes its key type, as ssh-keygen writes it.
const KEY_A = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIzvadAPad51bpIjv60/BglOpeInVZ1ZgbSXUcMdR2j";
const KEY_B =
  "ecdsa-sha2-nistp256 AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBLAAZ9bzLdy6" +
  "3vO+iir47lqwEMB55OdoSDl/eTcjA3s41Z0nX1lRCMzkQWBUU9jhlqZcLJuls3tnaeRwGRCNWsg=";

interface Env {
  fx: ThrowawayRoot;
  accounts: Accounts;
  ctx: TestContext;
  run(command: CommandModule, args: Record<string, unknown>): Promise<ReplyPayload>;
  path(p: string): string;
  passwd(name: string): Promise<string[] | undefined>;
  groupLine(name: string): Promise<string[] | undefined>;
}

/** A throw-away root with the agent's group "dcm", an adapter and a command context. */
async function withRoot(
  body: (env: Env) => Promise<void>,
  options: { sudo?: string } = {},
): Promise<void> {
  const fx = await makeThrowawayRoot();
  try {
    await tool(["groupadd", "--root", fx.root, "dcm"]);
    const accounts = new Accounts({ root: fx.root, sudo: options.sudo ?? null });
    const ctx = makeTestContext({ services: { adapters: { accounts } } });
    const path = (p: string) => join(fx.root, p);
    const field = async (file: string, name: string) =>
      (await Deno.readTextFile(path(file))).split("\n").map((l) => l.split(":")).find((f) =>
        f[0] === name
      );
    await body({
      fx,
      accounts,
      ctx,
      run: (command, args) => executeCommand(command, args, ctx),
      path,
      passwd: (name) => field("etc/passwd", name),
      groupLine: (name) => field("etc/group", name),
    });
  } finally {
    await fx.cleanup();
  }
}

function userArgs(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    userId: name,
    firstName: "Ada",
    lastName: "Lovelace",
    authentication: null,
    administrator: "false",
    ...extra,
  };
}

async function snapshot(root: string): Promise<string> {
  const files = ["passwd", "group", "shadow", "gshadow"];
  const texts = await Promise.all(files.map((f) => Deno.readTextFile(join(root, "etc", f))));
  return texts.join("\n--\n") + (await listDir(join(root, "home"))).join(",");
}

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names.sort();
}

function assertOk(reply: ReplyPayload): void {
  assert.equal(reply.return_code, 0, `expected success, got ${JSON.stringify(reply)}`);
  assert.equal(reply.error_message, "");
}

Deno.test({
  name: "add_user creates the user, group, home, shell, GECOS and key once; twice is the same",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      const args = userArgs("alice", { authentication: `${KEY_A} alice@laptop\n` });
      const first = await env.run(addUser, args);
      assertOk(first);
      assert.deepEqual(Object.keys(first).sort(), [
        "error_message",
        "message",
        "reply_object",
        "reply_type",
        "return_code",
      ]);
      assert.equal(first.reply_type, "void");
      assert.match(first.message, /created user alice/);
      const pw = await env.passwd("alice");
      assert.ok(pw, "alice is in /etc/passwd");
      const [, , uid, gid, gecos, home, shell] = pw;
      assert.ok(Number(uid) >= env.fx.idMin, "a person's uid is at least UID_MIN");
      assert.equal(gecos, "Ada Lovelace");
      assert.equal(home, "/home/alice");
      assert.equal(shell, "/bin/bash");
      const group = await env.groupLine("alice");
      assert.equal(group?.[2], gid, "the primary group is named after the user");
      const shadow = await Deno.readTextFile(env.path("etc/shadow"));
      assert.match(shadow, /^alice:/m);
      const ssh = await Deno.lstat(env.path("home/alice/.ssh"));
      assert.ok(ssh.isDirectory);
      assert.equal(ssh.mode! & 0o7777, 0o700);
      assert.equal(ssh.uid, Number(uid));
      const keysPath = env.path("home/alice/.ssh/authorized_keys");
      const keys = await Deno.lstat(keysPath);
      assert.equal(keys.mode! & 0o7777, 0o600);
      assert.equal(keys.uid, Number(uid));
      assert.equal(keys.gid, Number(gid));
      assert.equal(await Deno.readTextFile(keysPath), `${KEY_A} alice@laptop\n`);

      const before = await snapshot(env.fx.root);
      const second = await env.run(addUser, args);
      assertOk(second);
      assert.match(second.message, /already authorized/);
      assert.equal(await snapshot(env.fx.root), before);
      assert.equal(await Deno.readTextFile(keysPath), `${KEY_A} alice@laptop\n`);
      // The same key with another comment is still the same key.
      assertOk(await env.run(addUser, { ...args, authentication: `${KEY_A} other-comment` }));
      assert.equal(await Deno.readTextFile(keysPath), `${KEY_A} alice@laptop\n`);
    }),
});

Deno.test({
  name: "add_user appends a new key on its own line and keeps the existing ones",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      assertOk(await env.run(addUser, userArgs("carol", { authentication: KEY_A })));
      const keysPath = env.path("home/carol/.ssh/authorized_keys");
      // The user edited the file and left no final newline.
      await Deno.writeTextFile(keysPath, `${KEY_A}\n# my note`);
      for (let i = 0; i < 2; i++) {
        assertOk(await env.run(addUser, userArgs("carol", { authentication: KEY_B })));
      }
      assert.equal(await Deno.readTextFile(keysPath), `${KEY_A}\n# my note\n${KEY_B}\n`);
    }),
});

Deno.test({
  name: "administrator on, off, on: sudoers drop-in validated, 0440; other groups are kept",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      assertOk(await env.run(addUser, userArgs("dave")));
      await tool(["groupadd", "--root", env.fx.root, "extra"]);
      await tool(["usermod", "--root", env.fx.root, "-a", "-G", "extra", "dave"]);
      const dropIn = env.path("etc/sudoers.d/dave");
      const checkAdmin = async () => {
        assert.equal(await Deno.readTextFile(dropIn), "dave ALL=(ALL) NOPASSWD: ALL\n");
        const info = await Deno.lstat(dropIn);
        assert.equal(info.mode! & 0o7777, 0o440);
        assert.equal(info.uid, 0);
        await tool(["visudo", "-c", "-f", dropIn]);
        assert.deepEqual((await env.groupLine("extra"))?.[3], "dave");
        assert.deepEqual((await env.groupLine("dcm"))?.[3], "dave");
        const leftovers = (await listDir(env.path("etc/sudoers.d"))).filter((n) => n !== "dave");
        assert.deepEqual(leftovers, [], "no staging file is left behind");
      };
      for (let i = 0; i < 2; i++) {
        assertOk(await env.run(addUser, userArgs("dave", { administrator: "True" })));
        await checkAdmin();
      }
      for (let i = 0; i < 2; i++) {
        assertOk(await env.run(addUser, userArgs("dave", { administrator: false })));
        await assert.rejects(Deno.lstat(dropIn), Deno.errors.NotFound);
        assert.deepEqual((await env.groupLine("extra"))?.[3], "dave", "extra is kept");
        assert.deepEqual((await env.groupLine("dcm"))?.[3], "", "the agent group is taken back");
      }
      assertOk(await env.run(addUser, userArgs("dave", { administrator: "true" })));
      await checkAdmin();
    }),
});

Deno.test({
  name: "add_user rejects keys with line breaks, options or other text before any change",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      const before = await snapshot(env.fx.root);
      const hostile: [string, RegExp][] = [
        [`${KEY_A}\n${KEY_B}`, /line break/],
        [`${KEY_A}\r\nssh-rsa AAAA`, /line break/],
        [`command="/bin/sh" ${KEY_A}`, /key type/],
        [`no-pty,from="*" ${KEY_A}`, /key type/],
        ["hello world", /key type/],
        ["ssh-ed25519 not-base64!", /not a valid ssh-ed25519 key/],
        [`ssh-rsa ${KEY_A.split(" ")[1]}`, /not a valid ssh-rsa key/],
        [`${KEY_A} comment\x07bell`, /control characters/],
      ];
      for (const [key, why] of hostile) {
        const reply = await env.run(addUser, userArgs("erin", { authentication: key }));
        assert.equal(reply.return_code, 1, `accepted ${JSON.stringify(key)}`);
        assert.match(reply.error_message, why);
      }
      const gecos = await env.run(addUser, userArgs("erin", { firstName: "a:b\nc" }));
      assert.equal(gecos.return_code, 1);
      assert.match(gecos.error_message, /first name .* may not contain ':'/);
      assert.equal(await snapshot(env.fx.root), before, "nothing changed");
    }),
});

Deno.test({
  name: "hostile user names are rejected by add_user and remove_user before anything runs",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      const before = await snapshot(env.fx.root);
      for (const name of ["a;b", "../x", "-rf", "x".repeat(33), "", "a b", "a$(id)", "bob-"]) {
        for (const command of [addUser, removeUser]) {
          const reply = await env.run(command, userArgs(name));
          assert.equal(reply.return_code, 1, `${command.name} accepted ${JSON.stringify(name)}`);
          assert.notEqual(decodeURIComponent(reply.error_message), "");
        }
      }
      const reply = await env.run(addUser, userArgs("a;b"));
      assert.equal(
        decodeURIComponent(reply.error_message),
        `user name "a;b" may contain only letters, digits, '_' and '-'`,
      );
      assert.equal(await snapshot(env.fx.root), before);
    }),
});

Deno.test({
  name: "a symlinked ~/.ssh or authorized_keys is refused and its target stays untouched",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      assertOk(await env.run(addUser, userArgs("mallory")));
      const shadowPath = env.path("etc/shadow");
      const shadowBefore = await Deno.readTextFile(shadowPath);
      const shadowInfo = await Deno.stat(shadowPath);
      const sshDir = env.path("home/mallory/.ssh");
      const keysPath = join(sshDir, "authorized_keys");
      const assertShadowUntouched = async () => {
        assert.equal(await Deno.readTextFile(shadowPath), shadowBefore);
        const now = await Deno.stat(shadowPath);
        assert.deepEqual([now.uid, now.gid, now.mode], [
          shadowInfo.uid,
          shadowInfo.gid,
          shadowInfo.mode,
        ]);
      };

      // ~/.ssh planted as a link to the root's /etc.
      await Deno.symlink(env.path("etc"), sshDir);
      let reply = await env.run(addUser, userArgs("mallory", { authentication: KEY_A }));
      assert.equal(reply.return_code, 1);
      assert.match(reply.error_message, /\.ssh is a symbolic link; add_user never follows links/);
      await assertShadowUntouched();
      await assert.rejects(Deno.lstat(env.path("etc/authorized_keys")), Deno.errors.NotFound);
      await Deno.remove(sshDir);

      // authorized_keys planted as a link to /etc/shadow.
      const uid = Number((await env.passwd("mallory"))![2]);
      await Deno.mkdir(sshDir, { mode: 0o700 });
      await Deno.chown(sshDir, uid, uid);
      await Deno.symlink(shadowPath, keysPath);
      reply = await env.run(addUser, userArgs("mallory", { authentication: KEY_A }));
      assert.equal(reply.return_code, 1);
      assert.match(reply.error_message, /authorized_keys is a symbolic link/);
      await assertShadowUntouched();
      await Deno.remove(keysPath);

      // authorized_keys planted as a hard link to /etc/shadow.
      await Deno.link(shadowPath, keysPath);
      reply = await env.run(addUser, userArgs("mallory", { authentication: KEY_A }));
      assert.equal(reply.return_code, 1);
      assert.match(reply.error_message, /hard links/);
      await assertShadowUntouched();
      await Deno.remove(keysPath);

      // Administrator rights are not granted while the key step is refused.
      await Deno.symlink(shadowPath, keysPath);
      reply = await env.run(
        addUser,
        userArgs("mallory", { authentication: KEY_A, administrator: "true" }),
      );
      assert.equal(reply.return_code, 1);
      await assert.rejects(Deno.lstat(env.path("etc/sudoers.d/mallory")), Deno.errors.NotFound);
      await assertShadowUntouched();
    }),
});

Deno.test({
  name: "remove_user removes user, group, home, mail spool, drop-in and processes; twice is fine",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      assertOk(
        await env.run(
          addUser,
          userArgs("frank", { authentication: KEY_A, administrator: "true" }),
        ),
      );
      const [, , uid, gid] = (await env.passwd("frank"))!;
      await Deno.writeTextFile(env.path("var/mail/frank"), "");
      await Deno.chown(env.path("var/mail/frank"), Number(uid), Number(gid));
      // A process of the user, which remove_user must end.
      const sleeper = new Deno.Command("setpriv", {
        args: [`--reuid=${uid}`, `--regid=${gid}`, "--clear-groups", "sleep", "300"],
      }).spawn();
      try {
        const first = await env.run(removeUser, { userId: "frank" });
        assertOk(first);
        assert.equal(first.message, "job removeUser succeeded.");
        const status = await sleeper.status;
        assert.equal(status.signal, "SIGKILL");
      } finally {
        try {
          sleeper.kill("SIGKILL");
        } catch {
          // Already ended, as it should be.
        }
      }
      assert.equal(await env.passwd("frank"), undefined);
      assert.equal(await env.groupLine("frank"), undefined);
      assert.doesNotMatch(await Deno.readTextFile(env.path("etc/shadow")), /^frank:/m);
      for (const gone of ["home/frank", "var/mail/frank", "etc/sudoers.d/frank"]) {
        await assert.rejects(Deno.lstat(env.path(gone)), Deno.errors.NotFound, gone);
      }
      assert.equal((await env.groupLine("dcm"))?.[3], "");
      const second = await env.run(removeUser, { userId: "frank" });
      assertOk(second);
      assert.equal(second.message, "job removeUser succeeded.");
      // A stale drop-in of a user that no longer exists would make a future 'frank' an admin.
      const stale = env.path("etc/sudoers.d/frank");
      await Deno.writeTextFile(stale, "frank ALL=(ALL) NOPASSWD: ALL\n", { mode: 0o440 });
      assertOk(await env.run(removeUser, { userId: "frank" }));
      await assert.rejects(Deno.lstat(stale), Deno.errors.NotFound);
      assertOk(await env.run(removeUser, { userId: "never-existed" }));
    }),
});

Deno.test({
  name: "remove_user of 'bo' leaves the sudoers drop-in of 'bob' and foreign drop-ins alone",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      for (const name of ["bo", "bob"]) {
        assertOk(await env.run(addUser, userArgs(name, { administrator: "true" })));
      }
      const bobDropIn = env.path("etc/sudoers.d/bob");
      const bobBefore = await Deno.readTextFile(bobDropIn);
      for (let i = 0; i < 2; i++) assertOk(await env.run(removeUser, { userId: "bo" }));
      assert.equal(await Deno.readTextFile(bobDropIn), bobBefore);
      assert.ok(await env.passwd("bob"));

      // A drop-in that is not bob's own (it grants others) is neither removed nor replaced.
      const foreign = "%admins ALL=(ALL) ALL\nbob ALL=(ALL) ALL\n";
      await Deno.writeTextFile(bobDropIn, foreign, { mode: 0o440 });
      const reply = await env.run(addUser, userArgs("bob", { administrator: "true" }));
      assert.equal(reply.return_code, 1);
      assert.match(reply.error_message, /holds rules that are not only for 'bob'; move it aside/);
      assertOk(await env.run(removeUser, { userId: "bob" }));
      assert.equal(await Deno.readTextFile(bobDropIn), foreign);
      // sudo's own README (comments only) is never taken for a user's drop-in.
      await Deno.writeTextFile(env.path("etc/sudoers.d/README"), "# read me\n");
      assertOk(await env.run(removeUser, { userId: "README" }));
      assert.equal(await Deno.readTextFile(env.path("etc/sudoers.d/README")), "# read me\n");
    }),
});

Deno.test({
  name: "root, system accounts, system groups and the agent's own user are refused",
  ignore,
  fn: () =>
    withRoot(async (env) => {
      await tool(["useradd", "--root", env.fx.root, "-M", "dcm", "-g", "dcm"]);
      const before = await snapshot(env.fx.root);
      const refusals: [string, RegExp][] = [
        ["root", /refusing to remove 'root': it is the superuser account/],
        ["daemon", /refusing to remove 'daemon': it is a system account \(uid 1 is below UID_MIN/],
        ["dcm", /refusing to remove 'dcm': the agent itself runs as this user/],
      ];
      for (const [name, why] of refusals) {
        const reply = await env.run(removeUser, { userId: name });
        assert.equal(reply.return_code, 1);
        assert.match(decodeURIComponent(reply.error_message), why);
        const add = await env.run(addUser, userArgs(name, { authentication: KEY_A }));
        assert.equal(add.return_code, 1);
        assert.match(add.error_message, /refusing to change/);
      }
      const sudoGroup = await env.run(addUser, userArgs("sudo"));
      assert.equal(sudoGroup.return_code, 1);
      assert.match(sudoGroup.error_message, /a system group of that name exists/);
      assert.equal(await snapshot(env.fx.root), before);

      // The uid the agent process runs as is protected whatever its name.
      assertOk(await env.run(addUser, userArgs("agentish")));
      const uid = Number((await env.passwd("agentish"))![2]);
      const guarded = new Accounts({ root: env.fx.root, selfUid: uid });
      await assert.rejects(guarded.removeUser("agentish"), /the agent itself runs as this user/);
    }),
});

Deno.test({
  name: "the adapter works through sudo as a non-root agent would use it",
  ignore: ignore || !canSudo(),
  fn: () =>
    withRoot(async (env) => {
      for (let i = 0; i < 2; i++) {
        assertOk(
          await env.run(
            addUser,
            userArgs("grace", { authentication: KEY_A, administrator: "true" }),
          ),
        );
      }
      assert.equal(
        await Deno.readTextFile(env.path("home/grace/.ssh/authorized_keys")),
        `${KEY_A}\n`,
      );
      assertOk(await env.run(removeUser, { userId: "grace" }));
      assert.equal(await env.passwd("grace"), undefined);
    }, { sudo: "/usr/bin/sudo" }),
});

Deno.test("parsePublicKey normalises whitespace and keeps the comment", () => {
  assert.equal(parsePublicKey(`  ${KEY_A.replace(" ", "\t")}   me@host  \n`), `${KEY_A} me@host`);
  assert.throws(() => parsePublicKey(""), /key type/);
});

function canSudo(): boolean {
  try {
    return Deno.statSync("/usr/bin/sudo").isFile;
  } catch {
    return false;
  }
}
