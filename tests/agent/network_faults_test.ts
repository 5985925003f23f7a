/**
 * Network faults injected for real by a TCP proxy between the agent process
 * and the development manager (tests/helpers/fault_proxy.ts): a manager that
 * freezes (one or both directions), a partition while a command runs, and a
 * burst of 10,000 requests the manager queued while the agent was away.
 * Each test prints the figure it measures.
 */
import assert from "node:assert/strict";
import { DevManager, type DevManagerOptions, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { type Direction, FaultProxy } from "../helpers/fault_proxy.ts";
import { delay, waitFor } from "../helpers/wait.ts";
import { shellScript } from "../helpers/script_args.ts";

function linesOf(file: string): string[] {
  try {
    return Deno.readTextFileSync(file).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}

function rssKb(pid: number): number {
  return Number(/VmRSS:\s+(\d+)/.exec(Deno.readTextFileSync(`/proc/${pid}/status`))![1]);
}

const payloadOf = (f: Frame) => f.payload as Frame;

interface Rig {
  manager: DevManager;
  proxy: FaultProxy;
  agent: AgentProcess;
  close(): Promise<void>;
}

/** A manager, a proxy in front of it and an agent connected through the proxy. */
async function rig(
  conf: Record<string, Record<string, string>>,
  managerOptions: DevManagerOptions = {},
): Promise<Rig> {
  const manager = await DevManager.start(managerOptions);
  const proxy = FaultProxy.start(manager.port);
  const agent = await AgentProcess.start({ managerUrl: proxy.rewrite(manager.url), conf });
  const close = async () => {
    try {
      await agent.stop();
    } finally {
      await agent.cleanup();
      await proxy.close();
      await manager.close();
    }
  };
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 20000 }), "connecting");
  } catch (err) {
    await close();
    throw err;
  }
  return { manager, proxy, agent, close };
}

/** Occurrences of `re` in the agent's output. */
function count(agent: AgentProcess, re: RegExp): number {
  return agent.output().match(new RegExp(re.source, "g"))?.length ?? 0;
}

Deno.test("agent: a frozen manager (either or both directions) is detected within 2 x heartbeat + 5 s", async () => {
  const heartbeat = 2;
  const limitMs = 2 * heartbeat * 1000 + 5000;
  const r = await rig({ connection: { heartbeat_frequency: String(heartbeat) } });
  try {
    const cases: Direction[][] = [["up"], ["down"], ["up", "down"]];
    const figures: string[] = [];
    for (const [i, dirs] of cases.entries()) {
      const lost = count(r.agent, /lost the connection to the manager/);
      const t0 = performance.now();
      r.proxy.freeze(dirs);
      await waitFor(
        () => count(r.agent, /lost the connection to the manager/) > lost,
        limitMs + 5000,
        `the agent to drop the connection frozen ${dirs.join("+")}`,
      );
      const detectMs = performance.now() - t0;
      await r.manager.waitForHandshake({ count: i + 2, timeoutMs: 15000 });
      const backMs = performance.now() - t0;
      figures.push(
        `${dirs.join("+")}: detected in ${(detectMs / 1000).toFixed(2)} s, ` +
          `reconnected in ${(backMs / 1000).toFixed(2)} s`,
      );
      assert.ok(detectMs <= limitMs, `frozen ${dirs.join("+")} detected after ${detectMs} ms`);
      assert.match(r.agent.output(), /the connection is dead: no answer to a ping/);
      const hb = await r.manager.request("heartbeat", {}, { timeoutMs: 15000 });
      assert.equal(payloadOf(hb.reply).return_code, 0);
      // The frozen link is left to the proxy; the next case freezes the new one.
      r.proxy.heal();
    }
    console.log(
      `frozen manager, heartbeat ${heartbeat} s (limit ${limitMs / 1000} s): ${figures.join("; ")}`,
    );
  } finally {
    await r.close();
  }
});

