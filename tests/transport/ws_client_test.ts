/**
 * Tests of lib/ws_client.ts against real servers on 127.0.0.1: Deno.serve +
 * Deno.upgradeWebSocket for well-behaved peers, and raw TCP servers for
 * handshake and framing faults.
 */
import assert from "node:assert/strict";
import { delay, waitFor, withTimeout } from "../helpers/wait.ts";
import { makeCerts } from "../helpers/tls_certs.ts";
import {
  type ClientFrame,
  closeFrom,
  ok101,
  type RawServer,
  serverFrame,
  serveWebSocket,
  startRawServer,
  type WsServer,
  type WsServerOptions,
} from "../helpers/ws_test_server.ts";
import {
  connectWebSocket,
  type WsClient,
  type WsClientOptions,
  WsError,
} from "../../lib/transport/ws_client.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------- client side

/** Everything the handlers saw. */
interface Events {
  messages: string[];
  pings: Uint8Array[];
  pongs: Uint8Array[];
  errors: WsError[];
  close: { code: number; reason: string } | null;
}

async function connect(
  url: string,
  options: Partial<WsClientOptions> = {},
): Promise<{ client: WsClient; events: Events }> {
  const events: Events = { messages: [], pings: [], pongs: [], errors: [], close: null };
  const client = await connectWebSocket(url, {
    protocol: "dcm",
    timeoutMs: 2000,
    maxPayload: 16 << 20,
    onMessage: (text) => void events.messages.push(text),
    onPing: (data) => void events.pings.push(data),
    onPong: (data) => void events.pongs.push(data),
    onError: (error) => void events.errors.push(error),
    onClose: (code, reason) => events.close = { code, reason },
    ...options,
  });
  return { client, events };
}

/** The WsError a connect attempt rejects with. */
async function connectError(url: string, options: Partial<WsClientOptions> = {}): Promise<WsError> {
  try {
    const { client } = await connect(url, options);
    client.terminate();
    await client.closed;
  } catch (err) {
    assert.ok(err instanceof WsError, `not a WsError: ${err}`);
    return err;
  }
  throw new Error("the connection was expected to fail");
}

// ---------------------------------------------------------------- servers

/** A websocket server that echoes text messages. */
function startEchoServer(options: Omit<WsServerOptions, "onOpen"> = {}): WsServer {
  return serveWebSocket({
    ...options,
    onOpen: ({ socket }) => socket.addEventListener("message", (e) => socket.send(e.data)),
  });
}

// ---------------------------------------------------------------- messages

Deno.test("ws_client: echoes text, unicode and a 1 MB message in order", async () => {
  const server = startEchoServer();
  const { client, events } = await connect(server.url);
  assert.equal(client.protocol, "dcm");
  assert.equal(client.readyState, "open");
  const unicode = "héllo wörld ✓ 🚀 日本語 \u{1F600}";
  const large = "abcdefghij€🚀".repeat(80_000); // about 1.2 MB of UTF-8
  const sent = ["hello", unicode, large, ""];
  for (const text of sent) client.send(text);
  await waitFor(() => events.messages.length === sent.length);
  // Compared one by one: a failed deepEqual would print megabytes.
  for (const [i, text] of sent.entries()) {
    assert.ok(
      events.messages[i] === text,
      `message ${i} differs (${events.messages[i].length} chars)`,
    );
  }
  await waitFor(() => client.bufferedAmount === 0);
  await client.close();
  assert.deepEqual(events.close, { code: 1000, reason: "" });
  assert.deepEqual(events.errors, []);
  await server.close();
});

