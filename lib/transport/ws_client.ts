/**
 * A small RFC 6455 websocket client over `Deno.connect` / `Deno.startTls`
 * for the manager connection: text messages, ping/pong, a bounded connect
 * and close, and a send queue whose size shows whether the peer still reads.
 *
 * Deno's built-in WebSocket cannot ping, has no connect timeout and its
 * close() waits for ever on a silent peer; npm `ws` costs ~14 MB of resident
 * memory for its node-compat layers. This client measured ~2 MB above the
 * built-in WebSocket, mostly WebCrypto's start-up for the accept check.
 */
import type { TLSSocket } from "node:tls";

/** What went wrong, for callers that explain failures in their own words. */
export type WsErrorKind =
  /** The URL is not a ws:// or wss:// URL. */
  | "url"
  /** Nothing listens on the port. */
  | "refused"
  /** The host name has no address. */
  | "unresolved"
  /** No route to the host or network. */
  | "unreachable"
  /** The peer reset the TCP connection. */
  | "reset"
  /** The connect and upgrade did not finish within `timeoutMs`. */
  | "timeout"
  /** `signal` aborted the connect. */
  | "aborted"
  /** The server's certificate chain is not trusted. */
  | "tls_untrusted"
  /** The server's certificate is not valid for the host name. */
  | "tls_name"
  /** The server's certificate is expired or not yet valid. */
  | "tls_expired"
  /** The server answered the TLS handshake in plain text (a ws:// server). */
  | "tls_plain"
  /** Any other TLS handshake failure. */
  | "tls"
  /** The server answered the upgrade with a status other than 101 (see `status`). */
  | "http_status"
  /** The 101 response is not a valid websocket upgrade. */
  | "handshake"
  /** The server chose a subprotocol that was not asked for. */
  | "subprotocol"
  /** The server sent a message larger than `maxPayload` (closed with 1009). */
  | "too_large"
  /** The server broke the framing rules (closed with 1002). */
  | "protocol"
  /** The server sent text that is not UTF-8 (closed with 1007). */
  | "invalid_utf8"
  /** send() or ping() on a socket that is closing or closed. */
  | "closed"
  /** Any other read, write or connect failure. */
  | "network";

/** A websocket failure with a machine-readable kind and a plain-words message. */
export class WsError extends Error {
  /** What went wrong. */
  readonly kind: WsErrorKind;
  /** The HTTP status of a refused upgrade (kind "http_status"). */
  readonly status?: number;

  constructor(
    kind: WsErrorKind,
    message: string,
    options: { status?: number; cause?: unknown } = {},
  ) {
    super(message, { cause: options.cause });
    this.name = "WsError";
    this.kind = kind;
    this.status = options.status;
  }
}

/**
 * How to connect, and the event handlers. Handlers must not throw; they run
 * only after connectWebSocket() has resolved, even for frames that arrived
 * with the 101 response.
 */
export interface WsClientOptions {
  /** The subprotocol to ask for (Sec-WebSocket-Protocol). A server that confirms none is accepted; one that picks another is refused. */
  protocol?: string;
  /** Milliseconds allowed for the TCP connect, the TLS handshake and the HTTP upgrade together. */
  timeoutMs: number;
  /** Largest incoming message in bytes, after reassembling fragments; larger ones are refused with close code 1009. */
  maxPayload: number;
  /** Milliseconds that close() waits for the server's close frame before dropping the connection (default 1000). */
  closeTimeoutMs?: number;
  /** PEM CA certificates trusted for wss:// in addition to the built-in roots. */
  caCerts?: string[];
  /** Verify that the certificate matches the host name (default true); the chain is verified either way. */
  checkHostname?: boolean;
  /** Accept any certificate for wss:// without verification (insecure; loads node:tls on first use). */
  allowUnknownCerts?: boolean;
  /** Aborts the connect and upgrade; no effect once the promise has resolved. */
  signal?: AbortSignal;
  /** A complete text (or binary, decoded as UTF-8) message. */
  onMessage?(text: string): void;
  /** The server pinged; the pong has already been queued. */
  onPing?(data: Uint8Array): void;
  /** The server answered a ping. */
  onPong?(data: Uint8Array): void;
  /** The connection failed after opening; onClose follows. */
  onError?(error: WsError): void;
  /** The connection is closed and its reader and writer have stopped. The code is the server's close code, the client's own after a protocol error, 1005 for a close frame without a code, or 1006 for no close frame. */
  onClose?(code: number, reason: string): void;
}

