/**
 * Tests of lib/connection.ts against real websocket servers on 127.0.0.1:
 * handshake, every handshake reply code, backoff, reconnects, timeouts, dead
 * peers, oversize frames, TLS and the wire log.
 */
import assert from "node:assert/strict";
import { delay, waitFor, withTimeout } from "../helpers/wait.ts";
import { makeCerts } from "../helpers/tls_certs.ts";
import {
  type RawServer,
  type ServerConn,
  serverFrame,
  serveWebSocket,
  startRawServer,
} from "../helpers/ws_test_server.ts";
import { configure, type LogRecord, reset } from "../../lib/logging/logger.ts";
import { type AgentConfig, configFromValues } from "../../lib/config/agent_conf.ts";
import { Connection } from "../../lib/transport/connection.ts";

// ---------------------------------------------------------------- log capture

const records: LogRecord[] = [];
await configure({
  sinks: { memory: (r: LogRecord) => void records.push(r) },
  loggers: [
    { category: ["DCM_AGENT_WIRE"], lowestLevel: "debug", sinks: ["memory"] },
    { category: ["dcm"], lowestLevel: "debug", sinks: ["memory"] },
  ],
});
globalThis.addEventListener("unload", () => void reset());

function logText(r: LogRecord): string {
  return r.message.map((p) => typeof p === "string" ? p : JSON.stringify(p)).join("");
}

// ---------------------------------------------------------------- test manager

/** Runs `fn` once the agent's handshake arrived (never, if the agent gave up first). */
function afterHandshake(conn: ServerConn, fn: () => void): void {
  conn.frame(0).then(fn, () => {});
}

function reply(conn: ServerConn, doc: unknown): void {
  conn.socket.send(typeof doc === "string" ? doc : JSON.stringify(doc));
}

const ACCEPT = { return_code: 200, handshake: { agentID: "agent-1", customerId: 7 } };

// ---------------------------------------------------------------- test agent

/** A Connection plus a record of its callbacks. */
interface TestAgent {
  connection: Connection;
  events: string[];
  messages: string[];
  handshakes: Record<string, unknown>[];
  disconnects: { reason: string; at: number }[];
  openedAt: number[];
  token: string;
}

function config(url: string, values: Record<string, string> = {}): AgentConfig {
  return configFromValues({
    connection: {
      agentmanager_url: url,
      backoff: "20",
      max_backoff: "200",
      heartbeat_frequency: "30",
      handshake_timeout: "5",
      ...values,
    },
  });
}

function startAgent(cfg: AgentConfig): TestAgent {
  const agent: TestAgent = {
    connection: undefined as unknown as Connection,
    events: [],
    messages: [],
    handshakes: [],
    disconnects: [],
    openedAt: [],
    token: "first-token",
  };
  let attempt = 0;
  agent.connection = new Connection({
    config: cfg,
    buildHandshake: () => {
      const doc = { attempt: ++attempt, token: agent.token, agent_id: null };
      agent.handshakes.push(doc);
      return Promise.resolve(doc);
    },
    onAccepted: (h) => void agent.events.push(`accepted ${h.agentID}`),
    onTokenConflict: () => {
      agent.events.push("conflict");
      agent.token = "second-token";
    },
    onOpen: () => {
      agent.events.push("open");
      agent.openedAt.push(performance.now());
    },
    onMessage: (text) => {
      agent.events.push(`message ${text}`);
      agent.messages.push(text);
    },
    onDisconnect: (reason) => {
      agent.events.push("disconnect");
      agent.disconnects.push({ reason, at: performance.now() });
    },
  });
  agent.connection.start();
  return agent;
}

// ---------------------------------------------------------------- utilities

async function cleanup(agent: TestAgent, ...servers: { close(): Promise<void> }[]): Promise<void> {
  await agent.connection.stop();
  for (const s of servers) await s.close();
}

// ---------------------------------------------------------------- tests