Deno.test("ws_client: the upgrade request carries exactly the RFC 6455 headers", async () => {
  let request = "";
  const server = startRawServer(async (peer) => {
    request = peer.request;
    await closeFrom(peer);
  });
  const { client } = await connect(server.url);
  await client.close();
  await server.done;
  const [line, ...rest] = request.split("\r\n");
  assert.equal(line, "GET /agentManager?x=1 HTTP/1.1");
  const headers = new Map(rest.map((l) => {
    const i = l.indexOf(":");
    return [l.slice(0, i).toLowerCase(), l.slice(i + 1).trim()];
  }));
  assert.deepEqual([...headers.keys()].sort(), [
    "connection",
    "host",
    "sec-websocket-key",
    "sec-websocket-protocol",
    "sec-websocket-version",
    "upgrade",
  ]);
  assert.equal(headers.get("host"), new URL(server.url).host);
  assert.equal(headers.get("upgrade"), "websocket");
  assert.equal(headers.get("connection"), "Upgrade");
  assert.equal(headers.get("sec-websocket-version"), "13");
  assert.equal(headers.get("sec-websocket-protocol"), "dcm");
  assert.equal(atob(headers.get("sec-websocket-key")!).length, 16);
});

Deno.test("ws_client: frames that arrive with the 101 response are delivered after connect resolves", async () => {
  const server = startRawServer(closeFrom, {
    withResponse: new Uint8Array([
      ...serverFrame(0x1, "first"),
      ...serverFrame(0x1, "second"),
    ]),
  });
  const { client, events } = await connect(server.url);
  // Nothing may be delivered before the caller holds the client.
  assert.deepEqual(events.messages, []);
  await waitFor(() => events.messages.length === 2);
  assert.deepEqual(events.messages, ["first", "second"]);
  await client.close();
  await server.done;
});

Deno.test("ws_client: client frames are masked with a fresh key each", async () => {
  const frames: ClientFrame[] = [];
  const server = startRawServer(async (peer) => {
    for (let i = 0; i < 2; i++) frames.push((await peer.frame())!);
    await closeFrom(peer);
  });
  const text = "same text, long enough to show the mask";
  const { client } = await connect(server.url);
  client.send(text);
  client.send(text);
  await waitFor(() => frames.length === 2);
  assert.ok(frames.every((f) => f.masked && f.fin && f.opcode === 0x1));
  assert.deepEqual(frames.map((f) => decoder.decode(f.payload)), [text, text]);
  // Two random 4-byte keys collide once in 2^32 runs.
  assert.notDeepEqual(frames[0].mask, frames[1].mask);
  await client.close();
  await server.done;
});

Deno.test("ws_client: fragmented messages are reassembled, with a ping between fragments", async () => {
  let pong: ClientFrame | null = null;
  const euro = encoder.encode("€"); // three bytes, split across two fragments
  const server = startRawServer(async (peer) => {
    await peer.write(serverFrame(0x1, "Hel", { fin: false }));
    await peer.write(serverFrame(0x9, "mid"));
    await peer.write(serverFrame(0x0, "lo ", { fin: false }));
    await peer.write(serverFrame(0x0, euro.subarray(0, 1), { fin: false }));
    await peer.write(serverFrame(0x0, new Uint8Array([...euro.subarray(1), 0x21])));
    await peer.write(serverFrame(0x2, "binary read as text"));
    pong = await peer.frame();
    await closeFrom(peer);
  });
  const { client, events } = await connect(server.url);
  await waitFor(() => events.messages.length === 2);
  assert.deepEqual(events.messages, ["Hello €!", "binary read as text"]);
  assert.deepEqual(events.pings.map((p) => decoder.decode(p)), ["mid"]);
  await waitFor(() => pong);
  assert.equal(pong!.opcode, 0xa);
  assert.equal(decoder.decode(pong!.payload), "mid");
  await client.close();
  await server.done;
});

// ---------------------------------------------------------------- ping, close, terminate

Deno.test("ws_client: a ping is answered with a pong carrying its data", async () => {
  const server = startEchoServer();
  const { client, events } = await connect(server.url);
  client.ping(encoder.encode("beat-1"));
  client.ping();
  await waitFor(() => events.pongs.length === 2);
  assert.deepEqual(events.pongs.map((p) => decoder.decode(p)), ["beat-1", ""]);
  assert.throws(() => client.ping(new Uint8Array(126)), RangeError);
  await client.close();
  await server.close();
});

