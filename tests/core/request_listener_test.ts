/**
 * The request listener in-process: a real journal file, real command modules
 * and a transport that records frames. Process-level behaviour (crashes,
 * reconnects) is covered by agent_protocol_test.ts.
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/wait.ts";
import { configFromValues } from "../../lib/config/agent_conf.ts";
import { Journal } from "../../lib/core/journal.ts";
import { RequestListener } from "../../lib/core/request_listener.ts";
import { builtinPluginTable } from "../../lib/core/plugin_conf.ts";
import { defineCommand } from "../../lib/core/command.ts";
import { makeReply } from "../../lib/protocol/messages.ts";
import heartbeat from "../../commands/agent/heartbeat.ts";
import getJobDescription from "../../commands/agent/get_job_description.ts";

type Frame = Record<string, unknown>;

let runs = 0;
const counter = defineCommand({
  name: "count_me",
  description: "counts its executions",
  args: { delayMs: { type: "int", default: 0, help: "how long to run" } },
  async run(args, ctx) {
    runs++;
    if (args.delayMs) {
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, args.delayMs);
        ctx.signal.addEventListener("abort", () => {
          clearTimeout(t);
          resolve();
        });
      });
    }
    return makeReply(0, { reply_type: "string", reply_object: `run ${runs}` });
  },
});
const longJob = defineCommand({
  name: "long_job",
  description: "a long runner",
  execution: "long",
  args: { n: { type: "int", required: true, help: "a number" } },
  async run(args) {
    await new Promise((r) => setTimeout(r, 50));
    return makeReply(0, { reply_type: "string", reply_object: `n=${args.n}` });
  },
});

const waitForAbort = defineCommand({
  name: "wait_for_abort",
  description: "a long runner that runs until it is stopped",
  execution: "long",
  args: {},
  run(_args, ctx) {
    return new Promise((resolve) =>
      ctx.signal.addEventListener("abort", () => resolve(makeReply(1, { message: "stopped" })))
    );
  },
});

interface Harness {
  listener: RequestListener;
  frames: Frame[];
  journal: Journal;
  open: boolean;
  send(frame: Frame | string): void;
  waitFor(pred: (f: Frame) => boolean, timeoutMs?: number): Promise<Frame>;
  close(): Promise<void>;
}

async function harness(conf: Record<string, Record<string, string>> = {}): Promise<Harness> {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-listener-" });
  const config = configFromValues({
    connection: { agentmanager_url: "ws://127.0.0.1:1/x" },
    storage: { base_dir: dir },
    messaging: { retransmission_timeout: "0.1" },
    ...conf,
  });
  const journal = Journal.open(`${dir}/secure/agentdb.sql`);
  const frames: Frame[] = [];
  let state = "STARTING";
  const table = builtinPluginTable([heartbeat, getJobDescription, counter, longJob, waitForAbort]);
  const h: Harness = {
    frames,
    journal,
    open: true,
    listener: undefined as unknown as RequestListener,
    send: (f) => h.listener.handleFrame(typeof f === "string" ? f : JSON.stringify(f)),
    async waitFor(pred, timeoutMs = 3000) {
      const end = Date.now() + timeoutMs;
      let seen = 0;
      while (Date.now() < end) {
        for (; seen < frames.length; seen++) {
          if (pred(frames[seen])) return frames.splice(seen, 1)[0];
        }
        await new Promise((r) => setTimeout(r, 5));
      }
      throw new Error(
        `no matching frame within ${timeoutMs} ms; frames: ${JSON.stringify(frames)}`,
      );
    },
    async close() {
      await h.listener.stop(1000);
      journal.close();
      Deno.removeSync(dir, { recursive: true });
    },
  };
  h.listener = new RequestListener({
    config,
    journal,
    plugins: () => table,
    transport: { send: (f) => (h.open ? (frames.push(f), true) : false), isOpen: () => h.open },
    agentId: () => "A-1",
    services: {
      state: { get: () => state, set: (s) => void (state = s) },
      stats: { init() {}, get: () => ({ replyType: "x", samples: [] }), delete() {} },
      host: {
        version: "t",
        platformName: "debian",
        platformVersion: "12",
        ipv4Addresses: () => Promise.resolve([]),
        customerId: () => 50,
      },
      adapters: {},
    },
    onHemlock: () => {},
  });
  await h.listener.start();
  return h;
}

const req = (id: string, command: string, args: unknown = {}) => ({
  type: "REQUEST",
  request_id: id,
  message_id: `m-${id}`,
  payload: { command, arguments: args },
});
const of = (type: string, id: string) => (f: Frame) => f.type === type && f.request_id === id;

Deno.test("listener: REQUEST gets ACK then REPLY; ACK of the reply ends retransmission", async () => {
  const h = await harness();
  try {
    h.send(req("r1", "heartbeat"));
    const ack = await h.waitFor(of("ACK", "r1"));
    assert.equal(ack.agent_id, "A-1");
    assert.equal(ack.entity, "user_accepts");
    const reply = await h.waitFor(of("REPLY", "r1"));
    assert.deepEqual(reply.payload, {
      return_code: 0,
      reply_type: "string",
      reply_object: "STARTING",
      message: "",
      error_message: "",
    });
    assert.notEqual(reply.message_id, ack.message_id);
    const again = await h.waitFor(of("REPLY", "r1"));
    assert.equal(again.message_id, reply.message_id, "a retransmitted REPLY keeps its message_id");
    h.send({ type: "ACK", request_id: "r1", message_id: reply.message_id });
    await new Promise((r) => setTimeout(r, 300));
    h.frames.length = 0;
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(
      h.frames.filter((f) => f.request_id === "r1").length,
      0,
      "no retransmission after the ACK",
    );
    assert.equal(h.journal.get("r1")?.state, "REPLY_ACKED");
  } finally {
    await h.close();
  }
});

Deno.test("listener: duplicates never run the command twice", async () => {
  const h = await harness();
  try {
    const before = runs;
    h.send(req("d1", "count_me", { delayMs: 200 }));
    await h.waitFor(of("ACK", "d1"));
    h.send(req("d1", "count_me", { delayMs: 200 }));
    const second = await h.waitFor(of("ACK", "d1"));
    assert.equal(second.entity, "request_received");
    const reply = await h.waitFor(of("REPLY", "d1"));
    h.send(req("d1", "count_me", { delayMs: 200 }));
    const resent = await h.waitFor(of("REPLY", "d1"));
    assert.deepEqual(resent.payload, reply.payload);
    h.send({ type: "ACK", request_id: "d1", message_id: reply.message_id });
    await new Promise((r) => setTimeout(r, 50));
    h.send(req("d1", "count_me", { delayMs: 200 }));
    const afterAck = await h.waitFor(of("REPLY", "d1"));
    assert.deepEqual(afterAck.payload, reply.payload, "after the ACK the stored reply, never null");
    assert.equal(runs - before, 1);
  } finally {
    await h.close();
  }
});

Deno.test("listener: malformed frames get clear NACKs", async () => {
  const h = await harness();
  try {
    const cases: [Frame | string, string, RegExp][] = [
      ["not json", "DEADBEEF", /not valid JSON/],
      ["[1,2]", "DEADBEEF", /JSON object/],
      [{ type: "REQUEST" }, "DEADBEEF", /no request_id/],
      [{ request_id: "x1" }, "x1", /no type/],
      [{ request_id: "x2", type: "BOGUS" }, "x2", /not one of/],
      [{ request_id: "x3", type: "REQUEST" }, "x3", /no payload/],
      [{ request_id: "x4", type: "REQUEST", payload: {} }, "x4", /no command/],
      [
        { request_id: "x5", type: "REQUEST", payload: { command: "nope", arguments: {} } },
        "x5",
        /not known/,
      ],
      [
        { request_id: "x6", type: "REQUEST", payload: { command: "heartbeat", arguments: [1] } },
        "x6",
        /must be a JSON object/,
      ],
      [{ request_id: "x7", type: "ACK" }, "x7", /unknown ID/],
      [
        {
          request_id: "x10",
          type: "REQUEST",
          payload: { command: "c".repeat(5000), arguments: {} },
        },
        "x10",
        /longer than 200/,
      ],
      [
        { request_id: "x11", type: "T".repeat(5000) },
        "x11",
        /^the message type "T{59} is not one of/,
      ],
      [{ request_id: "x8", type: "STATUS" }, "x8", /unknown ID/],
    ];
    for (const [frame, id, re] of cases) {
      h.send(frame);
      const nack = await h.waitFor((f) => f.type === "NACK" && f.request_id === id);
      assert.match(String(nack.error_message), re, JSON.stringify(frame));
      assert.equal(h.journal.get(id), undefined, "a NACKed request writes no journal row");
    }
    h.send({ request_id: "x9", type: "REQUEST", payload: { command: "heartbeat" } });
    const reply = await h.waitFor(of("REPLY", "x9"));
    assert.equal(
      (reply.payload as Frame).return_code,
      0,
      "a missing arguments object counts as {}",
    );
  } finally {
    await h.close();
  }
});

Deno.test("listener: a bad argument gives ACK + REPLY return_code 1 with the reason", async () => {
  const h = await harness();
  try {
    h.send(req("b1", "count_me", { delayMs: "soon", extra: 1 }));
    await h.waitFor(of("ACK", "b1"));
    const reply = await h.waitFor(of("REPLY", "b1"));
    const payload = reply.payload as Frame;
    assert.equal(payload.return_code, 1);
    assert.match(decodeURIComponent(String(payload.error_message)), /delayMs.*whole number/);
  } finally {
    await h.close();
  }
});

Deno.test("listener: STATUS reports the state and the reply", async () => {
  const h = await harness();
  try {
    h.send(req("s1", "count_me", { delayMs: 150 }));
    await h.waitFor(of("ACK", "s1"));
    h.send({ type: "STATUS", request_id: "s1" });
    const running = await h.waitFor(of("STATUS", "s1"));
    assert.equal(running.state, "ACKED");
    assert.equal(running.reply, null);
    const reply = await h.waitFor(of("REPLY", "s1"));
    h.send({ type: "STATUS", request_id: "s1" });
    const done = await h.waitFor(of("STATUS", "s1"));
    assert.equal(done.state, "REPLY");
    assert.deepEqual(done.reply, reply.payload);
  } finally {
    await h.close();
  }
});

Deno.test("listener: CANCEL stops a running command and a queued one", async () => {
  const h = await harness({ workers: { count: "1" } });
  try {
    h.send(req("c1", "count_me", { delayMs: 5000 }));
    h.send(req("c2", "count_me", { delayMs: 5000 }));
    await h.waitFor(of("ACK", "c1"));
    await h.waitFor(of("ACK", "c2"));
    const t0 = Date.now();
    h.send({ type: "CANCEL", request_id: "c2" });
    h.send({ type: "CANCEL", request_id: "c1" });
    for (const id of ["c1", "c2"]) {
      const reply = await h.waitFor(of("REPLY", id));
      assert.equal((reply.payload as Frame).return_code, 1);
      assert.match(String((reply.payload as Frame).error_message), /cancelled/);
    }
    assert.ok(Date.now() - t0 < 2000);
    h.send({ type: "CANCEL", request_id: "c1" });
    h.send({ type: "CANCEL", request_id: "never-seen" });
    await h.waitFor(of("NACK", "never-seen"));
    assert.equal(
      h.frames.some(of("NACK", "c1")),
      false,
      "cancelling a finished request is harmless",
    );
  } finally {
    await h.close();
  }
});

Deno.test("listener: a CANCEL that arrives while the request is being journalled still gets a reply", async () => {
  const h = await harness();
  try {
    const before = runs;
    // Both frames are handled before the journal commits the request's row.
    h.send(req("cw1", "count_me", { delayMs: 5000 }));
    h.send({ type: "CANCEL", request_id: "cw1" });
    await h.waitFor(of("ACK", "cw1"));
    const reply = await h.waitFor(of("REPLY", "cw1"));
    assert.equal((reply.payload as Frame).return_code, 1);
    assert.match(String((reply.payload as Frame).error_message), /cancelled/);
    assert.equal(runs - before, 0, "the command never started");
    assert.equal(h.listener.outstanding.running, 0);
  } finally {
    await h.close();
  }
});

Deno.test("listener: max_at_once NACKs the extra request without journalling it", async () => {
  const h = await harness({ messaging: { max_at_once: "1", retransmission_timeout: "0.1" } });
  try {
    h.send(req("q1", "count_me", { delayMs: 200 }));
    await h.waitFor(of("ACK", "q1"));
    h.send(req("q2", "count_me"));
    const nack = await h.waitFor(of("NACK", "q2"));
    assert.match(String(nack.error_message), /only handle 1 commands at once/);
    assert.equal(h.journal.get("q2"), undefined);
  } finally {
    await h.close();
  }
});

Deno.test("listener: a long runner replies with a job description and can be polled", async () => {
  const h = await harness();
  try {
    h.send(req("l1", "long_job", { n: 7 }));
    await h.waitFor(of("ACK", "l1"));
    const first = await h.waitFor(of("REPLY", "l1"));
    const payload = first.payload as Frame;
    assert.equal(payload.reply_type, "job_description");
    const job = payload.reply_object as Frame;
    assert.equal(job.description, "long_job");
    assert.equal(job.customer_id, 50);
    assert.ok(Number.isInteger(job.job_id));
    let status = "";
    for (let i = 0; i < 50 && status !== "COMPLETE"; i++) {
      h.send(req(`poll-${i}`, "get_job_description", { jobId: job.job_id }));
      const r = await h.waitFor(of("REPLY", `poll-${i}`));
      status = ((r.payload as Frame).reply_object as Frame).job_status as string;
      if (status === "COMPLETE") {
        const done = (r.payload as Frame).reply_object as Frame;
        assert.deepEqual((done.command_reply as Frame).reply_object, "n=7");
        assert.ok(Number(done.end_date) >= Number(done.start_date));
      }
      await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(status, "COMPLETE");
    h.send(req("poll-x", "get_job_description", { jobId: 9999 }));
    const none = await h.waitFor(of("REPLY", "poll-x"));
    assert.equal((none.payload as Frame).message, "no such job id 9999");
    h.send(req("l2", "long_job", {}));
    const bad = await h.waitFor(of("REPLY", "l2"));
    assert.equal((bad.payload as Frame).return_code, 1, "validation fails before a job is created");
  } finally {
    await h.close();
  }
});

Deno.test("listener: replies made while disconnected are sent as soon as the connection opens", async () => {
  const h = await harness({ messaging: { retransmission_timeout: "60" } });
  try {
    h.send(req("o1", "count_me", { delayMs: 50 }));
    await h.waitFor(of("ACK", "o1"));
    h.open = false;
    await new Promise((r) => setTimeout(r, 150));
    h.open = true;
    h.listener.onOpen();
    await h.waitFor(of("REPLY", "o1"), 200);
  } finally {
    await h.close();
  }
});

Deno.test("listener: the shutdown grace period also stops a running long job", async () => {
  const h = await harness();
  try {
    h.send(req("j1", "wait_for_abort"));
    const first = await h.waitFor(of("REPLY", "j1"));
    const jobId = ((first.payload as Frame).reply_object as Frame).job_id as number;
    await waitFor(() => h.listener.jobs.describe(jobId)?.job_status === "RUNNING", 2000, "RUNNING");
    const t0 = Date.now();
    await h.listener.stop(50);
    assert.ok(Date.now() - t0 < 2000, "stop() did not wait for the job to end by itself");
    const job = h.listener.jobs.describe(jobId)!;
    assert.equal(job.job_status, "ERROR");
    assert.equal(job.command_reply?.message, "stopped");
  } finally {
    await h.close();
  }
});
