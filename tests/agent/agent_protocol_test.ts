/**
 * The agent as a separate process driven by the development manager over a
 * real websocket, with a real SQLite journal: the wire contract, at-most-once
 * execution across SIGKILLs and restarts, reconnects and dead connections.
 * Set DCM_AGENT_TEST_ENTRY=dist/dcm-agent.js to run these against the bundle.
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/wait.ts";
import { runProgram } from "../helpers/run.ts";
import { shellScript } from "../helpers/script_args.ts";
import { DevManager, type Frame, RequestNackedError } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";

/** A script that counts its executions in `file`, then sleeps. */
function counting(file: string, sleepSeconds = 0): Promise<Record<string, unknown>> {
  return shellScript(
    `echo run >> '${file}'\n${sleepSeconds ? `sleep ${sleepSeconds}` : ""}\necho done`,
  );
}

function runsIn(file: string): number {
  try {
    return Deno.readTextFileSync(file).split("\n").filter((l) => l === "run").length;
  } catch {
    return 0;
  }
}

interface Pair {
  manager: DevManager;
  agent: AgentProcess;
  close(): Promise<void>;
}

async function start(
  options: {
    conf?: Record<string, Record<string, string>>;
    manager?: Parameters<typeof DevManager.start>[0];
  } = {},
): Promise<Pair> {
  const manager = await DevManager.start(options.manager);
  const agent = await AgentProcess.start({ managerUrl: manager.url, conf: options.conf });
  return {
    manager,
    agent,
    async close() {
      try {
        await agent.stop();
      } finally {
        await agent.cleanup();
        await manager.close();
      }
    },
  };
}

async function restart(p: Pair): Promise<void> {
  p.agent = await AgentProcess.start({ managerUrl: p.manager.url, baseDir: p.agent.baseDir });
}

const payloadOf = (f: Frame) => f.payload as Frame;

/** The pid a script wrote to `file`, once it is there. */
async function childPid(file: string): Promise<number> {
  let text = "";
  await waitFor(
    () => {
      try {
        text = Deno.readTextFileSync(file).trim();
      } catch { /* not written yet */ }
      return text !== "";
    },
    10000,
    `a pid in ${file}`,
  );
  return Number(text);
}

/** Resolves when process `pid` no longer exists. */
async function gone(pid: number): Promise<void> {
  await waitFor(
    () => {
      try {
        Deno.kill(pid, "SIGCONT");
        return false;
      } catch {
        return true;
      }
    },
    5000,
    `process ${pid} to be killed`,
  );
}

Deno.test("agent: handshake, heartbeat, get_agent_data, run_script over a real websocket", async () => {
  const p = await start({ conf: { features: { hello: "world" } } });
  try {
    const hs = await p.manager.waitForHandshake({ timeoutMs: 15000 });
    assert.deepEqual(Object.keys(hs).sort(), [
      "agent_id",
      "features",
      "injected_id",
      "ipv4",
      "ipv6",
      "platform",
      "platform_version",
      "protocol_version",
      "token",
      "version",
      "vm_instance",
    ]);
    assert.equal(hs.protocol_version, 104);
    assert.deepEqual(hs.ipv6, []);
    assert.equal(hs.platform, "debian");
    const features = hs.features as Frame;
    assert.equal(features.hello, "world");
    assert.ok((features.plugins as string[]).includes("heartbeat"));
    assert.ok((features.plugins as string[]).includes("run_script"));
    const token = Deno.readTextFileSync(`${p.agent.baseDir}/secure/token`).trim();
    assert.equal(hs.token, token);
    assert.equal(Deno.statSync(`${p.agent.baseDir}/secure/token`).mode! & 0o777, 0o600);

    const hb = await p.manager.request("heartbeat", {});
    assert.equal(hb.ack?.agent_id, p.manager.agentId);
    assert.deepEqual(payloadOf(hb.reply), {
      return_code: 0,
      reply_type: "string",
      reply_object: "STARTING",
      message: "",
      error_message: "",
    });
    const data = await p.manager.request("get_agent_data", {});
    assert.equal(payloadOf(data.reply).reply_type, "agent_data");
    const obj = payloadOf(data.reply).reply_object as Frame;
    assert.equal(obj.server_state, "OK");
    assert.ok(Number(obj.max_ram) > 0);
    const rs = await p.manager.request(
      "run_script",
      await shellScript("echo hello; echo oops >&2; exit 3"),
    );
    assert.equal(payloadOf(rs.reply).return_code, 3);
    assert.equal(payloadOf(rs.reply).message, "hello\n");
    assert.equal(payloadOf(rs.reply).error_message, "oops\n");

    // Console LOG frames for job start and success, percent-encoded.
    const log = await p.manager.waitForFrame((f) =>
      f.type === "LOG" && /succeeded/.test(decodeURIComponent(String(f.message)))
    );
    assert.equal(log.level, "INFO");
    assert.equal(log.token, "");
    assert.doesNotMatch(String(log.message), /[ :]/, "LOG text is percent-encoded");
  } finally {
    await p.close();
  }
});