Deno.test("ws_client: close() completes the close handshake", async () => {
  const server = startEchoServer();
  const { client, events } = await connect(server.url);
  const start = performance.now();
  await client.close(4000, "bye");
  assert.ok(performance.now() - start < 500, "the close waited for the timeout");
  assert.equal(client.readyState, "closed");
  assert.equal(events.close?.code, 4000);
  assert.deepEqual(await (await server.conn(0)).closed, { code: 4000, reason: "bye" });
  assert.throws(
    () => client.send("late"),
    (e: unknown) => e instanceof WsError && e.kind === "closed",
  );
  assert.throws(() => client.close(1006), RangeError);
  await server.close();
});

Deno.test("ws_client: a close from the server is echoed and reported", async () => {
  const server = startEchoServer();
  const { client, events } = await connect(server.url);
  const conn = await server.conn(0);
  conn.socket.close(4001, "go away");
  await client.closed;
  assert.deepEqual(events.close, { code: 4001, reason: "go away" });
  assert.equal((await conn.closed).code, 4001);
  assert.deepEqual(events.errors, []);
  await server.close();
});

Deno.test("ws_client: close() gives up after closeTimeoutMs when the server does not answer", async () => {
  const server = startRawServer(async (peer) => {
    await peer.frame(); // the close frame, never answered
    await delay(1000);
  });
  const { client, events } = await connect(server.url, { closeTimeoutMs: 200 });
  const start = performance.now();
  await client.close();
  const took = performance.now() - start;
  assert.ok(took >= 190 && took < 800, `closed after ${took} ms`);
  assert.equal(events.close?.code, 1006);
  await server.done;
});

Deno.test("ws_client: terminate() drops the connection at once", async () => {
  const server = startEchoServer();
  const { client, events } = await connect(server.url);
  client.send("x".repeat(1 << 20));
  client.terminate();
  assert.equal(client.readyState, "closed");
  await client.closed;
  assert.deepEqual(events.close, { code: 1006, reason: "" });
  assert.equal(typeof (await withTimeout((await server.conn(0)).closed, 2000))?.code, "number");
  await server.close();
});

/**
 * Sends 32 MiB to a server that reads nothing: bufferedAmount must count the
 * bytes still queued and hold still, and terminate() must end the connection.
 */
async function checkStalledPeer(
  server: RawServer,
  options: Partial<WsClientOptions> = {},
): Promise<void> {
  const { client, events } = await connect(server.url, options);
  const chunk = "y".repeat(4 << 20);
  for (let i = 0; i < 8; i++) client.send(chunk);
  await delay(200);
  const stuck = client.bufferedAmount;
  assert.ok(stuck > 4 << 20, `only ${stuck} bytes queued`);
  await delay(200);
  assert.equal(client.bufferedAmount, stuck);
  client.terminate();
  await client.closed;
  assert.equal(events.close?.code, 1006);
  server.close();
  await server.done.catch(() => {});
}

Deno.test("ws_client: bufferedAmount counts bytes not yet written to a peer that stopped reading", async () => {
  await checkStalledPeer(startRawServer(() => delay(1500)));
});

Deno.test("ws_client: a peer that drops the connection while the client writes ends it", async () => {
  const server = startRawServer(() => delay(50)); // closes with unread data: a reset
  const { client, events } = await connect(server.url);
  for (let i = 0; i < 8; i++) client.send("z".repeat(4 << 20));
  await client.closed;
  assert.equal(events.close?.code, 1006);
  // Deno reads a reset as the end of the stream, so the reader usually notices
  // first and reports no error; a failed write reports one.
  for (const error of events.errors) assert.ok(["reset", "network"].includes(error.kind));
  await server.done;
});

// ---------------------------------------------------------------- limits and protocol errors

