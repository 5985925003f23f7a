/**
 * `upgrade` and `terminate` through a real agent process and the development
 * manager: the upgrade script gets its arguments and the options file and
 * both files are deleted; a checksum mismatch runs nothing; terminate's
 * REPLY reaches the manager before the agent exits, and a restart answers a
 * retransmitted terminate from the journal without stopping again. systemd does
 * not run here, so the `systemctl stop` path of terminate is not exercised:
 * everything up to it is (the agent exits by itself when not under a unit).
 */
import assert from "node:assert/strict";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { delay } from "../helpers/wait.ts";
import { sha256Text } from "../helpers/script_args.ts";
import { VERSION } from "../../lib/protocol/mod.ts";

const payloadOf = (f: Frame) => f.payload as Frame;

Deno.test("upgrade: a file:// script runs with version, options file and args; a bad checksum runs nothing", async () => {
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({ managerUrl: manager.url });
  const work = await Deno.makeTempDir({ prefix: "dcm-upgrade-e2e-" });
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 20000 }), "handshaking");
    const marker = `${work}/ran`;
    const text = `#!/bin/sh\necho run >> '${marker}'\necho "args: $*"\necho "self: $0"\n` +
      `cat "$3"\n`;
    const script = `${work}/upgrade.sh`;
    await Deno.writeTextFile(script, text);
    const good = await manager.request("upgrade", {
      newVersion: "9.9.9",
      url: `file://${script}`,
      args: ["--daemon", 7],
      checksum: await sha256Text(text),
    });
    const reply = payloadOf(good.reply);
    assert.equal(reply.return_code, 0, String(reply.error_message));
    const out = String(reply.message).split("\n");
    const [, , opts, ...rest] = out[0].replace("args: ", "").split(" ");
    assert.deepEqual(out[0].replace("args: ", "").split(" ").slice(0, 2), ["9.9.9", VERSION]);
    assert.deepEqual(rest, ["--daemon", "7"]);
    const self = out[1].replace("self: ", "");
    assert.ok(self.startsWith(`${agent.baseDir}/tmp/`), self);
    // The options file is an INI dump of the effective settings.
    const ini = out.slice(2).join("\n");
    assert.match(ini, /^\[workers\]\ncount=2\n/);
    const storage = ini.slice(ini.indexOf("[storage]"));
    assert.ok(storage.slice(0, storage.indexOf("\n\n")).includes(`\nbase_dir=${agent.baseDir}\n`));
    assert.ok(ini.includes(`\nagentmanager_url=${manager.url}\n`));
    // Both temporary files are gone; the original file:// script is untouched.
    for (const f of [self, opts]) assert.throws(() => Deno.statSync(f), Deno.errors.NotFound);
    assert.equal(Deno.readTextFileSync(script), text);
    assert.equal(Deno.readTextFileSync(marker), "run\n");

    const bad = await manager.request("upgrade", {
      newVersion: "9.9.9",
      url: `file://${script}`,
      args: [],
      checksum: "0".repeat(64),
    });
    assert.equal(payloadOf(bad.reply).return_code, 1);
    assert.match(
      decodeURIComponent(String(payloadOf(bad.reply).error_message)),
      /checksum did not match/,
    );
    assert.equal(Deno.readTextFileSync(marker), "run\n", "nothing ran");

    // Over http the same checks apply.
    const server = Deno.serve(
      { port: 0, hostname: "127.0.0.1", onListen: () => {} },
      () => new Response(text),
    );
    try {
      const url = `http://127.0.0.1:${server.addr.port}/upgrade.sh`;
      const viaHttp = await manager.request("upgrade", {
        newVersion: "9.9.10",
        url,
        args: [],
        checksum: await sha256Text(text),
      });
      assert.equal(payloadOf(viaHttp.reply).return_code, 0);
      assert.match(String(payloadOf(viaHttp.reply).message), /^args: 9\.9\.10 /);
      const badHttp = await manager.request("upgrade", {
        newVersion: "9.9.10",
        url,
        args: [],
        checksum: "f".repeat(64),
      });
      assert.equal(payloadOf(badHttp.reply).return_code, 1);
      assert.equal(Deno.readTextFileSync(marker), "run\nrun\n", "only the good one ran");
    } finally {
      await server.shutdown();
    }
    assert.deepEqual([...Deno.readDirSync(`${agent.baseDir}/tmp`)], []);
  } finally {
    await agent.stop();
    await agent.cleanup();
    await manager.close();
    await Deno.remove(work, { recursive: true });
  }
});

Deno.test("terminate: the REPLY reaches the manager, then the agent exits; a restart does not run it again", async () => {
  const manager = await DevManager.start();
  let agent = await AgentProcess.start({ managerUrl: manager.url });
  const baseDir = agent.baseDir;
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 20000 }), "handshaking");
    const requestId = crypto.randomUUID();
    const r = await agent.whileRunning(
      manager.request("terminate", {}, { requestId }),
      "terminating",
    );
    assert.equal(payloadOf(r.reply).return_code, 0);
    const replyAt = Date.now();
    const status = await agent.wait();
    assert.equal(status.code, 0, agent.output());
    assert.ok(Date.now() - replyAt < 8000, "the agent exits soon after the acknowledged REPLY");
    assert.ok(agent.output().includes("terminate: the agent exits"), agent.output());
    await agent.stop(); // Reaps it; cleanup() would delete the base dir and its journal.

    // A restart with the same journal: the retransmitted request is answered, not run again.
    agent = await AgentProcess.start({ managerUrl: manager.url, baseDir });
    await agent.whileRunning(
      manager.waitForHandshake({ count: 2, timeoutMs: 20000 }),
      "handshaking",
    );
    const again = await agent.whileRunning(
      manager.request("terminate", {}, { requestId }),
      "answering the retransmission",
    );
    assert.equal(again.reply.type, "REPLY");
    await delay(1500);
    assert.equal(agent.exitStatus, undefined, agent.output());
    const hb = await agent.whileRunning(manager.request("heartbeat", {}), "heartbeat");
    assert.equal(payloadOf(hb.reply).return_code, 0);
  } finally {
    await agent.stop();
    await agent.cleanup();
    await manager.close();
    await Deno.remove(baseDir, { recursive: true }).catch(() => {});
  }
});
