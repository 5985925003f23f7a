/**
 * Websocket servers on 127.0.0.1 for the websocket client and connection
 * tests: a Deno.serve server for well-behaved peers, and a hand-written one
 * for upgrade responses and frames that Deno would never send.
 */
import { waitFor, withTimeout } from "./wait.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------- Deno.serve server

/** One connection as the Deno.serve websocket server sees it. */
export interface ServerConn {
  socket: WebSocket;
  /** The upgrade request's headers. */
  headers: Headers;
  /** Text messages received, in order. */
  frames: string[];
  /** performance.now() when the connection opened. */
  openedAt: number;
  /** Settles with the close code and reason once the connection has closed. */
  closed: Promise<{ code: number; reason: string }>;
  /** Resolves with the message at `index` once it has arrived. */
  frame(index: number, timeoutMs?: number): Promise<string>;
}

/** A Deno.serve websocket server. */
export interface WsServer {
  url: string;
  /** Connections, in the order they opened. */
  conns: ServerConn[];
  /** Resolves with the connection at `index` once it has opened. */
  conn(index: number, timeoutMs?: number): Promise<ServerConn>;
  /** Closes every connection, then the server. */
  close(): Promise<void>;
}

/** Options for {@linkcode serveWebSocket}. */
export interface WsServerOptions {
  /** Serve wss:// with this certificate. */
  tls?: { cert: string; key: string };
  /** The subprotocol to confirm (default "dcm"); null confirms none. */
  protocol?: string | null;
  /** Refuse every upgrade with this HTTP status. */
  status?: number;
  /** Called for each connection once it is open. */
  onOpen?(conn: ServerConn, index: number): void;
}

/** Serves websockets at /agentManager on 127.0.0.1 (Deno answers pings itself). */
export function serveWebSocket(options: WsServerOptions = {}): WsServer {
  const conns: ServerConn[] = [];
  let upgrades = 0;
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen() {},
    ...(options.tls ?? {}),
  }, (req) => {
    if (options.status) return new Response("refused", { status: options.status });
    const headers = new Headers(req.headers);
    const protocol = options.protocol === undefined ? "dcm" : options.protocol;
    const { socket, response } = Deno.upgradeWebSocket(
      req,
      protocol === null ? {} : { protocol },
    );
    const frames: string[] = [];
    let resolveClosed: (value: { code: number; reason: string }) => void = () => {};
    const conn: ServerConn = {
      socket,
      headers,
      frames,
      openedAt: 0,
      closed: new Promise((resolve) => resolveClosed = resolve),
      frame: (i, t) => waitFor(() => frames[i], t, `frame ${i}`),
    };
    const index = upgrades++;
    socket.onopen = () => {
      conn.openedAt = performance.now();
      conns.push(conn);
      options.onOpen?.(conn, index);
    };
    socket.onmessage = (e) => void frames.push(String(e.data));
    socket.onclose = (e) => resolveClosed({ code: e.code, reason: e.reason });
    socket.onerror = () => {};
    return response;
  });
  return {
    url: `${options.tls ? "wss" : "ws"}://127.0.0.1:${server.addr.port}/agentManager`,
    conns,
    conn: (i, t) => waitFor(() => conns[i], t, `connection ${i}`),
    async close() {
      for (const c of conns) {
        if (c.socket.readyState <= WebSocket.OPEN) c.socket.close();
      }
      await Promise.all(conns.map((c) => withTimeout(c.closed, 2000)));
      await server.shutdown();
    },
  };
}

// ---------------------------------------------------------------- raw server

/** A frame from the client, unmasked. */
export interface ClientFrame {
  fin: boolean;
  opcode: number;
  masked: boolean;
  /** The masking key (empty when unmasked). */
  mask: Uint8Array;
  payload: Uint8Array;
}

/** The server end of one raw connection after the upgrade. */
export interface RawPeer {
  /** The client's request head. */
  request: string;
  write(bytes: Uint8Array): Promise<void>;
  /** The next client frame, or null once the client has closed. */
  frame(): Promise<ClientFrame | null>;
}

/** A hand-written websocket server for one connection. */
export interface RawServer {
  url: string;
  /** Settles when the handler has finished (rejects with its error). */
  done: Promise<void>;
  close(): void;
}

/** Options for {@linkcode startRawServer}. */
export interface RawServerOptions {
  /** The upgrade response for a Sec-WebSocket-Accept value; the default is a 101 confirming dcm. */
  response?: (accept: string) => string;
  /** Frame bytes sent in the same write as the 101 response. */
  withResponse?: Uint8Array;
  /** Serve wss:// with this certificate. */
  tls?: { cert: string; key: string };
}

/**
 * A hand-written websocket server for one connection (later connects are
 * refused): `handler` runs after the 101 response, and nothing is read from
 * the client unless it asks for a frame.
 */