Deno.test("agent: malformed frames get NACKs and never hurt the connection or workers", async () => {
  const p = await start({ conf: { workers: { count: "1" } } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const since = p.manager.frameCount;
    const bad: (Frame | string)[] = [
      "{not json",
      "42",
      { type: "REQUEST", payload: { command: "heartbeat", arguments: {} } },
      { request_id: "m1", type: "WHAT" },
      { request_id: "m2", type: "REQUEST" },
      { request_id: "m3", type: "REQUEST", payload: { arguments: {} } },
      { request_id: "m4", type: "REQUEST", payload: { command: "format_c", arguments: {} } },
      { request_id: "m5", type: "REQUEST", payload: { command: "heartbeat", arguments: "x" } },
      { request_id: "m6", type: "NACK" },
    ];
    for (const f of bad) p.manager.send(f);
    for (const id of ["DEADBEEF", "m1", "m2", "m3", "m4", "m5", "m6"]) {
      const nack = await p.manager.waitForFrame((f) => f.type === "NACK" && f.request_id === id, {
        since,
      });
      assert.ok(String(nack.error_message).length > 5, `NACK for ${id} explains itself`);
    }
    // A missing arguments object does not wedge the only worker.
    p.manager.send({ request_id: "noargs", type: "REQUEST", payload: { command: "heartbeat" } });
    await p.manager.waitForFrame((f) => f.type === "REPLY" && f.request_id === "noargs", { since });
    const hb = await p.manager.request("heartbeat", {});
    assert.equal(payloadOf(hb.reply).return_code, 0);
    assert.equal(p.manager.connections, 1, "the connection survived");
  } finally {
    await p.close();
  }
});

Deno.test("agent: duplicates before and after the reply, and after a restart, never re-run", async () => {
  const p = await start();
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const counter = `${p.agent.baseDir}/counter`;
    const args = await counting(counter, 1);
    const id = "dup-1";
    const req = {
      type: "REQUEST",
      request_id: id,
      message_id: "x",
      payload: { command: "run_script", arguments: args },
    };
    const since = p.manager.frameCount;
    p.manager.send(req);
    await p.manager.waitForFrame((f) => f.type === "ACK" && f.request_id === id, { since });
    p.manager.send(req); // while running
    const ack2 = await p.manager.waitForFrame(
      (f) => f.type === "ACK" && f.request_id === id && f.entity === "request_received",
      { since },
    );
    assert.ok(ack2);
    const reply = await p.manager.waitForFrame((f) => f.type === "REPLY" && f.request_id === id, {
      since,
      timeoutMs: 15000,
    });
    const s2 = p.manager.frameCount;
    p.manager.send(req); // after the reply, before the ACK
    const again = await p.manager.waitForFrame((f) => f.type === "REPLY" && f.request_id === id, {
      since: s2,
    });
    assert.deepEqual(again.payload, reply.payload);
    p.manager.send({ type: "ACK", request_id: id, message_id: reply.message_id });
    await new Promise((r) => setTimeout(r, 300));
    await p.agent.stop();
    await restart(p);
    await p.manager.waitForHandshake({ timeoutMs: 15000, count: 2 });
    const s3 = p.manager.frameCount;
    p.manager.send(req);
    const afterRestart = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === id,
      { since: s3 },
    );
    assert.deepEqual(
      afterRestart.payload,
      reply.payload,
      "the stored reply, as an object, never null",
    );
    assert.equal(runsIn(counter), 1);
  } finally {
    await p.close();
  }
});