Deno.test("agent: a partition mid-command: it runs once, its REPLY comes after the reconnect, no reply lost or doubled", async () => {
  const r = await rig(
    {
      connection: { heartbeat_frequency: "1", handshake_timeout: "2" },
      messaging: { retransmission_timeout: "1" },
    },
    { retransmitSeconds: 1 },
  );
  try {
    const dir = r.agent.baseDir;
    const marks = (name: string) => `${dir}/${name}.runs`;
    const counting = (name: string, sleep = 0) =>
      shellScript(
        `echo run >> '${marks(name)}'\n${sleep ? `sleep ${sleep}` : ""}\necho done-${name}`,
      );
    const requests = new Map<string, Promise<unknown>>();
    const ask = (name: string, args: Record<string, unknown>) => {
      const p = r.manager.request("run_script", args, { requestId: name, timeoutMs: 60000 });
      requests.set(name, p);
      return p;
    };
    await ask("before", await counting("before"));
    // The long command is running when the partition starts; two more are in flight.
    const since = r.manager.frameCount;
    void ask("long", await counting("long", 3));
    await r.manager.waitForFrame((f) => f.type === "ACK" && f.request_id === "long", { since });
    await waitFor(() => linesOf(marks("long")).length === 1, 10000, "the long command to start");
    void ask("racing", await counting("racing", 1));
    r.proxy.partition();
    // Sent into the partition: the manager retransmits it until an ACK comes.
    void ask("during", await counting("during"));
    await waitFor(
      () => /lost the connection to the manager/.test(r.agent.output()),
      10000,
      "the agent to notice the partition",
    );
    await delay(4000); // the long command ends while the partition lasts
    const healedAt = performance.now();
    const healedFrame = r.manager.frameCount;
    r.proxy.heal();
    const results = await Promise.all(
      [...requests].map(async ([name, p]) => ({
        name,
        reply: ((await p) as { reply: Frame }).reply,
      })),
    );
    const tookMs = performance.now() - healedAt;
    for (const { name, reply } of results) {
      assert.equal(payloadOf(reply).return_code, 0, `${name} succeeded`);
      assert.equal(payloadOf(reply).message, `done-${name}\n`);
      assert.equal(linesOf(marks(name)).length, 1, `${name} ran exactly once`);
    }
    const replies = r.manager.frames.filter((f) =>
      f.dir === "in" && typeof f.frame === "object" && f.frame.type === "REPLY"
    ).map((f) => f.frame as Frame);
    for (const name of requests.keys()) {
      const mine = replies.filter((f) => f.request_id === name);
      assert.ok(mine.length >= 1, `a REPLY for ${name}`);
      // A retransmitted REPLY is the same message; a second, different reply would be a double.
      assert.equal(new Set(mine.map((f) => f.message_id)).size, 1, `one reply for ${name}`);
      assert.equal(new Set(mine.map((f) => JSON.stringify(f.payload))).size, 1);
    }
    const longReplyAt = r.manager.frames.findIndex((f, i) =>
      i >= healedFrame - (r.manager.frameCount - r.manager.frames.length) &&
      f.dir === "in" && typeof f.frame === "object" && f.frame.type === "REPLY" &&
      f.frame.request_id === "long"
    );
    assert.ok(longReplyAt >= 0, "the long command's REPLY arrived after the heal");
    assert.equal(r.manager.handshakes.length >= 2, true, "the agent reconnected");
    console.log(`partition: every reply in ${(tookMs / 1000).toFixed(2)} s after the heal`);
  } finally {
    await r.close();
  }
});