export function startRawServer(
  handler: (peer: RawPeer) => Promise<unknown>,
  options: RawServerOptions = {},
): RawServer {
  const address = { hostname: "127.0.0.1", port: 0 };
  const listener = options.tls
    ? Deno.listenTls({ ...address, ...options.tls })
    : Deno.listen(address);
  let conn: Deno.Conn | undefined;
  const done = (async () => {
    conn = await listener.accept();
    listener.close();
    const reader = new ByteReader(conn);
    const request = await reader.head();
    const key = /^sec-websocket-key:\s*(\S+)/im.exec(request)?.[1] ?? "";
    const response = (options.response ?? ok101)(await acceptFor(key));
    const head = encoder.encode(response);
    const extra = options.withResponse ?? new Uint8Array(0);
    const first = new Uint8Array(head.length + extra.length);
    first.set(head);
    first.set(extra, head.length);
    await writeAll(conn, first);
    const c = conn;
    await handler({ request, write: (b) => writeAll(c, b), frame: () => reader.frame() });
  })().finally(() => {
    try {
      conn?.close();
    } catch { /* closed already */ }
  });
  return {
    url: `${options.tls ? "wss" : "ws"}://127.0.0.1:${listener.addr.port}/agentManager?x=1`,
    done,
    close() {
      try {
        listener.close();
      } catch { /* closed after the first connection */ }
      try {
        conn?.close();
      } catch { /* closed already */ }
    },
  };
}

/** A 101 response that confirms the subprotocol dcm. */
export function ok101(accept: string): string {
  return "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
    `Sec-WebSocket-Accept: ${accept}\r\nSec-WebSocket-Protocol: dcm\r\n\r\n`;
}

async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-1",
    encoder.encode(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"),
  );
  return btoa(String.fromCharCode(...new Uint8Array(digest)));
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < bytes.length) offset += await conn.write(bytes.subarray(offset));
}

/** Buffered reads of a request head and of client frames. */
class ByteReader {
  #conn: Deno.Conn;
  #data = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  async head(): Promise<string> {
    for (;;) {
      const text = decoder.decode(this.#data);
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        this.#data = this.#data.slice(encoder.encode(text.slice(0, end + 4)).length);
        return text.slice(0, end);
      }
      if (!await this.#fill()) throw new Error("the client closed before sending its request");
    }
  }

  async frame(): Promise<ClientFrame | null> {
    if (!await this.#need(2)) return null;
    const b0 = this.#data[0];
    const b1 = this.#data[1];
    let length = b1 & 0x7f;
    let at = 2;
    if (length === 126) {
      if (!await this.#need(4)) return null;
      length = (this.#data[2] << 8) | this.#data[3];
      at = 4;
    } else if (length === 127) {
      if (!await this.#need(10)) return null;
      length = new DataView(this.#data.buffer, this.#data.byteOffset).getUint32(6);
      at = 10;
    }
    const masked = (b1 & 0x80) !== 0;
    const total = at + (masked ? 4 : 0) + length;
    if (!await this.#need(total)) return null;
    const mask = this.#data.slice(at, masked ? at + 4 : at);
    const start = at + (masked ? 4 : 0);
    const payload = this.#data.slice(start, start + length);
    if (masked) { for (let i = 0; i < payload.length; i++) payload[i] ^= mask[i & 3]; }
    this.#data = this.#data.slice(total);
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, masked, mask, payload };
  }

  async #need(n: number): Promise<boolean> {
    while (this.#data.length < n) {
      if (!await this.#fill()) return false;
    }
    return true;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
    let n: number | null;
    try {
      n = await this.#conn.read(chunk);
    } catch {
      return false;
    }
    if (n === null) return false;
    const data = new Uint8Array(this.#data.length + n);
    data.set(this.#data);
    data.set(chunk.subarray(0, n), this.#data.length);
    this.#data = data;
    return true;
  }
}

/** An unmasked server frame; `announce` claims a payload length without sending it. */
export function serverFrame(
  opcode: number,
  payload: Uint8Array | string = new Uint8Array(0),
  options: { fin?: boolean; rsv?: number; mask?: boolean; announce?: number } = {},
): Uint8Array {
  const body = typeof payload === "string" ? encoder.encode(payload) : payload;
  const length = options.announce ?? body.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const maskBytes = options.mask ? 4 : 0;
  const frame = new Uint8Array(2 + extra + maskBytes + body.length);
  frame[0] = (options.fin === false ? 0 : 0x80) | (options.rsv ?? 0) | opcode;
  frame[1] = (options.mask ? 0x80 : 0) | (extra === 0 ? length : extra === 2 ? 126 : 127);
  const view = new DataView(frame.buffer);
  if (extra === 2) view.setUint16(2, length);
  if (extra === 8) {
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  // An all-zero mask leaves the payload as it is.
  frame.set(body, 2 + extra + maskBytes);
  return frame;
}

/** Reads client frames until a close frame; returns its code. */
export async function closeFrom(peer: RawPeer): Promise<number | undefined> {
  for (;;) {
    const frame = await peer.frame();
    if (frame === null || frame.opcode === 0x8) {
      if (!frame || frame.payload.length < 2) return undefined;
      return (frame.payload[0] << 8) | frame.payload[1];
    }
  }
}
