/**
 * End to end: the development manager sends initialize, add_user and
 * remove_user over the websocket to the real agent process, which runs in
 * private mount/UTS/PID namespaces over a copy of /etc (see
 * helpers/namespaced_agent.ts), and the replies and files are checked.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { canManageAccounts, tool } from "../helpers/throwaway_root.ts";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAICIzvadAPad51bpIjv60/BglOpeInVZ1ZgbSXUcMdR2j e2e";

function canUnshare(): boolean {
  try {
    return Deno.statSync("/usr/bin/unshare").isFile && Deno.statSync("/usr/sbin/visudo").isFile;
  } catch {
    return false;
  }
}

/** A copy of /etc with a unique high uid range, plus empty home and mail directories. */
async function prepareNamespaceRoot(): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-e2e-ns-" });
  await Deno.chmod(dir, 0o755);
  await tool(["cp", "-a", "/etc", join(dir, "etc")]);
  await Deno.mkdir(join(dir, "home"), { mode: 0o755 });
  await Deno.mkdir(join(dir, "mail"), { mode: 0o2775 });
  // Ids no real user of the test machine has, so nothing outside the namespace matches them.
  const idMin = 300_000 + Math.floor(Math.random() * 1_000_000) * 1000;
  const defsPath = join(dir, "etc/login.defs");
  const defs = (await Deno.readTextFile(defsPath))
    .replace(/^\s*(UID_MIN|GID_MIN)\s.*$/gm, "")
    .replace(/^\s*(UID_MAX|GID_MAX)\s.*$/gm, "");
  await Deno.writeTextFile(
    defsPath,
    `${defs}\nUID_MIN ${idMin}\nUID_MAX ${idMin + 999}\nGID_MIN ${idMin}\nGID_MAX ${idMin + 999}\n`,
  );
  return dir;
}

function payloadOf(reply: Frame): Record<string, unknown> {
  return reply.payload as Record<string, unknown>;
}

Deno.test({
  name: "e2e: initialize, add_user and remove_user over the websocket change only the namespace",
  ignore: !canManageAccounts() || !canUnshare(),
  fn: async () => {
    const missing = ["initialize", "add_user", "remove_user", "rename"].filter((name) =>
      !BUILTIN_COMMANDS.some((c) => c.name === name)
    );
    assert.deepEqual(missing, [], "register these commands in commands/mod.ts (BUILTIN_COMMANDS)");
    const realHostname = Deno.hostname();
    const realPasswd = await Deno.readTextFile("/etc/passwd");
    const nsRoot = await prepareNamespaceRoot();
    const manager = await DevManager.start();
    let agent: AgentProcess | undefined;
    const started: AgentProcess[] = [];
    const launch = async (baseDir?: string) => {
      agent = await AgentProcess.start({
        managerUrl: manager.url,
        entry: "tests/helpers/namespaced_agent.ts",
        env: { DCM_TEST_NS_ROOT: nsRoot },
        baseDir,
      });
      started.push(agent);
      return agent;
    };
    try {
      agent = await launch();
      await manager.waitForHandshake({ timeoutMs: 30_000 }).catch((err) => {
        throw new Error(`${err.message}\nagent output:\n${agent?.output()}`);
      });
      const ask = async (command: string, args: Record<string, unknown>) =>
        payloadOf((await manager.request(command, args, { timeoutMs: 60_000 })).reply);
      const ns = (p: string) => join(nsRoot, p);

      const init = await ask("initialize", {
        cloudId: "1",
        customerId: 5,
        regionId: null,
        zoneId: null,
        serverId: "srv-1",
        serverName: "@e2e-host#",
        encryptedEphemeralFsKey: null,
      });
      assert.deepEqual(init, {
        return_code: 0,
        reply_type: "void",
        reply_object: null,
        message: "",
        error_message: "",
      });
      assert.equal(payloadOf((await manager.request("heartbeat")).reply).reply_object, "RUNNING");
      assert.match(await Deno.readTextFile(ns("etc/passwd")), /^c005:x:\d+:\d+:Customer Account:/m);
      assert.equal(await Deno.readTextFile(ns("etc/hostname")), "e2e-host\n");
      assert.match(await Deno.readTextFile(ns("etc/hosts")), /^\d+\.\d+\.\d+\.\d+ e2e-host$/m);

      for (let i = 0; i < 2; i++) {
        const added = await ask("add_user", {
          userId: "e2euser",
          firstName: "End",
          lastName: "ToEnd",
          authentication: KEY,
          administrator: "true",
          customerId: 5,
        });
        assert.equal(added.return_code, 0, JSON.stringify(added));
      }
      assert.equal(
        await Deno.readTextFile(ns("home/e2euser/.ssh/authorized_keys")),
        `${KEY}\n`,
      );
      assert.equal((await Deno.stat(ns("etc/sudoers.d/e2euser"))).mode! & 0o777, 0o440);

      const hostile = await ask("add_user", {
        userId: "a;b",
        firstName: "x",
        lastName: "y",
        authentication: null,
        administrator: "false",
      });
      assert.equal(hostile.return_code, 1);
      assert.match(decodeURIComponent(String(hostile.error_message)), /may contain only letters/);

      for (let i = 0; i < 2; i++) {
        const removed = await ask("remove_user", { userId: "e2euser" });
        assert.equal(removed.return_code, 0, JSON.stringify(removed));
        assert.equal(removed.message, "job removeUser succeeded.");
      }
      assert.doesNotMatch(await Deno.readTextFile(ns("etc/passwd")), /^e2euser:/m);
      await assert.rejects(Deno.lstat(ns("home/e2euser")), Deno.errors.NotFound);
      await assert.rejects(Deno.lstat(ns("etc/sudoers.d/e2euser")), Deno.errors.NotFound);

      // The RUNNING state survives a restart (the original forgot it).
      await agent.stop();
      await launch(agent.baseDir);
      await manager.waitForHandshake({ timeoutMs: 30_000, count: 2 });
      assert.equal(payloadOf((await manager.request("heartbeat")).reply).reply_object, "RUNNING");

      // The test machine itself is unchanged.
      assert.equal(Deno.hostname(), realHostname);
      assert.equal(await Deno.readTextFile("/etc/passwd"), realPasswd);
    } finally {
      await agent?.stop();
      for (const a of started) await a.cleanup();
      await manager.close();
      await Deno.remove(nsRoot, { recursive: true });
    }
  },
});