/** An open websocket connection. */
export interface WsClient {
  /** The subprotocol the server confirmed; "" if it confirmed none. */
  readonly protocol: string;
  /** "open", "closing" once a close frame was sent, or "closed". */
  readonly readyState: "open" | "closing" | "closed";
  /** Bytes queued for sending but not yet written to the socket. */
  readonly bufferedAmount: number;
  /** Resolves after onClose has run. */
  readonly closed: Promise<void>;
  /** Queues a text message; throws a WsError of kind "closed" unless open. */
  send(text: string): void;
  /** Queues a ping (at most 125 bytes of data); throws a WsError of kind "closed" unless open. */
  ping(data?: Uint8Array): void;
  /** Sends a close frame and resolves once closed; drops the connection if the server does not answer within closeTimeoutMs. */
  close(code?: number, reason?: string): Promise<void>;
  /** Closes the TCP connection at once (onClose reports 1006). */
  terminate(): void;
  /** Changes the largest message accepted from now on (a SIGHUP may change the setting). */
  setMaxPayload(bytes: number): void;
}

/** The byte stream a websocket runs over: a Deno connection or the node:tls adapter. */
interface ByteStream {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  close(): void;
}

/** A frame whose header has been read. */
interface Frame {
  fin: boolean;
  opcode: number;
  length: number;
  /** Payload bytes still to come. */
  remaining: number;
}

interface Target {
  secure: boolean;
  /** Host name or IP address to connect to (no IPv6 brackets). */
  hostname: string;
  port: number;
  /** The Host header: host, plus the port unless it is the scheme's default. */
  host: string;
  /** Path and query for the request line. */
  path: string;
}

const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
const READ_BUFFER_BYTES = 64 * 1024;
/** A longer upgrade response is not a websocket server. */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;
const DEFAULT_CLOSE_TIMEOUT_MS = 1000;
const MAX_CONTROL_PAYLOAD = 125;
/** Message buffers up to this size are reused; larger ones are freed after their message. */
const KEPT_MESSAGE_BUFFER_BYTES = 64 * 1024;

const OP_CONTINUATION = 0x0;
const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
const OP_PING = 0x9;
const OP_PONG = 0xa;

const encoder = new TextEncoder();
/** Fatal: invalid UTF-8 must fail the connection (RFC 6455 8.1); BOMs are content. */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** Connects and upgrades to a websocket; rejects with a WsError. */
export async function connectWebSocket(url: string, options: WsClientOptions): Promise<WsClient> {
  const target = parseTarget(url);
  const controller = new AbortController();
  const timer = setTimeout(() => {
    controller.abort(
      new WsError("timeout", `no websocket connection within ${options.timeoutMs / 1000} s`),
    );
  }, options.timeoutMs);
  const abandon = () => {
    controller.abort(new WsError("aborted", "the connection attempt was abandoned"));
  };
  options.signal?.addEventListener("abort", abandon, { once: true });
  if (options.signal?.aborted) abandon();
  let stream: ByteStream | undefined;
  // Closing the stream is what interrupts a pending TLS handshake or read.
  const closeOnAbort = () => closeQuietly(stream);
  controller.signal.addEventListener("abort", closeOnAbort, { once: true });
  try {
    stream = await openStream(target, options, controller.signal);
    controller.signal.throwIfAborted();
    const { protocol, rest } = await upgrade(stream, target, options.protocol);
    controller.signal.throwIfAborted();
    return new Client(stream, rest, protocol, options);
  } catch (err) {
    closeQuietly(stream);
    if (controller.signal.aborted) throw controller.signal.reason;
    throw toWsError(err);
  } finally {
    clearTimeout(timer);
    options.signal?.removeEventListener("abort", abandon);
    controller.signal.removeEventListener("abort", closeOnAbort);
  }
}

function parseTarget(url: string): Target {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new WsError("url", `'${url}' is not a URL; use ws://host:port/path or wss://…`);
  }
  if (parsed.protocol !== "ws:" && parsed.protocol !== "wss:") {
    throw new WsError("url", `'${url}' is not a websocket URL; it must start with ws:// or wss://`);
  }
  const secure = parsed.protocol === "wss:";
  return {
    secure,
    hostname: parsed.hostname.replace(/^\[(.*)\]$/, "$1"),
    port: parsed.port ? Number(parsed.port) : secure ? 443 : 80,
    host: parsed.host,
    path: `${parsed.pathname || "/"}${parsed.search}`,
  };
}