Deno.test("ws_client: a message above maxPayload is refused with 1009 before its payload arrives", async () => {
  let code: number | undefined;
  const server = startRawServer(async (peer) => {
    // Announces 1 GiB and sends none of it: only the header can be judged.
    await peer.write(serverFrame(0x1, "", { announce: 2 ** 30 }));
    code = await closeFrom(peer);
  });
  const { client, events } = await connect(server.url, { maxPayload: 1 << 20 });
  await client.closed;
  await server.done;
  assert.equal(code, 1009);
  assert.equal(events.errors[0]?.kind, "too_large");
  assert.match(events.errors[0].message, /at least 1073741824 bytes; the limit is 1048576/);
  assert.equal(events.close?.code, 1009);
});

Deno.test("ws_client: setMaxPayload applies to the messages that follow", async () => {
  const { promise: lowered, resolve: lower } = Promise.withResolvers<void>();
  let code: number | undefined;
  const server = startRawServer(async (peer) => {
    await peer.write(serverFrame(0x1, "a".repeat(2048)));
    await lowered;
    await peer.write(serverFrame(0x1, "b".repeat(512)));
    await peer.write(serverFrame(0x1, "c".repeat(2048)));
    code = await closeFrom(peer);
  });
  const { client, events } = await connect(server.url, { maxPayload: 1 << 20 });
  await waitFor(() => events.messages.length === 1);
  client.setMaxPayload(1024);
  lower();
  await client.closed;
  await server.done;
  assert.deepEqual(events.messages.map((m) => m[0] + m.length), ["a2048", "b512"]);
  assert.equal(code, 1009);
  assert.equal(events.errors[0]?.kind, "too_large");
  assert.match(events.errors[0].message, /the limit is 1024/);
});

Deno.test("ws_client: fragments adding up to more than maxPayload are refused without buffering the rest", async () => {
  let code: number | undefined;
  let sent = 0;
  const server = startRawServer(async (peer) => {
    const fragment = serverFrame(0x0, new Uint8Array(64 * 1024), { fin: false });
    await peer.write(serverFrame(0x1, new Uint8Array(64 * 1024).fill(0x61), { fin: false }));
    // A hostile stream: 256 MiB of fragments, far past the limit, as fast as possible.
    const reading = closeFrom(peer).then((c) => code = c);
    try {
      for (sent = 0; sent < 4096 && code === undefined; sent++) await peer.write(fragment);
    } catch { /* the client has gone */ }
    await reading;
  });
  const before = Deno.memoryUsage().rss;
  const { client, events } = await connect(server.url, {
    maxPayload: 1 << 20,
    closeTimeoutMs: 300,
  });
  await client.closed;
  await server.done;
  const grew = Deno.memoryUsage().rss - before;
  assert.equal(code, 1009);
  assert.equal(events.errors[0]?.kind, "too_large");
  assert.deepEqual(events.messages, []);
  assert.ok(grew < 48 << 20, `RSS grew by ${grew >> 20} MiB while ${sent} fragments streamed`);
});

/** Sends `bytes` after the upgrade; returns the close code the client answered with and its error, which onClose reported too. */
async function protocolFault(bytes: Uint8Array): Promise<{ code?: number; error: WsError }> {
  let code: number | undefined;
  const server = startRawServer(async (peer) => {
    await peer.write(bytes);
    code = await closeFrom(peer);
  });
  const { client, events } = await connect(server.url, { closeTimeoutMs: 500 });
  await client.closed;
  await server.done;
  assert.deepEqual(events.messages, []);
  assert.equal(events.errors.length, 1);
  assert.equal(events.close?.code, code);
  return { code, error: events.errors[0] };
}