/** SIGKILL the agent at one step of a request, restart, retransmit; count executions. */
async function crashAt(step: "sent" | "ack" | "running" | "reply" | "reply-acked"): Promise<void> {
  const p = await start({ conf: { messaging: { retransmission_timeout: "30" } } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const counter = `${p.agent.baseDir}/counter`;
    const id = `crash-${step}`;
    const req = {
      type: "REQUEST",
      request_id: id,
      message_id: "m",
      payload: {
        command: "run_script",
        arguments: await counting(counter, step === "running" ? 30 : 0),
      },
    };
    const since = p.manager.frameCount;
    p.manager.send(req);
    if (step === "ack") {
      await p.manager.waitForFrame((f) => f.type === "ACK" && f.request_id === id, { since });
    }
    if (step === "running") {
      await waitFor(() => runsIn(counter) === 1, 10000, "the script to start");
    }
    if (step === "reply" || step === "reply-acked") {
      const reply = await p.manager.waitForFrame((f) => f.type === "REPLY" && f.request_id === id, {
        since,
      });
      if (step === "reply-acked") {
        p.manager.send({ type: "ACK", request_id: id, message_id: reply.message_id });
        await new Promise((r) => setTimeout(r, 300));
      }
    }
    p.agent.kill("SIGKILL");
    await p.agent.wait();
    await restart(p);
    const s2 = p.manager.frameCount;
    await p.manager.waitForHandshake({ timeoutMs: 15000, count: 2 });
    p.manager.send(req);
    const reply = await p.manager.waitForFrame((f) => f.type === "REPLY" && f.request_id === id, {
      since: s2,
      timeoutMs: 15000,
    });
    const payload = payloadOf(reply);
    const runs = runsIn(counter);
    assert.ok(runs <= 1, `step ${step}: the command ran ${runs} times`);
    const lost = /stopped while this command was running/.test(String(payload.Exception));
    if (step === "running") {
      assert.ok(lost, "a command that was running when the agent died is reported lost");
      assert.equal(runs, 1);
    } else if (step === "reply" || step === "reply-acked") {
      assert.deepEqual([payload.return_code, payload.message, runs], [0, "done\n", 1]);
    } else {
      // Killed before or just after the ACK: either it ran exactly once (and
      // succeeded), or it had been marked started and is reported lost.
      assert.ok(
        (payload.return_code === 0 && payload.message === "done\n" && runs === 1) ||
          (lost && runs <= 1),
        `step ${step}: inconsistent outcome ${JSON.stringify(payload)} with ${runs} run(s)`,
      );
    }
  } finally {
    await p.close();
  }
}

Deno.test("agent: SIGKILL after the request was sent: at most one execution", () =>
  crashAt("sent"));
Deno.test("agent: SIGKILL after the ACK: at most one execution", () => crashAt("ack"));
Deno.test("agent: SIGKILL while running: a 'lost' reply, never re-run", () => crashAt("running"));
Deno.test("agent: SIGKILL after the REPLY: the stored reply is sent again", () => crashAt("reply"));
Deno.test("agent: SIGKILL after the REPLY was acknowledged: the stored reply", () =>
  crashAt("reply-acked"));

Deno.test("agent: after a restart, unacknowledged replies are pushed without a retransmitted request", async () => {
  const p = await start({ manager: { autoAckReplies: false } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const since = p.manager.frameCount;
    p.manager.send({
      type: "REQUEST",
      request_id: "push-1",
      payload: { command: "heartbeat", arguments: {} },
    });
    const first = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "push-1",
      { since },
    );
    p.agent.kill("SIGKILL");
    await p.agent.wait();
    const s2 = p.manager.frameCount;
    await restart(p);
    const pushed = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "push-1",
      { since: s2, timeoutMs: 15000 },
    );
    assert.deepEqual(pushed.payload, first.payload);
    assert.equal(pushed.message_id, first.message_id, "the same message_id until acknowledged");
  } finally {
    await p.close();
  }
});

Deno.test("agent: a reply made while the connection is down is delivered after reconnecting", async () => {
  const p = await start();
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const counter = `${p.agent.baseDir}/counter`;
    const since = p.manager.frameCount;
    p.manager.send({
      type: "REQUEST",
      request_id: "drop-1",
      payload: { command: "run_script", arguments: await counting(counter, 1) },
    });
    await p.manager.waitForFrame((f) => f.type === "ACK" && f.request_id === "drop-1", { since });
    p.manager.dropConnection();
    const reply = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "drop-1",
      { since, timeoutMs: 15000 },
    );
    assert.equal(payloadOf(reply).return_code, 0);
    assert.ok(p.manager.connections >= 2);
    assert.equal(runsIn(counter), 1);
  } finally {
    await p.close();
  }
});