Deno.test("connection: the handshake is the first frame, with subprotocol dcm and no auth headers", async () => {
  const manager = serveWebSocket({
    onOpen: (conn) => {
      // The reply and two frames arrive together: all three must be handled in order.
      afterHandshake(conn, () => {
        reply(conn, ACCEPT);
        reply(conn, { type: "REQUEST", n: 1 });
        reply(conn, { type: "REQUEST", n: 2 });
      });
    },
  });
  const agent = startAgent(config(manager.url));
  const conn = await manager.conn(0);
  assert.deepEqual(JSON.parse(await conn.frame(0)), agent.handshakes[0]);
  assert.equal(conn.headers.get("sec-websocket-protocol"), "dcm");
  assert.equal(conn.headers.get("authorization"), null);
  assert.equal(conn.headers.get("cookie"), null);
  await waitFor(() => agent.messages.length === 2);
  assert.deepEqual(agent.events, [
    "accepted agent-1",
    "open",
    'message {"type":"REQUEST","n":1}',
    'message {"type":"REQUEST","n":2}',
  ]);
  assert.equal(agent.connection.isOpen(), true);
  assert.equal(agent.connection.state(), "OPEN");
  assert.equal(agent.connection.send({ type: "ACK", request_id: "r1" }), true);
  assert.deepEqual(JSON.parse(await conn.frame(1)), { type: "ACK", request_id: "r1" });
  await agent.connection.stop();
  assert.equal(agent.connection.state(), "DONE");
  assert.equal(agent.connection.send({ type: "ACK" }), false);
  assert.deepEqual(agent.events.slice(4), ["disconnect"]);
  assert.equal(agent.disconnects[0].reason, "the agent is shutting down");
  assert.equal((await withTimeout(conn.closed, 2000))?.code, 1000);
  await manager.close();
});

Deno.test("connection: send() refuses while not OPEN", async () => {
  const manager = serveWebSocket();
  const agent = startAgent(config(manager.url));
  await (await manager.conn(0)).frame(0);
  assert.equal(agent.connection.state(), "HANDSHAKING");
  assert.equal(agent.connection.send({ type: "ACK" }), false);
  await cleanup(agent, manager);
});

Deno.test("connection: 401 replies back off, doubling from 2 x backoff with bounded jitter", async () => {
  const repliedAt: number[] = [];
  const manager = serveWebSocket({
    onOpen: (conn) =>
      afterHandshake(conn, () => {
        reply(conn, { return_code: 401 });
        repliedAt.push(performance.now());
      }),
  });
  const agent = startAgent(config(manager.url, { backoff: "100", max_backoff: "10000" }));
  await manager.conn(3, 5000);
  const gaps = [1, 2, 3].map((i) => manager.conns[i].openedAt - repliedAt[i - 1]);
  // Jitter draws each wait from [0.8 d, d] with d = 200, 400, 800 ms.
  for (const [i, d] of [200, 400, 800].entries()) {
    assert.ok(gaps[i] >= 0.8 * d - 5, `gap ${i} = ${gaps[i]} ms is below 0.8 x ${d}`);
    assert.ok(gaps[i] <= d + 150, `gap ${i} = ${gaps[i]} ms is above ${d} ms`);
  }
  // The handshake is rebuilt for every attempt.
  assert.deepEqual(agent.handshakes.slice(0, 4).map((h) => h.attempt), [1, 2, 3, 4]);
  assert.ok(!agent.events.includes("open"));
  await cleanup(agent, manager);
});

Deno.test("connection: 409 makes the caller replace the token before the next handshake", async () => {
  const manager = serveWebSocket({
    onOpen: (conn, i) =>
      afterHandshake(conn, () => reply(conn, i === 0 ? { return_code: 409 } : ACCEPT)),
  });
  const agent = startAgent(config(manager.url));
  await waitFor(() => agent.connection.isOpen());
  assert.equal(JSON.parse(manager.conns[0].frames[0]).token, "first-token");
  assert.equal(JSON.parse(manager.conns[1].frames[0]).token, "second-token");
  assert.deepEqual(agent.events, ["conflict", "accepted agent-1", "open"]);
  await cleanup(agent, manager);
});

Deno.test("connection: 503 waits FORCE_BACKOFF seconds (a lower bound over the backoff)", async () => {
  let repliedAt = 0;
  const manager = serveWebSocket({
    onOpen: (conn, i) =>
      afterHandshake(conn, () => {
        reply(conn, i === 0 ? { return_code: 503, FORCE_BACKOFF: 0.6 } : ACCEPT);
        repliedAt = performance.now();
      }),
  });
  const agent = startAgent(config(manager.url, { backoff: "10" }));
  const second = await manager.conn(1, 3000);
  const gap = second.openedAt - repliedAt;
  assert.ok(gap >= 595, `reconnected after ${gap} ms, before FORCE_BACKOFF 0.6 s`);
  assert.ok(gap < 1200, `reconnected after ${gap} ms`);
  await cleanup(agent, manager);
});

