/**
 * Tests of the development manager (scripts/dev_manager.ts) against a minimal
 * agent-side websocket client written here with npm `ws`.
 */
import assert from "node:assert/strict";
// @deno-types="@types/ws"
import WebSocket from "ws";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { DevManager, type Frame, RequestNackedError } from "../../scripts/dev_manager.ts";
import { delay, waitFor } from "../helpers/wait.ts";

/** A minimal fake agent: connects with subprotocol dcm and records what the manager sends. */
class FakeAgent {
  readonly ws: WebSocket;
  readonly received: Frame[] = [];
  readonly pongs: string[] = [];
  closeCode: number | undefined;
  #waiters: (() => void)[] = [];
  #closed: Promise<void>;

  private constructor(ws: WebSocket) {
    this.ws = ws;
    ws.on("message", (data) => {
      this.received.push(JSON.parse(String(data)));
      this.#wake();
    });
    ws.on("pong", (data) => {
      this.pongs.push(String(data));
      this.#wake();
    });
    ws.on("error", () => {});
    this.#closed = new Promise((resolve) =>
      ws.on("close", (code) => {
        this.closeCode = code;
        this.#wake();
        resolve();
      })
    );
  }

  static async connect(url: string): Promise<FakeAgent> {
    const ws = new WebSocket(url, ["dcm"]);
    const agent = new FakeAgent(ws);
    await new Promise<void>((resolve, reject) => {
      ws.once("open", () => resolve());
      ws.once("error", reject);
    });
    assert.equal(ws.protocol, "dcm");
    return agent;
  }

  send(frame: Frame): void {
    this.ws.send(JSON.stringify(frame));
  }

  /** Waits until the condition holds, re-checking on every event. */
  async until(cond: () => boolean, timeoutMs = 2000, what = "condition"): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!cond()) {
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`fake agent: timed out waiting for ${what}`);
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#waiters.push(resolve);
        timer = setTimeout(resolve, left);
      });
      clearTimeout(timer);
    }
  }

  /** Resolves with the first received frame (from index `from`) matching the predicate. */
  async next(pred: (f: Frame) => boolean, from = 0, timeoutMs = 2000): Promise<Frame> {
    let found: Frame | undefined;
    await this.until(() => (found = this.received.slice(from).find(pred)) !== undefined, timeoutMs);
    return found!;
  }

  async handshake(doc: Frame = handshakeDoc()): Promise<Frame> {
    this.send(doc);
    return await this.next(() => true);
  }

  async close(): Promise<void> {
    this.ws.terminate();
    await this.#closed;
  }

  /** Same as close() (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  get closed(): Promise<void> {
    return this.#closed;
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }
}

function handshakeDoc(): Frame {
  return {
    ipv4: ["127.0.0.1"],
    ipv6: [],
    agent_id: null,
    token: "test-token",
    vm_instance: null,
    injected_id: null,
    version: "0.0.0-test",
    protocol_version: 104,
    platform: "debian",
    platform_version: "12",
    features: { plugins: ["heartbeat"] },
  };
}

let agentMessageCounter = 0;
function agentFrame(type: string, requestId: unknown, extra: Frame = {}): Frame {
  return {
    type,
    message_id: `agent${++agentMessageCounter}`,
    request_id: requestId,
    agent_id: "A-7",
    ...extra,
  };
}

Deno.test("handshake is answered with 200 and the agentID", async () => {
  await using m = await DevManager.start({ agentId: "A-7", customerId: 42 });
  await using a = await FakeAgent.connect(m.url);
  assert.match(m.url, /^ws:\/\/127\.0\.0\.1:\d+\/agentManager$/);
  const reply = await a.handshake();
  assert.equal(reply.return_code, 200);
  const hs = reply.handshake as Frame;
  assert.equal(hs.agentID, "A-7");
  assert.equal(hs.customerId, 42);
  const doc = await m.waitForHandshake();
  assert.equal(doc.protocol_version, 104);
  assert.deepEqual(m.handshakes, [handshakeDoc()]);
  assert.equal(m.connections, 1);
  assert.ok(m.isConnected());
  assert.equal(m.frames.length, 0, "the handshake is not a frame");
});

Deno.test("request(): REQUEST, ACK, REPLY, then the manager ACKs with the REPLY's message_id", async () => {
  await using m = await DevManager.start({ agentId: "A-7" });
  await using a = await FakeAgent.connect(m.url);
  await a.handshake();
  const result = m.request("heartbeat", {}, { requestId: "r-1" });
  const req = await a.next((f) => f.type === "REQUEST");
  assert.equal(req.request_id, "r-1");
  assert.equal(typeof req.message_id, "string");
  assert.deepEqual(req.payload, { command: "heartbeat", arguments: {} });

  a.send(agentFrame("ACK", "r-1", { entity: "user_accepts" }));
  a.send({ type: "LOG", token: "", level: "INFO", message: "job%20started" });
  const replyFrame = agentFrame("REPLY", "r-1", {
    entity: "timer",
    payload: {
      return_code: 0,
      reply_type: "string",
      reply_object: "STARTING",
      message: "",
      error_message: "",
    },
  });
  a.send(replyFrame);
  const { requestId, ack, reply } = await result;
  assert.equal(requestId, "r-1");
  assert.equal(ack?.type, "ACK");
  assert.deepEqual(reply, replyFrame);

  const mgrAck = await a.next((f) => f.type === "ACK");
  assert.equal(mgrAck.request_id, "r-1");
  assert.equal(mgrAck.message_id, replyFrame.message_id);

  // A retransmitted REPLY (same message_id) is ACKed again, as the model does for 60 s.
  const before = a.received.length;
  a.send(replyFrame);
  const again = await a.next((f) => f.type === "ACK", before);
  assert.equal(again.message_id, replyFrame.message_id);

  // The LOG frame was recorded and not answered.
  const log = await m.waitForFrame((f) => f.type === "LOG");
  assert.equal(log.message, "job%20started");
  assert.equal(a.received.filter((f) => f.type !== "ACK" && f.type !== "REQUEST").length, 1);
  const types = m.frames.map((r) => `${r.dir}:${(r.frame as Frame).type}`);
  assert.deepEqual(types, [
    "out:REQUEST",
    "in:ACK",
    "in:LOG",
    "in:REPLY",
    "out:ACK",
    "in:REPLY",
    "out:ACK",
  ]);
});

Deno.test("request(): the same REQUEST is retransmitted until the ACK, then no more", async () => {
  await using m = await DevManager.start();
  await using a = await FakeAgent.connect(m.url);
  await a.handshake();
  const result = m.request("heartbeat", { x: 1 }, { retransmitSeconds: 0.05 });
  await a.until(
    () => a.received.filter((f) => f.type === "REQUEST").length >= 3,
    2000,
    "three copies of the REQUEST",
  );
  const copies = a.received.filter((f) => f.type === "REQUEST");
  for (const c of copies) assert.deepEqual(c, copies[0], "a retransmission is the same document");

  a.send(agentFrame("ACK", copies[0].request_id));
  await m.waitForFrame((f) => f.type === "ACK");
  await delay(50); // a copy may already be in flight
  const afterAck = a.received.length;
  await delay(200);
  assert.equal(a.received.length, afterAck, "no retransmission after the ACK");

  a.send(agentFrame("REPLY", copies[0].request_id, { payload: { return_code: 0 } }));
  const { ack, reply } = await result;
  assert.ok(ack);
  assert.equal((reply.payload as Frame).return_code, 0);
});

Deno.test("request(): REQUESTs made before the handshake are sent once it is accepted", async () => {
  await using m = await DevManager.start();
  const result = m.request("heartbeat");
  await using a = await FakeAgent.connect(m.url);
  const reply = await a.handshake();
  assert.equal(reply.return_code, 200);
  const req = await a.next((f) => f.type === "REQUEST");
  a.send(agentFrame("REPLY", req.request_id, { payload: { return_code: 0 } }));
  const r = await result;
  assert.equal(r.ack, null, "a REPLY without ACK still completes the request");
});

Deno.test("request(): a NACK rejects with RequestNackedError; autoAck off leaves REPLYs alone", async () => {
  await using m = await DevManager.start({ autoAckReplies: false });
  await using a = await FakeAgent.connect(m.url);
  await a.handshake();
  const nacked = m.request("no_such_command");
  const req = await a.next((f) => f.type === "REQUEST");
  a.send(
    agentFrame("NACK", req.request_id, {
      error_message: "Plugin no_such_command was not found.",
    }),
  );
  const err = await nacked.then(() => undefined, (e) => e);
  assert.ok(err instanceof RequestNackedError);
  assert.match(err.message, /no_such_command was not found/);

  const quiet = m.request("heartbeat");
  const req2 = await a.next((f) => f.type === "REQUEST" && f.request_id !== req.request_id);
  a.send(agentFrame("REPLY", req2.request_id, { payload: { return_code: 0 } }));
  await quiet;
  await delay(100);
  assert.equal(a.received.filter((f) => f.type === "ACK").length, 0);

  // Turned back on, a retransmitted REPLY within 60 s gets its ACK.
  m.setAutoAck(true);
  const reply = agentFrame("REPLY", req2.request_id, { payload: { return_code: 0 } });
  a.send(reply);
  const ack = await a.next((f) => f.type === "ACK");
  assert.equal(ack.message_id, reply.message_id);
});

Deno.test("request() and waitForFrame() time out with a clear message", async () => {
  await using m = await DevManager.start();
  await using a = await FakeAgent.connect(m.url);
  await a.handshake();
  await assert.rejects(
    m.request("heartbeat", {}, { timeoutMs: 100 }),
    /request 'heartbeat' \(.+\) timed out after 100 ms: neither ACK nor REPLY came/,
  );
  await assert.rejects(
    m.waitForFrame((f) => f.type === "REPLY", { timeoutMs: 50 }),
    /timed out after 50 ms waiting for a matching frame/,
  );
  await assert.rejects(m.waitForHandshake({ count: 2, timeoutMs: 50 }), /handshake #2/);
});

Deno.test("handshake 'ignore' never answers; the reconnection becomes the current connection", async () => {
  await using m = await DevManager.start({
    handshake: (_doc, attempt) =>
      attempt === 1 ? "ignore" : { return_code: 200, handshake: { agentID: "B" } },
  });
  await using a1 = await FakeAgent.connect(m.url);
  a1.send(handshakeDoc());
  await m.waitForHandshake({ count: 1 });
  await delay(100);
  assert.equal(a1.received.length, 0, "an ignored handshake gets no reply");
  assert.deepEqual(m.handshakeReplies, ["ignore"]);

  await using a2 = await FakeAgent.connect(m.url);
  const reply = await a2.handshake();
  assert.deepEqual(reply, { return_code: 200, handshake: { agentID: "B" } });
  await m.waitForHandshake({ count: 2 });
  assert.equal(m.connections, 2);

  const result = m.request("heartbeat");
  const req = await a2.next((f) => f.type === "REQUEST");
  a2.send(agentFrame("REPLY", req.request_id, { payload: { return_code: 0 } }));
  await result;
  assert.equal(a1.received.length, 0, "requests go to the latest connection only");

  m.setHandshake(() => ({ return_code: 401 }));
  await using a3 = await FakeAgent.connect(m.url);
  assert.deepEqual(await a3.handshake(), { return_code: 401 });
});

Deno.test("freeze() stops pongs and reading while the TCP connection stays open", async () => {
  await using m = await DevManager.start();
  await using a = await FakeAgent.connect(m.url);
  await a.handshake();
  a.ws.ping("p1");
  await a.until(() => a.pongs.length === 1, 2000, "the first pong");
  assert.equal(m.pings, 1);

  m.freeze();
  a.ws.ping("p2");
  a.send({ type: "LOG", token: "", level: "INFO", message: "while-frozen" });
  await delay(500);
  assert.deepEqual(a.pongs, ["p1"], "no pong while frozen");
  assert.equal(m.pings, 1);
  assert.equal(m.frames.length, 0, "nothing is read while frozen");
  assert.equal(a.ws.readyState, WebSocket.OPEN, "the connection stays open");
  assert.throws(() => m.send({ type: "X" }), /frozen/);

  m.unfreeze();
  await a.until(() => a.pongs.length === 2, 2000, "the late pong");
  assert.deepEqual(a.pongs, ["p1", "p2"]);
  const log = await m.waitForFrame((f) => f.type === "LOG");
  assert.equal(log.message, "while-frozen");
});

Deno.test("dropConnection() abruptly closes the connection and the agent may reconnect", async () => {
  await using m = await DevManager.start();
  await using a = await FakeAgent.connect(m.url);
  await a.handshake();
  m.dropConnection();
  await a.closed;
  assert.equal(a.closeCode, 1006, "no close frame was sent");
  await a.until(() => !m.isConnected(), 2000, "the manager to notice");

  await using b = await FakeAgent.connect(m.url);
  await b.handshake();
  await m.waitForHandshake({ count: 2 });
  assert.ok(m.isConnected());
  assert.equal(m.connections, 2);
});

Deno.test("close() rejects pending requests and frees the port", async () => {
  const m = await DevManager.start();
  const a = await FakeAgent.connect(m.url);
  await a.handshake();
  const pending = m.request("heartbeat");
  await m.close();
  await assert.rejects(pending, /DevManager closed/);
  await a.closed;
  await assert.rejects(FakeAgent.connect(m.url));
});

/** A stand-in agent: prints its config, starts a grandchild in its group, exits 0 on SIGTERM. */
const FAKE_ENTRY = `
const conf = Deno.args[Deno.args.indexOf("-c") + 1];
console.log(Deno.readTextFileSync(conf));
const sleeper = new Deno.Command("sleep", { args: ["60"] }).spawn();
console.error("sleeper " + sleeper.pid);
Deno.addSignalListener("SIGTERM", () => { console.log("got SIGTERM"); Deno.exit(0); });
console.log("ready");
setInterval(() => {}, 1000);
`;