Deno.test("agent: 409 makes a new token that is persisted and used after a restart", async () => {
  const p = await start({
    manager: {
      handshake: (
        _doc,
        attempt,
      ) => (attempt === 1
        ? { return_code: 409 }
        : { return_code: 200, handshake: { agentID: "A-409" } }),
    },
  });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000, count: 2 });
    const [first, second] = p.manager.handshakes;
    assert.notEqual(first.token, second.token);
    const onDisk = Deno.readTextFileSync(`${p.agent.baseDir}/secure/token`);
    assert.equal(onDisk.trim(), second.token);
    assert.equal(
      onDisk.replace(/\n$/, ""),
      second.token,
      "the file holds exactly the new token",
    );
    await p.agent.stop();
    await restart(p);
    await p.manager.waitForHandshake({ timeoutMs: 15000, count: 3 });
    assert.equal(p.manager.handshakes[2].token, second.token);
  } finally {
    await p.close();
  }
});

Deno.test("agent: 401 retries with backoff; 503 honours FORCE_BACKOFF", async () => {
  const times: number[] = [];
  const p = await start({
    manager: {
      handshake: (_doc, attempt) => {
        times.push(Date.now());
        if (attempt === 1) return { return_code: 401 };
        if (attempt === 2) return { return_code: 503, FORCE_BACKOFF: 1.5 };
        return { return_code: 200, handshake: { agentID: "A-503" } };
      },
    },
  });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000, count: 3 });
    assert.ok(
      times[2] - times[1] >= 1400,
      `503 FORCE_BACKOFF 1.5 s respected (waited ${times[2] - times[1]} ms)`,
    );
    const hb = await p.manager.request("heartbeat", {});
    assert.equal(hb.reply.agent_id, "A-503");
  } finally {
    await p.close();
  }
});

Deno.test("agent: a frozen manager is detected and left within 2 x heartbeat + 5 s", async () => {
  const p = await start({ conf: { connection: { heartbeat_frequency: "1" } } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const t0 = Date.now();
    p.manager.freeze();
    await p.manager.waitForHandshake({ timeoutMs: 10000, count: 2 });
    const took = Date.now() - t0;
    assert.ok(took <= 2 * 1000 + 5000, `reconnected after ${took} ms`);
    const hb = await p.manager.request("heartbeat", {});
    assert.equal(payloadOf(hb.reply).return_code, 0);
  } finally {
    p.manager.unfreeze();
    await p.close();
  }
});

Deno.test("agent: STATUS and CANCEL of a running script (its whole process tree)", async () => {
  const p = await start();
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const pidFile = `${p.agent.baseDir}/child.pid`;
    const args = await shellScript(`sleep 60 & echo $! > '${pidFile}'\nwait`);
    const since = p.manager.frameCount;
    p.manager.send({
      type: "REQUEST",
      request_id: "c-1",
      payload: { command: "run_script", arguments: args },
    });
    const child = await childPid(pidFile);
    p.manager.send({ type: "STATUS", request_id: "c-1" });
    const st = await p.manager.waitForFrame((f) => f.type === "STATUS" && f.request_id === "c-1", {
      since,
    });
    assert.equal(st.state, "ACKED");
    p.manager.send({ type: "CANCEL", request_id: "c-1" });
    const reply = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "c-1",
      { since, timeoutMs: 10000 },
    );
    assert.notEqual(payloadOf(reply).return_code, 0);
    assert.match(String(payloadOf(reply).error_message), /cancel/);
    await gone(child);
    p.manager.send({ type: "CANCEL", request_id: "c-1" }); // finished: harmless
    const hb = await p.manager.request("heartbeat", {});
    assert.equal(payloadOf(hb.reply).return_code, 0);
  } finally {
    await p.close();
  }
});

Deno.test("agent: HEMLOCK kills the agent and its commands at once", async () => {
  const p = await start();
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const pidFile = `${p.agent.baseDir}/child.pid`;
    p.manager.send({
      type: "REQUEST",
      request_id: "h-1",
      payload: {
        command: "run_script",
        arguments: await shellScript(`sleep 60 & echo $! > '${pidFile}'\nwait`),
      },
    });
    const child = await childPid(pidFile);
    p.manager.send({ type: "HEMLOCK", request_id: "h-2" });
    const status = await p.agent.wait();
    assert.equal(status.signal, "SIGKILL");
    await gone(child);
  } finally {
    await p.close();
  }
});