Deno.test("connection: 503 without FORCE_BACKOFF waits the default 60 s", async () => {
  const manager = serveWebSocket({
    onOpen: (conn) => afterHandshake(conn, () => reply(conn, { return_code: 503 })),
  });
  const agent = startAgent(config(manager.url, { backoff: "10" }));
  await manager.conn(0);
  await delay(700);
  assert.equal(manager.conns.length, 1);
  const waiting = records.find((r) => logText(r).includes("wait 60 s"));
  assert.ok(waiting, "the 503 was not logged with its 60 s wait");
  await cleanup(agent, manager);
});

Deno.test("connection: malformed and unexpected handshake replies back off and never open", async () => {
  const replies = [
    "not json",
    JSON.stringify({ return_code: 500 }),
    JSON.stringify({ return_code: 200 }),
  ];
  const manager = serveWebSocket({
    onOpen: (conn, i) => afterHandshake(conn, () => reply(conn, replies[i] ?? ACCEPT)),
  });
  const from = records.length;
  const agent = startAgent(config(manager.url));
  await waitFor(() => agent.connection.isOpen());
  assert.equal(manager.conns.length, 4);
  assert.deepEqual(agent.events, ["accepted agent-1", "open"]);
  const refusals = records.slice(from).map(logText).filter((l) =>
    l.startsWith(`the manager at ${manager.url} did not accept the handshake: `)
  );
  assert.equal(refusals.length, 3);
  assert.match(refusals[0], /not valid JSON/);
  assert.match(refusals[1], /unexpected return_code 500/);
  assert.match(refusals[2], /accepted the handshake but sent no handshake object/);
  await cleanup(agent, manager);
});

Deno.test("connection: an established session that drops reconnects at once", async () => {
  const manager = serveWebSocket({
    onOpen: (conn, i) =>
      afterHandshake(conn, () => {
        reply(conn, ACCEPT);
        if (i === 0) setTimeout(() => conn.socket.close(1000, "bye"), 50);
      }),
  });
  // A backoff of 5 s would make any backoff-governed reconnect take at least 8 s.
  const agent = startAgent(config(manager.url, { backoff: "5000", max_backoff: "60000" }));
  await waitFor(() => agent.disconnects.length === 1);
  const second = await manager.conn(1, 1000);
  assert.ok(second.openedAt - agent.disconnects[0].at < 500);
  await waitFor(() => agent.openedAt.length === 2);
  assert.deepEqual(agent.events, [
    "accepted agent-1",
    "open",
    "disconnect",
    "accepted agent-1",
    "open",
  ]);
  await cleanup(agent, manager);
});

Deno.test("connection: a handshake reply that does not come within handshake_timeout fails the attempt", async () => {
  const manager = serveWebSocket();
  const agent = startAgent(config(manager.url, { handshake_timeout: "0.3", backoff: "10" }));
  const first = await manager.conn(0);
  await first.frame(0);
  const second = await manager.conn(1, 2000);
  const waited = second.openedAt - first.openedAt;
  assert.ok(waited >= 290 && waited < 1000, `second attempt after ${waited} ms`);
  assert.equal(typeof (await withTimeout(first.closed, 2000))?.code, "number");
  assert.ok(
    records.some((r) => logText(r).includes("did not answer the handshake within 0.3 s")),
    "the handshake timeout was not logged",
  );
  await cleanup(agent, manager);
});

/** A raw TCP server that accepts but never answers the HTTP upgrade. */
function startSilentServer(): { url: string; accepted: Deno.Conn[]; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const accepted: Deno.Conn[] = [];
  (async () => {
    for await (const c of listener) accepted.push(c);
  })().catch(() => {});
  return {
    url: `ws://127.0.0.1:${listener.addr.port}/`,
    accepted,
    close() {
      listener.close();
      for (const c of accepted) c.close();
    },
  };
}

Deno.test("connection: the connect and upgrade are bounded by handshake_timeout", async () => {
  const server = startSilentServer();
  const agent = startAgent(config(server.url, { handshake_timeout: "0.3", backoff: "10" }));
  await waitFor(() => server.accepted.length === 1);
  const start = performance.now();
  await waitFor(() => server.accepted.length === 2, 3000, "a second attempt");
  const waited = performance.now() - start;
  assert.ok(waited >= 250 && waited < 1500, `second attempt after ${waited} ms`);
  const timedOut = records.find((r) => logText(r).includes("no websocket connection within 0.3 s"));
  assert.ok(timedOut, "the upgrade timeout was not logged");
  await agent.connection.stop();
  server.close();
});