Deno.test("ws_client: framing violations close with 1002", async (t) => {
  const cases: [string, Uint8Array, RegExp][] = [
    ["a masked server frame", serverFrame(0x1, "hi", { mask: true }), /servers must not mask/],
    ["an unknown data opcode", serverFrame(0x3, "hi"), /unknown opcode 3$/],
    ["an unknown control opcode", serverFrame(0xb, ""), /unknown opcode 11$/],
    ["a reserved bit", serverFrame(0x1, "hi", { rsv: 0x40 }), /reserved frame bits/],
    [
      "a control frame over 125 bytes",
      serverFrame(0x9, new Uint8Array(126)),
      /control frame of 126 bytes/,
    ],
    ["a fragmented control frame", serverFrame(0x9, "a", { fin: false }), /fragmented a control/],
    ["a continuation with no message", serverFrame(0x0, "hi"), /continuation frame with no/],
    [
      "a new message inside a fragmented one",
      new Uint8Array([...serverFrame(0x1, "a", { fin: false }), ...serverFrame(0x1, "b")]),
      /started a message before finishing/,
    ],
    [
      "a close frame with a 1-byte payload",
      serverFrame(0x8, new Uint8Array([3])),
      /close frame with a 1-byte payload/,
    ],
    [
      "an invalid close code",
      serverFrame(0x8, new Uint8Array([0x03, 0xed])), // 1005
      /invalid close code 1005/,
    ],
  ];
  for (const [name, bytes, message] of cases) {
    await t.step(name, async () => {
      const { code, error } = await protocolFault(bytes);
      assert.equal(code, 1002);
      assert.equal(error.kind, "protocol");
      assert.match(error.message, message);
    });
  }
});

Deno.test("ws_client: invalid UTF-8 closes with 1007", async (t) => {
  const cases: [string, Uint8Array][] = [
    ["in a text frame", serverFrame(0x1, new Uint8Array([0x68, 0xff, 0x69]))],
    [
      "in a fragmented message",
      new Uint8Array([
        ...serverFrame(0x1, new Uint8Array([0xe2, 0x82]), { fin: false }),
        ...serverFrame(0x0, new Uint8Array([0x41])),
      ]),
    ],
    ["in a close reason", serverFrame(0x8, new Uint8Array([0x03, 0xe8, 0xc3, 0x28]))],
  ];
  for (const [name, bytes] of cases) {
    await t.step(name, async () => {
      const { code, error } = await protocolFault(bytes);
      assert.equal(code, 1007);
      assert.equal(error.kind, "invalid_utf8");
    });
  }
});

// ---------------------------------------------------------------- refused upgrades

Deno.test("ws_client: a wrong Sec-WebSocket-Accept is refused", async () => {
  const server = startRawServer(() => Promise.resolve(), {
    response: () => ok101("dGhlIHNhbXBsZSBub25jZQ=="),
  });
  const error = await connectError(server.url);
  assert.equal(error.kind, "handshake");
  assert.match(error.message, /Sec-WebSocket-Accept does not match/);
  await server.done;
});

Deno.test("ws_client: a status other than 101 is refused with the status", async () => {
  const server = startEchoServer({ status: 403 });
  const error = await connectError(server.url);
  assert.equal(error.kind, "http_status");
  assert.equal(error.status, 403);
  assert.match(error.message, /HTTP 403 Forbidden/);
  await server.close();
});

Deno.test("ws_client: the subprotocol may be left unconfirmed but not changed", async () => {
  const none = startRawServer(closeFrom, {
    response: (accept) =>
      "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: upgrade\r\n" +
      `Sec-WebSocket-Accept: ${accept}\r\n\r\n`,
  });
  const { client } = await connect(none.url);
  assert.equal(client.protocol, "");
  await client.close();
  await none.done;
  const other = startRawServer(() => Promise.resolve(), {
    response: (accept) => ok101(accept).replace("Protocol: dcm", "Protocol: chat"),
  });
  const error = await connectError(other.url);
  assert.equal(error.kind, "subprotocol");
  assert.match(error.message, /'chat'/);
  await other.done;
});

Deno.test("ws_client: a refused connection and a bad URL are reported in plain words", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const refused = await connectError(`ws://127.0.0.1:${port}/`);
  assert.equal(refused.kind, "refused");
  assert.equal(refused.message, "connection refused");
  const url = await connectError("http://127.0.0.1/");
  assert.equal(url.kind, "url");
  assert.match(url.message, /must start with ws:\/\/ or wss:\/\//);
});