function processAlive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2)[0] !== "Z";
  } catch {
    return false;
  }
}

Deno.test("AgentProcess writes agent.conf, captures output, stops gracefully and restarts in the same base dir", async () => {
  const dir = await Deno.makeTempDir();
  const entry = `${dir}/fake_agent.js`;
  await Deno.writeTextFile(entry, FAKE_ENTRY);
  const first = await AgentProcess.start({
    managerUrl: "ws://127.0.0.1:1/agentManager",
    entry,
    conf: { connection: { heartbeat_frequency: "7" }, features: { color: "blue" } },
  });
  let second: AgentProcess | undefined;
  try {
    assert.match(
      first.commandLine,
      /run -A --v8-flags=\S+ --no-code-cache --no-config --cached-only .*fake_agent\.js run -c /,
    );
    await waitFor(() => first.output().includes("ready"), 10_000, "the fake agent to start");
    const conf = await Deno.readTextFile(first.confFile);
    assert.equal(first.confFile, `${first.baseDir}/etc/agent.conf`);
    assert.match(conf, /\[connection\]\nagentmanager_url=ws:\/\/127\.0\.0\.1:1\/agentManager\n/);
    assert.match(conf, /heartbeat_frequency=7\n/);
    assert.match(conf, /backoff=100\n/);
    assert.match(conf, new RegExp(`dbfile=${first.baseDir}/secure/agentdb.sql\n`));
    assert.match(conf, /\[features\]\ncolor=blue\n/);
    assert.ok(first.output().includes(conf.trim()), "stdout is captured");
    assert.equal((await Deno.stat(`${first.baseDir}/secure`)).mode! & 0o777, 0o700);

    const status = await first.stop();
    assert.ok(status.success, first.output());
    assert.match(first.output(), /got SIGTERM/);
    const sleeper = Number(/sleeper (\d+)/.exec(first.output())![1]);
    await waitFor(
      () => !processAlive(sleeper),
      10_000,
      "the grandchild to be killed with the group",
    );

    second = await AgentProcess.start({
      managerUrl: "ws://127.0.0.1:2/x",
      baseDir: first.baseDir,
      entry,
    });
    await waitFor(() => second!.output().includes("ready"), 10_000, "the restarted fake agent");
    assert.match(
      await Deno.readTextFile(second.confFile),
      /agentmanager_url=ws:\/\/127\.0\.0\.1:2\/x/,
    );
    await second.cleanup();
    assert.ok((await Deno.stat(first.baseDir)).isDirectory, "a reused base dir is not removed");
  } finally {
    await second?.cleanup();
    await first.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
  await assert.rejects(Deno.stat(first.baseDir), Deno.errors.NotFound);
});

Deno.test("AgentProcess.cleanup() kills the whole process group", async () => {
  const dir = await Deno.makeTempDir();
  const entry = `${dir}/fake_agent.js`;
  await Deno.writeTextFile(entry, FAKE_ENTRY);
  const agent = await AgentProcess.start({ managerUrl: "ws://127.0.0.1:1/agentManager", entry });
  try {
    await waitFor(() => /sleeper (\d+)/.test(agent.output()), 10_000, "the fake agent to start");
    const sleeper = Number(/sleeper (\d+)/.exec(agent.output())![1]);
    assert.ok(processAlive(agent.pid) && processAlive(sleeper));
    await agent.cleanup();
    assert.equal(agent.exitStatus?.signal, "SIGKILL");
    await waitFor(() => !processAlive(sleeper), 10_000, "the grandchild to die");
    await assert.rejects(Deno.stat(agent.baseDir), Deno.errors.NotFound);
  } finally {
    await agent.cleanup();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("AgentProcess.start() fails clearly for a missing entry", async () => {
  await assert.rejects(
    AgentProcess.start({ managerUrl: "ws://127.0.0.1:1/x", entry: "no/such/entry.ts" }),
    /the agent entry point .*no\/such\/entry\.ts does not exist/,
  );
});