/**
 * A "manager" that completes the upgrade, reads the handshake, accepts it,
 * and then freezes: it neither reads nor answers pings. Further attempts are
 * refused, so the agent's reconnects fail quickly.
 */
function startFrozenManager(): RawServer {
  return startRawServer(async (peer) => {
    await peer.frame();
    await peer.write(serverFrame(0x1, JSON.stringify(ACCEPT)));
    // Frozen until the test closes the connection.
    await new Promise(() => {});
  });
}

Deno.test("connection: a frozen manager is detected within 2 x heartbeat_frequency + 5 s", async () => {
  const manager = startFrozenManager();
  const agent = startAgent(config(manager.url, { heartbeat_frequency: "1", backoff: "50" }));
  await waitFor(() => agent.openedAt.length === 1, 3000, "OPEN");
  await waitFor(() => agent.disconnects.length === 1, 8000, "the dead connection to be noticed");
  const took = agent.disconnects[0].at - agent.openedAt[0];
  assert.ok(took <= 2 * 1000 + 5000, `detected after ${took} ms`);
  assert.equal(
    agent.disconnects[0].reason,
    "the connection is dead: no answer to a ping within 1 s",
  );
  await agent.connection.stop();
  manager.close();
});

Deno.test("connection: a send buffer that stops draining means dead", async () => {
  const manager = startFrozenManager();
  const agent = startAgent(config(manager.url, { heartbeat_frequency: "1", backoff: "50" }));
  await waitFor(() => agent.openedAt.length === 1, 3000, "OPEN");
  // More than the kernel buffers can take (the rest stays queued in the agent),
  // but not above the send cap, which would drop the connection at once.
  const filler = "x".repeat(4 << 20);
  for (let i = 0; i < 4; i++) agent.connection.send({ type: "LOG", message: filler });
  await waitFor(() => agent.disconnects.length === 1, 8000, "the dead connection to be noticed");
  assert.match(agent.disconnects[0].reason, /send buffer stopped draining/);
  await agent.connection.stop();
  manager.close();
});

Deno.test("connection: a send queue above the cap drops the session at once", async () => {
  const manager = startFrozenManager();
  // max_message_size 1024 leaves the 4 MiB floor as the cap.
  const agent = startAgent(config(manager.url, { max_message_size: "1024" }));
  await waitFor(() => agent.openedAt.length === 1, 3000, "OPEN");
  const mib = "x".repeat(1 << 20);
  let sent = true;
  // Yielding between frames lets the kernel buffers fill first, as with a real peer.
  for (let i = 0; i < 64 && sent; i++) {
    sent = agent.connection.send({ type: "LOG", message: mib });
    if (sent) await delay(5);
  }
  assert.equal(sent, false, "64 MiB were queued for a peer that reads nothing");
  assert.equal(agent.disconnects.length, 1);
  assert.match(
    agent.disconnects[0].reason,
    /^the connection is dead: the manager stopped reading \(\d+ bytes waiting\)$/,
  );
  assert.equal(agent.connection.isOpen(), false);
  await agent.connection.stop();
  manager.close();
});

Deno.test("connection: pongs keep an idle session alive past two heartbeats", async () => {
  const manager = serveWebSocket({
    onOpen: (conn) => afterHandshake(conn, () => reply(conn, ACCEPT)),
  });
  const agent = startAgent(config(manager.url, { heartbeat_frequency: "1" }));
  await waitFor(() => agent.connection.isOpen());
  // Nothing but pings and pongs crosses the link; a missed pong would drop it at 2 s.
  await delay(3300);
  assert.deepEqual(agent.disconnects, []);
  assert.equal(agent.connection.isOpen(), true);
  assert.equal(manager.conns.length, 1);
  await cleanup(agent, manager);
});