Deno.test("agent: an oversized frame is refused and the agent carries on", async () => {
  const p = await start({ conf: { connection: { max_message_size: "65536" } } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    p.manager.send({
      type: "REQUEST",
      request_id: "big",
      payload: { command: "heartbeat", arguments: { x: "y".repeat(200_000) } },
    });
    // The agent drops a connection that sends an oversized frame, then reconnects.
    await p.manager.waitForHandshake({ timeoutMs: 15000, count: 2 });
    const hb = await p.manager.request("heartbeat", {}, { timeoutMs: 15000, retransmitSeconds: 1 });
    assert.equal(payloadOf(hb.reply).return_code, 0);
    assert.equal(
      p.manager.frames.some((r) =>
        typeof r.frame === "object" && r.frame.request_id === "big" && r.dir === "in"
      ),
      false,
    );
  } finally {
    await p.close();
  }
});

Deno.test("agent: SIGTERM exits 0 and removes the pid file; SIGHUP keeps the connection", async () => {
  const p = await start();
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const pidFile = `${p.agent.baseDir}/dcm-agent.pid`;
    assert.equal(Deno.readTextFileSync(pidFile).trim(), String(p.agent.pid));
    const status = await runCli(["status", "-c", p.agent.confFile]);
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, /RUNNING/);
    // SIGHUP applies a changed setting without reconnecting: with max_at_once=0
    // every request is refused; restoring the file and SIGHUP again lifts it.
    const original = Deno.readTextFileSync(p.agent.confFile);
    Deno.writeTextFileSync(p.agent.confFile, `${original}\n[messaging]\nmax_at_once=0\n`);
    p.agent.kill("SIGHUP");
    await waitFor(
      () => /SIGHUP: configuration reloaded/.test(p.agent.output()),
      5000,
      "the reload",
    );
    await assert.rejects(p.manager.request("heartbeat", {}), RequestNackedError);
    Deno.writeTextFileSync(p.agent.confFile, original);
    p.agent.kill("SIGHUP");
    await waitFor(
      () => (p.agent.output().match(/SIGHUP: configuration reloaded/g) ?? []).length === 2,
      5000,
      "the second reload",
    );
    const hb = await p.manager.request("heartbeat", {});
    assert.equal(payloadOf(hb.reply).return_code, 0);
    assert.equal(p.manager.connections, 1, "SIGHUP with the same URL keeps the connection");
    await new Promise((r) => setTimeout(r, 300)); // let the manager's ACK of that reply land
    p.agent.kill("SIGTERM");
    const st = await p.agent.wait();
    assert.equal(st.code, 0);
    assert.throws(() => Deno.statSync(pidFile));
    const after = await runCli(["status", "-c", p.agent.confFile]);
    assert.equal(after.code, 1);
    assert.match(after.out, /NOT RUNNING/);
    assert.match(after.out, /requests processed:\s+1\n/);
  } finally {
    await p.close();
  }
});

async function runCli(args: string[]): Promise<{ code: number; out: string }> {
  const entry = Deno.env.get("DCM_AGENT_TEST_ENTRY") ?? "main.ts";
  const flags = entry.endsWith(".js") ? ["--no-config", "--cached-only"] : [];
  const r = await runProgram(Deno.execPath(), ["run", "-A", ...flags, entry, ...args]);
  return { code: r.code, out: r.stdout + r.stderr };
}