/** TCP, then TLS unless ws://; every step stops when `signal` aborts. */
async function openStream(
  target: Target,
  options: WsClientOptions,
  signal: AbortSignal,
): Promise<ByteStream> {
  if (target.secure && options.allowUnknownCerts) return await connectUnverifiedTls(target, signal);
  // Deno.connect takes a signal, Deno.connectTls does not: TLS is started on the TCP connection.
  const tcp = await Deno.connect({ hostname: target.hostname, port: target.port, signal });
  // Each frame is one write; waiting to coalesce them only delays pings and replies.
  tcp.setNoDelay(true);
  if (!target.secure) return tcp;
  let tls: Deno.TlsConn;
  try {
    tls = await Deno.startTls(tcp, {
      hostname: target.hostname,
      caCerts: options.caCerts,
      unsafelyDisableHostnameVerification: options.checkHostname === false,
    });
  } catch (err) {
    closeQuietly(tcp);
    throw tlsError(err);
  }
  const closeOnAbort = () => closeQuietly(tls);
  signal.addEventListener("abort", closeOnAbort, { once: true });
  try {
    // An abort during startTls found no listener yet.
    signal.throwIfAborted();
    await tls.handshake();
    return tls;
  } catch (err) {
    closeQuietly(tls);
    throw signal.aborted ? err : tlsError(err);
  } finally {
    signal.removeEventListener("abort", closeOnAbort);
  }
}

/** Sends the upgrade request and checks the 101 response; `rest` holds any frame bytes read with it. */
async function upgrade(
  stream: ByteStream,
  target: Target,
  protocol: string | undefined,
): Promise<{ protocol: string; rest: Uint8Array }> {
  const key = toBase64(crypto.getRandomValues(new Uint8Array(16)));
  // Exactly the headers RFC 6455 needs: the manager takes no auth headers or cookies.
  const lines = [
    `GET ${target.path} HTTP/1.1`,
    `Host: ${target.host}`,
    "Upgrade: websocket",
    "Connection: Upgrade",
    `Sec-WebSocket-Key: ${key}`,
    "Sec-WebSocket-Version: 13",
  ];
  if (protocol) lines.push(`Sec-WebSocket-Protocol: ${protocol}`);
  await writeAll(stream, encoder.encode(`${lines.join("\r\n")}\r\n\r\n`));
  const { head, rest } = await readResponseHead(stream);
  const [statusLine, ...headerLines] = head.split("\r\n");
  const status = /^HTTP\/1\.[01] (\d{3})(?: (.*))?$/.exec(statusLine);
  if (!status) {
    throw new WsError(
      "handshake",
      `the server did not answer the websocket upgrade with HTTP ('${statusLine.slice(0, 80)}')`,
    );
  }
  if (status[1] !== "101") {
    const text = status[2] ? `${status[1]} ${status[2]}` : status[1];
    throw new WsError(
      "http_status",
      `the server answered the websocket upgrade with HTTP ${text}`,
      {
        status: Number(status[1]),
      },
    );
  }
  const headers = parseHeaders(headerLines);
  if (headers.get("upgrade")?.toLowerCase() !== "websocket") {
    throw new WsError("handshake", "the server's 101 response does not upgrade to websocket");
  }
  const connection = (headers.get("connection") ?? "").toLowerCase().split(/\s*,\s*/);
  if (!connection.includes("upgrade")) {
    throw new WsError("handshake", "the server's 101 response lacks 'Connection: Upgrade'");
  }
  if (headers.get("sec-websocket-accept") !== await acceptFor(key)) {
    throw new WsError(
      "handshake",
      "the server's Sec-WebSocket-Accept does not match the request; it is not a websocket " +
        "server, or a proxy altered the response",
    );
  }
  if (headers.has("sec-websocket-extensions")) {
    throw new WsError("handshake", "the server enabled a websocket extension that was not offered");
  }
  const chosen = headers.get("sec-websocket-protocol") ?? "";
  if (chosen && chosen !== protocol) {
    throw new WsError(
      "subprotocol",
      `the server chose the websocket subprotocol '${chosen}', which was not asked for`,
    );
  }
  return { protocol: chosen, rest };
}