Deno.test("connection: a frame above max_message_size is refused and the agent reconnects", async () => {
  const manager = serveWebSocket({
    onOpen: (conn, i) =>
      afterHandshake(conn, () => {
        reply(conn, ACCEPT);
        if (i === 0) {
          reply(conn, { small: true });
          reply(conn, { big: "y".repeat(4096) });
        }
      }),
  });
  const agent = startAgent(config(manager.url, { max_message_size: "1024" }));
  await manager.conn(1, 3000);
  assert.equal((await withTimeout(manager.conns[0].closed, 2000))?.code, 1009);
  assert.deepEqual(agent.messages, ['{"small":true}']);
  assert.match(agent.disconnects[0].reason, /larger than \[connection\] max_message_size/);
  await cleanup(agent, manager);
});

Deno.test("connection: a manager that does not confirm the subprotocol is still used", async () => {
  const manager = serveWebSocket({
    protocol: null,
    onOpen: (conn) => afterHandshake(conn, () => reply(conn, ACCEPT)),
  });
  const from = records.length;
  const agent = startAgent(config(manager.url));
  await waitFor(() => agent.connection.isOpen());
  assert.equal(manager.conns.length, 1);
  assert.equal(manager.conns[0].headers.get("sec-websocket-protocol"), "dcm");
  const warnings = records.slice(from).filter((r) =>
    logText(r).includes("did not confirm the websocket subprotocol")
  );
  assert.equal(warnings.length, 1);
  await cleanup(agent, manager);
});

Deno.test("connection: updateConfig keeps the session for timing changes and moves for a new URL", async () => {
  const accept = (conn: ServerConn) => afterHandshake(conn, () => reply(conn, ACCEPT));
  const first = serveWebSocket({ onOpen: accept });
  const second = serveWebSocket({ onOpen: accept });
  const agent = startAgent(config(first.url));
  await waitFor(() => agent.connection.isOpen());
  agent.connection.updateConfig(config(first.url, { heartbeat_frequency: "5", backoff: "40" }));
  await delay(100);
  assert.equal(first.conns.length, 1);
  assert.equal(first.conns[0].socket.readyState, WebSocket.OPEN);
  agent.connection.updateConfig(config(second.url));
  await second.conn(0, 2000);
  await waitFor(() => agent.openedAt.length === 2);
  assert.equal((await withTimeout(first.conns[0].closed, 2000))?.code, 1000);
  assert.deepEqual(agent.events, [
    "accepted agent-1",
    "open",
    "disconnect",
    "accepted agent-1",
    "open",
  ]);
  await cleanup(agent, first, second);
});

Deno.test("connection: updateConfig applies a new max_message_size to the open session", async () => {
  const manager = serveWebSocket({
    onOpen: (conn) => afterHandshake(conn, () => reply(conn, ACCEPT)),
  });
  const agent = startAgent(config(manager.url));
  await waitFor(() => agent.connection.isOpen());
  const big = JSON.stringify({ type: "ACK", request_id: "r1", pad: "x".repeat(4096) });
  reply(manager.conns[0], big);
  await waitFor(() => agent.messages.length === 1);
  agent.connection.updateConfig(config(manager.url, { max_message_size: "2048" }));
  reply(manager.conns[0], big);
  assert.equal((await withTimeout(manager.conns[0].closed, 2000))?.code, 1009);
  assert.equal(agent.messages.length, 1);
  await cleanup(agent, manager);
});

Deno.test("connection: the wire log shows frames both ways and never the token", async () => {
  const manager = serveWebSocket({
    onOpen: (conn) =>
      afterHandshake(conn, () => {
        reply(conn, {
          ...ACCEPT,
          handshake: { ...ACCEPT.handshake, encryptedEphemeralFsKey: "S3CRET" },
        });
        reply(conn, { type: "REQUEST", request_id: "r-42", payload: { b64script: "c2VjcmV0" } });
      }),
  });
  const agent = startAgent(config(manager.url));
  await waitFor(() => agent.messages.length === 1);
  const wire = records.filter((r) => r.category[0] === "DCM_AGENT_WIRE").map(logText);
  const outgoing = wire.find((l) => l.startsWith("OUTGOING ") && l.includes('"attempt":1'));
  assert.ok(outgoing, "the handshake was not logged");
  assert.ok(outgoing.includes('"token":"<redacted 11 bytes>"'));
  assert.ok(wire.some((l) => l.startsWith("INCOMING ") && l.includes('"request_id":"r-42"')));
  const all = records.map(logText).join("\n");
  for (const secret of ["first-token", "S3CRET", "c2VjcmV0"]) {
    assert.ok(!all.includes(secret), secret);
  }
  await cleanup(agent, manager);
});