/** A TCP server that accepts and never answers. */
function startSilentServer(): { url: string; closedByClient: Promise<boolean>; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  let conn: Deno.Conn | undefined;
  const closedByClient = (async () => {
    conn = await listener.accept();
    return await conn.read(new Uint8Array(4096)) !== null &&
      await conn.read(new Uint8Array(4096)) === null;
  })();
  return {
    url: `ws://127.0.0.1:${listener.addr.port}/`,
    closedByClient,
    close() {
      listener.close();
      conn?.close();
    },
  };
}

Deno.test("ws_client: the connect and upgrade are bounded by timeoutMs", async () => {
  const server = startSilentServer();
  const start = performance.now();
  const error = await connectError(server.url, { timeoutMs: 300 });
  const took = performance.now() - start;
  assert.equal(error.kind, "timeout");
  assert.equal(error.message, "no websocket connection within 0.3 s");
  assert.ok(took >= 290 && took < 1000, `gave up after ${took} ms`);
  assert.equal(await server.closedByClient, true, "the socket was left open");
  server.close();
});

Deno.test("ws_client: an aborted signal abandons the connect", async () => {
  const server = startSilentServer();
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 50);
  const error = await connectError(server.url, { signal: controller.signal });
  assert.equal(error.kind, "aborted");
  assert.equal(await server.closedByClient, true);
  server.close();
});

// ---------------------------------------------------------------- TLS

/** Connects over wss, echoes one message and closes; returns the connect error if any. */
async function tryTls(
  tls: { cert: string; key: string },
  options: Partial<WsClientOptions>,
): Promise<WsError | null> {
  const server = startEchoServer({ tls });
  try {
    const { client, events } = await connect(server.url, options);
    client.send("over tls");
    client.ping(encoder.encode("p"));
    await waitFor(() => events.messages.length === 1 && events.pongs.length === 1);
    assert.deepEqual(events.messages, ["over tls"]);
    await client.close();
    assert.equal(events.close?.code, 1000);
    return null;
  } catch (err) {
    if (err instanceof WsError) return err;
    throw err;
  } finally {
    await server.close();
  }
}

Deno.test("ws_client: wss works with the CA in caCerts and fails without it", async () => {
  const c = await makeCerts();
  assert.equal(await tryTls(c.good, { caCerts: [c.ca] }), null);
  const untrusted = await tryTls(c.good, {});
  assert.equal(untrusted?.kind, "tls_untrusted");
  assert.match(untrusted!.message, /TLS certificate is not trusted/);
});

Deno.test("ws_client: a host-name mismatch fails unless checkHostname is false", async () => {
  const c = await makeCerts();
  const mismatch = await tryTls(c.wrongName, { caCerts: [c.ca] });
  assert.equal(mismatch?.kind, "tls_name");
  assert.match(mismatch!.message, /does not match its host name/);
  assert.equal(await tryTls(c.wrongName, { caCerts: [c.ca], checkHostname: false }), null);
  // Without the name check the chain is still verified.
  const untrusted = await tryTls(c.wrongName, { checkHostname: false });
  assert.equal(untrusted?.kind, "tls_untrusted");
});

Deno.test("ws_client: allowUnknownCerts accepts a certificate from an unknown CA", async () => {
  const c = await makeCerts();
  assert.equal(await tryTls(c.wrongName, { allowUnknownCerts: true }), null);
  const server = startEchoServer({ tls: c.good });
  const { client, events } = await connect(server.url, { allowUnknownCerts: true });
  client.send("then dropped");
  await waitFor(() => events.messages.length === 1);
  client.terminate();
  await client.closed;
  assert.equal(events.close?.code, 1006);
  await server.close();
});

Deno.test("ws_client: allowUnknownCerts still reports a refused connection", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  const error = await connectError(`wss://127.0.0.1:${port}/`, { allowUnknownCerts: true });
  assert.equal(error.kind, "refused");
});

Deno.test("ws_client: allowUnknownCerts keeps bufferedAmount and terminate() working", async () => {
  const c = await makeCerts();
  await checkStalledPeer(startRawServer(() => delay(1000), { tls: c.good }), {
    allowUnknownCerts: true,
  });
});