/** Reads up to the blank line that ends the response head. */
async function readResponseHead(stream: ByteStream): Promise<{ head: string; rest: Uint8Array }> {
  let data = new Uint8Array(0);
  const chunk = new Uint8Array(4096);
  for (;;) {
    const n = await stream.read(chunk);
    if (n === null) {
      throw new WsError(
        "handshake",
        "the server closed the connection before answering the websocket upgrade",
      );
    }
    const from = Math.max(0, data.length - 3);
    const grown = new Uint8Array(data.length + n);
    grown.set(data);
    grown.set(chunk.subarray(0, n), data.length);
    data = grown;
    const end = indexOfBlankLine(data, from);
    if (end >= 0) {
      return {
        head: new TextDecoder().decode(data.subarray(0, end)),
        rest: data.slice(end + 4),
      };
    }
    if (data.length > MAX_RESPONSE_HEAD_BYTES) {
      throw new WsError(
        "handshake",
        `the server's upgrade response head exceeds ${MAX_RESPONSE_HEAD_BYTES} bytes`,
      );
    }
  }
}

function indexOfBlankLine(data: Uint8Array, from: number): number {
  for (let i = from; i + 3 < data.length; i++) {
    if (data[i] === 13 && data[i + 1] === 10 && data[i + 2] === 13 && data[i + 3] === 10) return i;
  }
  return -1;
}

function parseHeaders(lines: string[]): Map<string, string> {
  const headers = new Map<string, string>();
  for (const line of lines) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    const seen = headers.get(name);
    headers.set(name, seen === undefined ? value : `${seen}, ${value}`);
  }
  return headers;
}

async function acceptFor(key: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", encoder.encode(key + ACCEPT_GUID));
  return toBase64(new Uint8Array(digest));
}

/** One websocket connection after a successful upgrade. */
class Client implements WsClient {
  readonly protocol: string;
  readonly closed: Promise<void>;
  #stream: ByteStream;
  #options: WsClientOptions;
  #state: "open" | "closing" | "closed" = "open";
  #resolveClosed: () => void = () => {};
  #reader: Promise<void>;
  #closeTimer?: ReturnType<typeof setTimeout>;
  #closeSent = false;
  /** Reported by onClose: set by the server's close frame or by a protocol failure. */
  #endCode = 1006;
  #endReason = "";

  // Sending: frames are written one at a time, in order.
  #queue: Uint8Array[] = [];
  #bufferedAmount = 0;
  #writing = false;
  #writer: Promise<void> = Promise.resolve();

  // Receiving. After a close frame or a failure nothing more is parsed.
  #discarding = false;
  /** Header bytes of the next frame (2, plus 2 or 8 of length; server frames carry no mask). */
  #head = new Uint8Array(10);
  #headLength = 0;
  /** The frame whose payload is arriving, once its header is complete. */
  #frame: Frame | null = null;
  /** Payload of the control frame being read. */
  #control = new Uint8Array(MAX_CONTROL_PAYLOAD);
  /** The opcode that started the message being reassembled; 0 while none is. */
  #messageOpcode = 0;
  /**
   * The message being reassembled. It grows with the bytes that actually
   * arrive, not with the lengths frames announce, and at most to maxPayload.
   */
  #message = new Uint8Array(0);
  #messageSize = 0;

  constructor(stream: ByteStream, rest: Uint8Array, protocol: string, options: WsClientOptions) {
    this.#stream = stream;
    this.#options = options;
    this.protocol = protocol;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#reader = this.#read(rest);
  }

  get readyState(): "open" | "closing" | "closed" {
    return this.#state;
  }

  get bufferedAmount(): number {
    return this.#bufferedAmount;
  }

  send(text: string): void {
    this.#assertOpen("send a message");
    this.#enqueue(encodeFrame(OP_TEXT, encoder.encode(text)));
  }

  ping(data: Uint8Array = new Uint8Array(0)): void {
    if (data.length > MAX_CONTROL_PAYLOAD) {
      throw new RangeError(
        `a ping carries at most ${MAX_CONTROL_PAYLOAD} bytes, not ${data.length}`,
      );
    }
    this.#assertOpen("ping");
    this.#enqueue(encodeFrame(OP_PING, data));
  }

  close(code = 1000, reason = ""): Promise<void> {
    if (code !== 1000 && (code < 3000 || code > 4999)) {
      throw new RangeError(`close code ${code} is not allowed; use 1000 or 3000-4999`);
    }
    if (encoder.encode(reason).length > MAX_CONTROL_PAYLOAD - 2) {
      throw new RangeError(`a close reason has at most ${MAX_CONTROL_PAYLOAD - 2} bytes`);
    }
    if (this.#state === "open") this.#sendClose(code, reason);
    return this.closed;
  }

  terminate(): void {
    this.#finish();
  }

  setMaxPayload(bytes: number): void {
    this.#options = { ...this.#options, maxPayload: bytes };
  }

  #assertOpen(action: string): void {
    if (this.#state !== "open") {
      throw new WsError("closed", `cannot ${action}: the websocket is ${this.#state}`);
    }
  }