Deno.test("cli: --version, and a bad agent.conf exits 2 with one clear line", async () => {
  const v = await runCli(["--version"]);
  assert.equal(v.code, 0);
  assert.match(v.out, /^Version \d+\.\d+\.\d+\n$/);
  const dir = Deno.makeTempDirSync({ prefix: "dcm-cli-" });
  try {
    Deno.writeTextFileSync(
      `${dir}/agent.conf`,
      "[connection]\nagentmanager_url=ws://127.0.0.1:1/x\nbackoff=fast\n",
    );
    const r = await runCli(["run", "-c", `${dir}/agent.conf`]);
    assert.equal(r.code, 2);
    assert.match(r.out, /agent\.conf:3: \[connection\] backoff = 'fast' is not a whole number/);
    assert.equal(r.out.trim().split("\n").length, 1, r.out);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}

Deno.test("agent: memory stays flat under a stream of hostile frames", async () => {
  const p = await start({ conf: { connection: { max_message_size: "1048576" } } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const flood = async (round: number) => {
      const since = p.manager.frameCount;
      for (let i = 0; i < 3000; i++) {
        p.manager.send(
          i % 3 === 0 ? "{broken" : i % 3 === 1 ? { request_id: `u-${round}-${i}`, type: "ACK" } : {
            request_id: `n-${round}-${i}`,
            type: "REQUEST",
            payload: { command: "nope".repeat(50), arguments: {} },
          },
        );
      }
      await p.manager.waitForFrame((f) => f.type === "NACK" && f.request_id === `n-${round}-2999`, {
        since,
        timeoutMs: 30000,
      });
    };
    // Two floods let the heap reach its working size; eight more must not grow it.
    // (The unbounded growth this guards against was ~5 MB a flood: ~40 MB here.)
    await flood(1);
    await flood(2);
    const warm = rssKb(p.agent.pid);
    for (let r = 3; r <= 10; r++) await flood(r);
    const after = rssKb(p.agent.pid);
    assert.ok(
      after - warm < 16 * 1024,
      `RSS grew from ${warm} kB to ${after} kB under repeated floods`,
    );
    const hb = await p.manager.request("heartbeat", {});
    assert.equal(payloadOf(hb.reply).return_code, 0);
    assert.equal(p.manager.connections, 1);
  } finally {
    await p.close();
  }
});

Deno.test("agent: a queued request that never started runs once after a SIGKILL; the running one is lost", async () => {
  const p = await start({ conf: { workers: { count: "1" } } });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    const running = `${p.agent.baseDir}/running`;
    const queued = `${p.agent.baseDir}/queued`;
    const since = p.manager.frameCount;
    p.manager.send({
      type: "REQUEST",
      request_id: "q-run",
      payload: { command: "run_script", arguments: await counting(running, 30) },
    });
    p.manager.send({
      type: "REQUEST",
      request_id: "q-wait",
      payload: { command: "run_script", arguments: await counting(queued) },
    });
    await p.manager.waitForFrame((f) => f.type === "ACK" && f.request_id === "q-wait", { since });
    await waitFor(() => runsIn(running) === 1, 10000, "the first script to start");
    assert.equal(runsIn(queued), 0, "the second request waits for the only worker");
    p.agent.kill("SIGKILL");
    await p.agent.wait();
    const s2 = p.manager.frameCount;
    await restart(p);
    const reply = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "q-wait",
      { since: s2, timeoutMs: 15000 },
    );
    assert.equal(
      payloadOf(reply).return_code,
      0,
      "it ran after the restart, without being asked again",
    );
    assert.equal(runsIn(queued), 1);
    p.manager.send({
      type: "REQUEST",
      request_id: "q-run",
      payload: { command: "run_script", arguments: {} },
    });
    const lost = await p.manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "q-run",
      { since: s2 },
    );
    assert.equal(payloadOf(lost).return_code, 1);
    assert.equal(runsIn(running), 1, "the command that had started is never re-run");
  } finally {
    await p.close();
  }
});

Deno.test("agent: a manager that keeps sending but never reads is dropped without waiting for heartbeats", async () => {
  const p = await start({
    conf: { connection: { heartbeat_frequency: "60", max_message_size: "65536" } },
  });
  try {
    await p.manager.waitForHandshake({ timeoutMs: 15000 });
    p.manager.freeze();
    const id = "x".repeat(500);
    const t0 = Date.now();
    // Each frame earns a ~700-byte NACK that the frozen manager never reads.
    for (let i = 0; i < 40000 && p.manager.handshakes.length < 2; i++) {
      try {
        p.manager.send({ request_id: `${id}${i}`, type: "BOGUS" }, { whileFrozen: true });
      } catch {
        break; // the agent dropped the connection: what this test waits for
      }
      if (i % 2000 === 0) await new Promise((r) => setTimeout(r, 20));
    }
    await p.manager.waitForHandshake({ timeoutMs: 20000, count: 2 });
    assert.ok(Date.now() - t0 < 30000, "dropped long before two heartbeat periods (120 s)");
    assert.match(p.agent.output(), /stopped reading/);
    const hb = await p.manager.request("heartbeat", {}, { retransmitSeconds: 1 });
    assert.equal(payloadOf(hb.reply).return_code, 0);
  } finally {
    p.manager.unfreeze();
    await p.close();
  }
});