Deno.test("connection: a refused connection is logged in plain words and retried", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `ws://127.0.0.1:${listener.addr.port}/agentManager`;
  listener.close();
  const agent = startAgent(config(url, { backoff: "10" }));
  // A second line shows the attempt was retried.
  await waitFor(() =>
    records.map(logText).filter((l) =>
      l.startsWith(`cannot reach the manager at ${url}: connection refused; retrying in`)
    ).length >= 2
  );
  await agent.connection.stop();
});

// ---------------------------------------------------------------- TLS

/** Connects to a TLS manager; returns whether the session opened, and the log lines of the attempt. */
async function tryTls(
  tls: { cert: string; key: string },
  values: Record<string, string>,
): Promise<{ opened: boolean; log: string }> {
  const manager = serveWebSocket({
    tls,
    onOpen: (conn) => afterHandshake(conn, () => reply(conn, ACCEPT)),
  });
  const from = records.length;
  const agent = startAgent(config(manager.url, { backoff: "50", ...values }));
  const failed = () => records.slice(from).some((r) => logText(r).startsWith("cannot reach"));
  await waitFor(() => agent.connection.isOpen() || failed(), 3000, "the TLS attempt to end");
  const opened = agent.connection.isOpen();
  await cleanup(agent, manager);
  return { opened, log: records.slice(from).map(logText).join("\n") };
}

Deno.test("connection: wss succeeds with ca_cert and fails without it", async () => {
  const c = await makeCerts();
  assert.equal((await tryTls(c.good, { ca_cert: c.caFile })).opened, true);
  const without = await tryTls(c.good, {});
  assert.equal(without.opened, false);
  assert.match(without.log, /TLS certificate is not trusted.*set \[connection\] ca_cert/);
});

Deno.test("connection: allow_unknown_certs accepts a certificate from an unknown CA", async () => {
  const c = await makeCerts();
  assert.equal((await tryTls(c.good, { allow_unknown_certs: "True" })).opened, true);
});

Deno.test("connection: a host-name mismatch fails unless check_hostname=False", async () => {
  const c = await makeCerts();
  const checked = await tryTls(c.wrongName, { ca_cert: c.caFile });
  assert.equal(checked.opened, false);
  assert.match(checked.log, /does not match its host name.*check_hostname=False/);
  assert.equal(
    (await tryTls(c.wrongName, { ca_cert: c.caFile, check_hostname: "False" })).opened,
    true,
  );
  // Skipping the name check still verifies the chain.
  const untrusted = await tryTls(c.wrongName, { check_hostname: "False" });
  assert.equal(untrusted.opened, false);
  assert.match(untrusted.log, /TLS certificate is not trusted/);
});

Deno.test("connection: a wss:// URL to a manager without TLS asks whether it is a ws:// URL", async () => {
  // Deno's TLS (rustls) and, with allow_unknown_certs, node:tls (OpenSSL) word it differently.
  for (const values of [{}, { allow_unknown_certs: "True" }] as Record<string, string>[]) {
    const manager = serveWebSocket({
      onOpen: (conn) => afterHandshake(conn, () => reply(conn, ACCEPT)),
    });
    const from = records.length;
    const url = manager.url.replace(/^ws:/, "wss:");
    const agent = startAgent(config(url, { backoff: "50", ...values }));
    const failed = () => records.slice(from).some((r) => logText(r).startsWith("cannot reach"));
    await waitFor(failed, 3000, "the TLS attempt to fail");
    await cleanup(agent, manager);
    const log = records.slice(from).map(logText).join("\n");
    assert.match(
      log,
      /cannot reach the manager at wss:.*: the server does not speak TLS \(.*\); is this a ws:\/\/ URL\?/,
      log,
    );
  }
});

Deno.test("connection: a 401 says to check the token and the agent's registration", async () => {
  const manager = serveWebSocket({
    onOpen: (conn) => afterHandshake(conn, () => reply(conn, { return_code: 401 })),
  });
  const from = records.length;
  const agent = startAgent(config(manager.url, { backoff: "50" }));
  const refused = () => records.slice(from).some((r) => logText(r).includes("401"));
  await waitFor(refused, 3000, "the 401");
  await cleanup(agent, manager);
  const log = records.slice(from).map(logText).join("\n");
  assert.match(
    log,
    /refused the handshake \(401 unauthorised\): .*token; check that the manager still has this agent registered and that .*\/secure\/token is the token/,
    log,
  );
});