  /** Sends a close frame once and bounds the wait for the server's answer. */
  #sendClose(code: number, reason: string): void {
    if (this.#closeSent) return;
    this.#closeSent = true;
    this.#state = "closing";
    this.#enqueue(encodeClose(code, reason));
    this.#closeTimer = setTimeout(
      () => this.#finish(),
      this.#options.closeTimeoutMs ?? DEFAULT_CLOSE_TIMEOUT_MS,
    );
  }

  /** Drops the connection; onClose runs once the reader and writer have stopped. */
  #finish(): void {
    if (this.#state === "closed") return;
    this.#state = "closed";
    this.#discarding = true;
    clearTimeout(this.#closeTimer);
    closeQuietly(this.#stream);
    void Promise.all([this.#reader, this.#writer]).then(() => {
      emit(() => this.#options.onClose?.(this.#endCode, this.#endReason));
      this.#resolveClosed();
    });
  }

  /** Reports a failure, tells the server with close `code`, and reads nothing more. */
  #fail(kind: WsErrorKind, code: number, message: string): void {
    if (this.#state === "closed") return;
    this.#discarding = true;
    this.#endCode = code;
    this.#endReason = "";
    this.#sendClose(code, "");
    emit(() => this.#options.onError?.(new WsError(kind, message)));
  }

  #enqueue(frame: Uint8Array): void {
    this.#queue.push(frame);
    this.#bufferedAmount += frame.length;
    if (this.#writing) return;
    this.#writing = true;
    this.#writer = this.#write();
  }

  async #write(): Promise<void> {
    try {
      while (this.#queue.length > 0 && this.#state !== "closed") {
        const frame = this.#queue[0];
        let offset = 0;
        while (offset < frame.length) {
          const n = await this.#stream.write(frame.subarray(offset));
          offset += n;
          this.#bufferedAmount -= n;
        }
        this.#queue.shift();
      }
    } catch (err) {
      if (this.#state !== "closed") {
        const error = toWsError(err);
        emit(() =>
          this.#options.onError?.(
            new WsError(error.kind, `cannot write to the websocket: ${error.message}`),
          )
        );
        this.#finish();
      }
    } finally {
      this.#writing = false;
    }
  }

  async #read(rest: Uint8Array): Promise<void> {
    // Frames that came with the 101 response wait for a later task, so the
    // caller holds the client before the first event.
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (rest.length > 0 && !this.#discarding) this.#consume(rest);
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    while (this.#state !== "closed") {
      let n: number | null;
      try {
        n = await this.#stream.read(buffer);
      } catch (err) {
        if (this.#state === "open") {
          const error = toWsError(err);
          emit(() => this.#options.onError?.(error));
        }
        this.#finish();
        return;
      }
      if (n === null) {
        this.#finish();
        return;
      }
      if (!this.#discarding) this.#consume(buffer.subarray(0, n));
    }
  }

  /** Parses frames out of `bytes`, keeping partial headers and payloads for the next read. */
  #consume(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length && !this.#discarding) {
      const frame = this.#frame;
      if (frame === null) {
        offset = this.#readHead(bytes, offset);
        continue;
      }
      const n = Math.min(frame.remaining, bytes.length - offset);
      const at = frame.length - frame.remaining;
      if (frame.opcode >= OP_CLOSE) {
        this.#control.set(bytes.subarray(offset, offset + n), at);
      } else {
        this.#reserve(this.#messageSize + at, n);
        this.#message.set(bytes.subarray(offset, offset + n), this.#messageSize + at);
      }
      frame.remaining -= n;
      offset += n;
      if (frame.remaining === 0) {
        this.#frame = null;
        this.#onFrame(frame);
      }
    }
  }

  /** Makes room for `more` bytes after the first `filled`, doubling to keep copies linear. */
  #reserve(filled: number, more: number): void {
    const size = filled + more;
    if (size <= this.#message.length) return;
    const grown = new Uint8Array(
      Math.min(this.#options.maxPayload, Math.max(size, this.#message.length * 2)),
    );
    grown.set(this.#message.subarray(0, filled));
    this.#message = grown;
  }

  #readHead(bytes: Uint8Array, offset: number): number {
    const head = this.#head;
    while (offset < bytes.length && this.#headLength < headSize(head, this.#headLength)) {
      head[this.#headLength++] = bytes[offset++];
    }
    if (this.#headLength < headSize(head, this.#headLength)) return offset;
    this.#headLength = 0;
    this.#startFrame(head);
    return offset;
  }

  /** Checks a frame header before any of its payload is read. */
  #startFrame(head: Uint8Array): void {
    const fin = (head[0] & 0x80) !== 0;
    const opcode = head[0] & 0x0f;
    const length = payloadLength(head);
    if ((head[0] & 0x70) !== 0) {
      return this.#fail(
        "protocol",
        1002,
        "the server set reserved frame bits; no extension was agreed",
      );
    }
    if ((head[1] & 0x80) !== 0) {
      return this.#fail("protocol", 1002, "the server sent a masked frame; servers must not mask");
    }
    if (opcode > OP_PONG || (opcode > OP_BINARY && opcode < OP_CLOSE)) {
      return this.#fail("protocol", 1002, `the server sent a frame with unknown opcode ${opcode}`);
    }
    if (opcode >= OP_CLOSE) {
      if (!fin) return this.#fail("protocol", 1002, "the server fragmented a control frame");
      if (length > MAX_CONTROL_PAYLOAD) {
        return this.#fail(
          "protocol",
          1002,
          `the server sent a control frame of ${length} bytes; the limit is ${MAX_CONTROL_PAYLOAD}`,
        );
      }
    } else {
      if (opcode === OP_CONTINUATION && this.#messageOpcode === 0) {
        return this.#fail("protocol", 1002, "the server sent a continuation frame with no message");
      }
      if (opcode !== OP_CONTINUATION && this.#messageOpcode !== 0) {
        return this.#fail(
          "protocol",
          1002,
          "the server started a message before finishing the previous one",
        );
      }
      // Refused on the announced size, before any of the payload is buffered.
      if (this.#messageSize + length > this.#options.maxPayload) {
        return this.#fail(
          "too_large",
          1009,
          `the server sent a message of at least ${this.#messageSize + length} bytes; ` +
            `the limit is ${this.#options.maxPayload}`,
        );
      }
    }
    const frame = { fin, opcode, length, remaining: length };
    if (length === 0) this.#onFrame(frame);
    else this.#frame = frame;
  }

  #onFrame(frame: Frame): void {
    switch (frame.opcode) {
      case OP_PING: {
        const data = this.#control.slice(0, frame.length);
        if (this.#state === "open") this.#enqueue(encodeFrame(OP_PONG, data));
        emit(() => this.#options.onPing?.(data));
        return;
      }
      case OP_PONG: {
        const data = this.#control.slice(0, frame.length);
        emit(() => this.#options.onPong?.(data));
        return;
      }
      case OP_CLOSE:
        return this.#onClose(this.#control.subarray(0, frame.length));
    }
    if (frame.opcode !== OP_CONTINUATION) this.#messageOpcode = frame.opcode;
    this.#messageSize += frame.length;
    if (!frame.fin) return;
    const data = this.#message.subarray(0, this.#messageSize);
    this.#messageOpcode = 0;
    this.#messageSize = 0;
    // Keep a small buffer for the next message; let a large one go.
    if (this.#message.length > KEPT_MESSAGE_BUFFER_BYTES) this.#message = new Uint8Array(0);
    let text: string;
    try {
      // Binary messages are read as UTF-8 too: the manager's protocol is JSON.
      text = utf8.decode(data);
    } catch {
      return this.#fail("invalid_utf8", 1007, "the server sent a message that is not valid UTF-8");
    }
    emit(() => this.#options.onMessage?.(text));
  }

  /** The server's close frame: echo it (unless ours went first), then drop the connection. */
  #onClose(payload: Uint8Array): void {
    let code = 1005;
    let reason = "";
    if (payload.length === 1) {
      return this.#fail("protocol", 1002, "the server sent a close frame with a 1-byte payload");
    }
    if (payload.length >= 2) {
      code = (payload[0] << 8) | payload[1];
      if (!isValidCloseCode(code)) {
        return this.#fail("protocol", 1002, `the server sent the invalid close code ${code}`);
      }
      try {
        reason = utf8.decode(payload.subarray(2));
      } catch {
        return this.#fail("invalid_utf8", 1007, "the server's close reason is not valid UTF-8");
      }
    }
    this.#discarding = true;
    this.#endCode = code;
    this.#endReason = reason;
    if (!this.#closeSent) this.#sendClose(code === 1005 ? 0 : code, "");
    // Both sides have closed once ours is written; the close timer bounds a stuck write.
    void this.#writer.then(() => this.#finish());
  }
}

/** Bytes needed for a frame header given what has been read (2 until the length byte is known). */
function headSize(head: Uint8Array, have: number): number {
  if (have < 2) return 2;
  const length = head[1] & 0x7f;
  return length === 127 ? 10 : length === 126 ? 4 : 2;
}

function payloadLength(head: Uint8Array): number {
  const length = head[1] & 0x7f;
  if (length === 126) return (head[2] << 8) | head[3];
  if (length < 126) return length;
  // Lengths past 2^53 lose precision but stay far above any maxPayload.
  let n = 0;
  for (let i = 2; i < 10; i++) n = n * 256 + head[i];
  return n;
}

/** A masked client frame (RFC 6455 5.3: clients must mask with a fresh random key). */
function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
  const length = payload.length;
  const extra = length < 126 ? 0 : length < 65536 ? 2 : 8;
  const frame = new Uint8Array(2 + extra + 4 + length);
  frame[0] = 0x80 | opcode;
  if (extra === 0) {
    frame[1] = 0x80 | length;
  } else if (extra === 2) {
    frame[1] = 0x80 | 126;
    frame[2] = length >> 8;
    frame[3] = length & 0xff;
  } else {
    frame[1] = 0x80 | 127;
    const view = new DataView(frame.buffer);
    view.setUint32(2, Math.floor(length / 2 ** 32));
    view.setUint32(6, length >>> 0);
  }
  const maskAt = 2 + extra;
  const mask = crypto.getRandomValues(frame.subarray(maskAt, maskAt + 4));
  const start = maskAt + 4;
  for (let i = 0; i < length; i++) frame[start + i] = payload[i] ^ mask[i & 3];
  return frame;
}

/** A close frame; code 0 sends none (the answer to a close frame that had none). */
function encodeClose(code: number, reason: string): Uint8Array {
  if (code === 0) return encodeFrame(OP_CLOSE, new Uint8Array(0));
  const text = encoder.encode(reason);
  const payload = new Uint8Array(2 + text.length);
  payload[0] = code >> 8;
  payload[1] = code & 0xff;
  payload.set(text, 2);
  return encodeFrame(OP_CLOSE, payload);
}

/** Codes a peer may send (RFC 6455 7.4; 1004-1006 and 1015 are never sent). */
function isValidCloseCode(code: number): boolean {
  return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
    (code >= 3000 && code <= 4999);
}

async function writeAll(stream: ByteStream, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await stream.write(data.subarray(offset));
}

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}

/** Runs an event handler; one that throws is reported like an uncaught error, not taken for a socket failure. */
function emit(handler: () => void): void {
  try {
    handler();
  } catch (err) {
    reportError(err);
  }
}

function closeQuietly(stream: ByteStream | undefined): void {
  try {
    stream?.close();
  } catch { /* already closed */ }
}

/** Classifies a connect, read or write failure (Deno errors and node error codes). */
function toWsError(err: unknown): WsError {
  if (err instanceof WsError) return err;
  const message = err instanceof Error ? err.message : String(err);
  const code = String((err as { code?: unknown } | null)?.code ?? "");
  const options = { cause: err };
  if (err instanceof Deno.errors.ConnectionRefused || code === "ECONNREFUSED") {
    return new WsError("refused", "connection refused", options);
  }
  if (
    code === "ENOTFOUND" || code === "EAI_AGAIN" || message.startsWith("failed to lookup address")
  ) {
    return new WsError("unresolved", "the host name could not be resolved", options);
  }
  if (code === "EHOSTUNREACH" || code === "ENETUNREACH") {
    return new WsError("unreachable", "no route to the host", options);
  }
  if (
    err instanceof Deno.errors.ConnectionReset || err instanceof Deno.errors.BrokenPipe ||
    code === "ECONNRESET" || code === "EPIPE"
  ) {
    return new WsError("reset", "the connection was reset", options);
  }
  if (err instanceof Deno.errors.TimedOut || code === "ETIMEDOUT") {
    return new WsError("network", "the connection timed out", options);
  }
  return new WsError("network", message, options);
}

/** What rustls (Deno) and OpenSSL (node:tls) say when the server's first bytes are not TLS. */
const PLAIN_TEXT_PEER =
  /InvalidContentType|corrupt message|wrong version number|packet length too long/i;

function plainTextPeer(message: string, cause: unknown): WsError {
  return new WsError("tls_plain", `the server does not speak TLS (${message})`, { cause });
}

/** Classifies a TLS handshake failure (rustls messages). */
function tlsError(err: unknown): WsError {
  const message = err instanceof Error ? err.message : String(err);
  const options = { cause: err };
  if (PLAIN_TEXT_PEER.test(message)) return plainTextPeer(message, err);
  if (!message.includes("invalid peer certificate")) {
    const network = toWsError(err);
    return network.kind === "network"
      ? new WsError("tls", `the TLS handshake failed (${message})`, options)
      : network;
  }
  if (/NotValidForName|not valid for name/.test(message)) {
    return new WsError(
      "tls_name",
      `the server's TLS certificate does not match its host name (${message})`,
      options,
    );
  }
  if (/Expired|NotValidYet|expired|not valid yet/.test(message)) {
    return new WsError(
      "tls_expired",
      `the server's TLS certificate is not valid now (${message})`,
      options,
    );
  }
  return new WsError(
    "tls_untrusted",
    `the server's TLS certificate is not trusted (${message})`,
    options,
  );
}

/**
 * TLS without certificate verification, for allow_unknown_certs: Deno's TLS
 * client always verifies, so this path uses node:tls, loaded only here so
 * the default path never pays for node-compat.
 */
async function connectUnverifiedTls(target: Target, signal: AbortSignal): Promise<ByteStream> {
  const tls = await import("node:tls");
  signal.throwIfAborted();
  const socket = tls.connect({
    host: target.hostname,
    port: target.port,
    // SNI carries names only; node warns when given an IP address.
    servername: /^[\d.]+$|:/.test(target.hostname) ? undefined : target.hostname,
    rejectUnauthorized: false,
  });
  socket.setNoDelay(true);
  const stream = new NodeSocketStream(socket);
  let abort = () => {};
  try {
    await new Promise<void>((resolve, reject) => {
      abort = () => reject(signal.reason);
      signal.addEventListener("abort", abort, { once: true });
      socket.once("secureConnect", () => resolve());
      socket.once("error", reject);
    });
  } catch (err) {
    stream.close();
    const message = err instanceof Error ? err.message : String(err);
    throw PLAIN_TEXT_PEER.test(message) ? plainTextPeer(message, err) : toWsError(err);
  } finally {
    signal.removeEventListener("abort", abort);
  }
  return stream;
}

/** A node socket as a pull-based ByteStream; the socket pauses while a chunk waits to be read. */
class NodeSocketStream implements ByteStream {
  #socket: TLSSocket;
  #chunks: Uint8Array[] = [];
  #ended = false;
  #error: unknown = null;
  #wake: (() => void) | null = null;

  constructor(socket: TLSSocket) {
    this.#socket = socket;
    socket.on("data", (chunk: Uint8Array) => {
      this.#chunks.push(chunk);
      socket.pause();
      this.#notify();
    });
    socket.on("end", () => this.#end());
    socket.on("close", () => this.#end());
    socket.on("error", (err: Error) => {
      this.#error ??= err;
      this.#notify();
    });
  }

  async read(buffer: Uint8Array): Promise<number | null> {
    while (this.#chunks.length === 0) {
      if (this.#error) throw this.#error;
      if (this.#ended) return null;
      await new Promise<void>((resolve) => this.#wake = resolve);
    }
    const chunk = this.#chunks[0];
    const n = Math.min(chunk.length, buffer.length);
    buffer.set(chunk.subarray(0, n));
    if (n === chunk.length) this.#chunks.shift();
    else this.#chunks[0] = chunk.subarray(n);
    if (this.#chunks.length === 0 && !this.#ended) this.#socket.resume();
    return n;
  }

  write(data: Uint8Array): Promise<number> {
    return new Promise((resolve, reject) => {
      this.#socket.write(data, (err?: Error | null) => err ? reject(err) : resolve(data.length));
    });
  }

  close(): void {
    this.#socket.destroy();
    this.#end();
  }

  #end(): void {
    this.#ended = true;
    this.#notify();
  }

  #notify(): void {
    const wake = this.#wake;
    this.#wake = null;
    wake?.();
  }
}
