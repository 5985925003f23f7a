/**
 * A small RFC 6455 websocket client over `Deno.connect` / `Deno.startTls`
 * for the manager connection: text messages, ping/pong, a bounded connect
 * and close, and a send queue whose size shows whether the peer still reads.
 *
 * Deno's built-in WebSocket cannot ping, has no connect timeout and its
 * close() waits for ever on a silent peer; npm `ws` costs ~14 MB of resident
 * memory for its node-compat layers. This client measured ~2 MB above the
 * built-in WebSocket, mostly WebCrypto's start-up for the accept check.
 *
 * This module is the client itself (state, send queue, ping, close); the
 * frame codec is ws_frame.ts, the HTTP upgrade ws_upgrade.ts, and the TCP and
 * TLS set-up ws_socket.ts.
 */
import {
  encodeClose,
  encodeFrame,
  FrameDecoder,
  MAX_CONTROL_PAYLOAD,
  OP_PING,
  OP_PONG,
  OP_TEXT,
} from "./ws_frame.ts";
import { toWsError, WsError, type WsErrorKind } from "./ws_error.ts";
import { type ByteStream, closeQuietly, openStream, parseTarget } from "./ws_socket.ts";
import { upgrade } from "./ws_upgrade.ts";
import { SendQueue } from "./ws_send_queue.ts";

export { WsError, type WsErrorKind } from "./ws_error.ts";

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
  /** Milliseconds the client waits, having stopped reading, for a peer that reads nothing before it drops the connection (default 10000). */
  stallTimeoutMs?: number;
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

const READ_BUFFER_BYTES = 64 * 1024;
const DEFAULT_CLOSE_TIMEOUT_MS = 1000;
const DEFAULT_STALL_TIMEOUT_MS = 10_000;
/**
 * Reading stops while more than this waits to be sent, and resumes below the
 * second figure: a peer that sends faster than it reads (each bad frame earns
 * a NACK) is slowed by TCP instead of growing the agent's memory.
 */
const READ_PAUSE_BYTES = 256 * 1024;
const READ_RESUME_BYTES = 64 * 1024;

const encoder = new TextEncoder();

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
    stream = await openStream(target, {
      caCerts: options.caCerts,
      checkHostname: options.checkHostname,
      allowUnknownCerts: options.allowUnknownCerts,
      signal: controller.signal,
    });
    controller.signal.throwIfAborted();
    const { protocol, rest } = await upgrade(stream, target, { protocol: options.protocol });
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

  /** Sending: frames are written in order, small ones batched. */
  #send: SendQueue;

  /** Parses what the server sends; stopped after a close frame, a failure or the end. */
  #decoder: FrameDecoder;

  constructor(stream: ByteStream, rest: Uint8Array, protocol: string, options: WsClientOptions) {
    this.#stream = stream;
    this.#options = options;
    this.protocol = protocol;
    this.closed = new Promise((resolve) => this.#resolveClosed = resolve);
    this.#send = new SendQueue(stream, (err) => this.#onWriteError(err));
    this.#decoder = new FrameDecoder({
      onMessage: (text) => emit(() => this.#options.onMessage?.(text)),
      onPing: (data) => {
        if (this.#state === "open") this.#enqueue(encodeFrame(OP_PONG, data));
        emit(() => this.#options.onPing?.(data));
      },
      onPong: (data) => emit(() => this.#options.onPong?.(data)),
      onClose: (code, reason) => this.#onClose(code, reason),
      onFail: (kind, code, message) => this.#fail(kind, code, message),
    }, options.maxPayload);
    this.#reader = this.#read(rest);
  }

  get readyState(): "open" | "closing" | "closed" {
    return this.#state;
  }

  get bufferedAmount(): number {
    return this.#send.bufferedAmount;
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
    this.#decoder.maxPayload = bytes;
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
    this.#decoder.stop();
    clearTimeout(this.#closeTimer);
    this.#send.close();
    closeQuietly(this.#stream);
    void Promise.all([this.#reader, this.#send.idle]).then(() => {
      emit(() => this.#options.onClose?.(this.#endCode, this.#endReason));
      this.#resolveClosed();
    });
  }

  /** The server's valid close frame: echo it (unless ours went first), then drop the connection. */
  #onClose(code: number, reason: string): void {
    this.#endCode = code;
    this.#endReason = reason;
    if (!this.#closeSent) this.#sendClose(code === 1005 ? 0 : code, "");
    // Both sides have closed once ours is written; the close timer bounds a stuck write.
    void this.#send.idle.then(() => this.#finish());
  }

  /** Reports a failure the decoder found (it reads nothing more) and tells the server with close `code`. */
  #fail(kind: WsErrorKind, code: number, message: string): void {
    if (this.#state === "closed") return;
    this.#endCode = code;
    this.#endReason = "";
    this.#sendClose(code, "");
    emit(() => this.#options.onError?.(new WsError(kind, message)));
  }

  #enqueue(frame: Uint8Array): void {
    this.#send.push(frame);
  }

  #onWriteError(err: unknown): void {
    if (this.#state === "closed") return;
    const error = toWsError(err);
    emit(() =>
      this.#options.onError?.(
        new WsError(error.kind, `cannot write to the websocket: ${error.message}`),
      )
    );
    this.#finish();
  }

  /** Waits while too much is queued for sending; false (and the connection dropped) if the peer reads nothing. */
  async #backpressure(): Promise<boolean> {
    if (this.#send.bufferedAmount <= READ_PAUSE_BYTES) return true;
    const stallMs = this.#options.stallTimeoutMs ?? DEFAULT_STALL_TIMEOUT_MS;
    if (await this.#send.drainTo(READ_RESUME_BYTES, stallMs)) return this.#state !== "closed";
    if (this.#state !== "closed") {
      const waiting = this.#send.bufferedAmount;
      emit(() =>
        this.#options.onError?.(
          new WsError(
            "timeout",
            `the manager stopped reading (${waiting} bytes waiting, none taken for ${
              stallMs / 1000
            } s)`,
          ),
        )
      );
      this.#finish();
    }
    return false;
  }

  async #read(rest: Uint8Array): Promise<void> {
    // Frames that came with the 101 response wait for a later task, so the
    // caller holds the client before the first event.
    await new Promise((resolve) => setTimeout(resolve, 0));
    if (rest.length > 0 && !this.#decoder.stopped) this.#decoder.push(rest);
    const buffer = new Uint8Array(READ_BUFFER_BYTES);
    while (this.#state !== "closed") {
      if (!await this.#backpressure()) return;
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
      if (!this.#decoder.stopped) this.#decoder.push(buffer.subarray(0, n));
    }
  }
}

/** Runs an event handler; one that throws is reported like an uncaught error, not taken for a socket failure. */
function emit(handler: () => void): void {
  try {
    handler();
  } catch (err) {
    reportError(err);
  }
}