Deno.test("agent: 10,000 requests queued while disconnected arrive in a burst: each ACKed, run once, answered", async () => {
  const total = 10000;
  const scripts = 200;
  const workers = 2;
  const r = await rig(
    {
      connection: { heartbeat_frequency: "5" },
      workers: { count: String(workers) },
      messaging: { retransmission_timeout: "30" },
    },
    { maxFrames: 10 * total, retransmitSeconds: 0 },
  );
  try {
    const trace = `${r.agent.baseDir}/trace`;
    await delay(1000);
    const idleKb = rssKb(r.agent.pid);
    r.proxy.cut();
    await waitFor(() => !r.manager.isConnected(), 10000, "the manager to see the agent go");
    const since = r.manager.frameCount;
    const pending: Promise<{ reply: Frame; ack: Frame | null }>[] = [];
    for (let i = 0; i < total; i++) {
      const id = `burst-${i}`;
      if (i % (total / scripts) === 0) {
        // A script that marks its start and end, to count runs and concurrency.
        const args = await shellScript(
          `echo "start ${id}" >> '${trace}'\necho "end ${id}" >> '${trace}'`,
        );
        pending.push(r.manager.request("run_script", args, { requestId: id, timeoutMs: 300000 }));
      } else {
        pending.push(r.manager.request("heartbeat", {}, { requestId: id, timeoutMs: 300000 }));
      }
    }
    let peakKb = idleKb;
    const sampler = setInterval(() => {
      try {
        peakKb = Math.max(peakKb, rssKb(r.agent.pid));
      } catch { /* exiting */ }
    }, 50);
    const t0 = performance.now();
    const healedAt = Date.now();
    r.proxy.heal();
    let results;
    try {
      results = await r.agent.whileRunning(Promise.all(pending), "answering the burst");
    } finally {
      clearInterval(sampler);
    }
    const seconds = (performance.now() - t0) / 1000;
    for (const res of results) {
      assert.ok(res.ack, `${res.reply.request_id} was ACKed`);
      assert.equal(payloadOf(res.reply).return_code, 0);
    }
    const lines = linesOf(trace);
    const starts = lines.filter((l) => l.startsWith("start "));
    assert.equal(starts.length, scripts, "each script ran");
    assert.equal(new Set(starts).size, scripts, "no script ran twice");
    let running = 0;
    let most = 0;
    for (const l of lines) {
      running += l.startsWith("start ") ? 1 : -1;
      most = Math.max(most, running);
    }
    assert.ok(most <= workers, `at most ${workers} scripts at once (saw ${most})`);
    const inFrames = r.manager.frames
      .slice(Math.max(0, since - (r.manager.frameCount - r.manager.frames.length)))
      .filter((f) => f.dir === "in" && typeof f.frame === "object");
    const ackFrames = inFrames.filter((f) => (f.frame as Frame).type === "ACK");
    const acks = new Set(ackFrames.map((f) => (f.frame as Frame).request_id));
    const lastAt = (type: string, prefix: RegExp) =>
      (Math.max(
        ...inFrames.filter((f) =>
          (f.frame as Frame).type === type && prefix.test(String((f.frame as Frame).request_id))
        ).map((f) => f.at),
      ) - healedAt) / 1000;
    assert.equal(acks.size, total, "every request was ACKed");
    const nacks = r.manager.frames.filter((f) =>
      f.dir === "in" && typeof f.frame === "object" && f.frame.type === "NACK"
    );
    assert.equal(nacks.length, 0, "nothing was refused");
    await delay(2000);
    const settledKb = rssKb(r.agent.pid);
    console.log(
      `burst: ${total} requests (${scripts} scripts) answered in ${seconds.toFixed(2)} s = ` +
        `${Math.round(total / seconds)} requests/s; RSS idle ${Math.round(idleKb / 1024)} MB, ` +
        `peak ${Math.round(peakKb / 1024)} MB, after ${Math.round(settledKb / 1024)} MB; ` +
        `all ACKed after ${lastAt("ACK", /./).toFixed(2)} s`,
    );
    assert.ok(peakKb < idleKb + 128 * 1024, `memory stays bounded (peak ${peakKb} kB)`);
    const hb = await r.manager.request("heartbeat", {});
    assert.equal(payloadOf(hb.reply).return_code, 0);
  } finally {
    await r.close();
  }
});
