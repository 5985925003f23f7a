/**
 * The byte stream a websocket runs over: the target from a ws:// or wss://
 * URL, a TCP connection, and TLS on it (extra CA certificates, the host-name
 * check, or no verification at all for allow_unknown_certs), with TLS
 * failures sorted into kinds a user can act on.
 */
import type { TLSSocket } from "node:tls";
import { toWsError, WsError } from "./ws_error.ts";

/** The byte stream a websocket runs over: a Deno connection or the node:tls adapter. */
export interface ByteStream {
  read(buffer: Uint8Array): Promise<number | null>;
  write(data: Uint8Array): Promise<number>;
  close(): void;
}

/** Where a websocket URL points. */
export interface Target {
  secure: boolean;
  /** Host name or IP address to connect to (no IPv6 brackets). */
  hostname: string;
  port: number;
  /** The Host header: host, plus the port unless it is the scheme's default. */
  host: string;
  /** Path and query for the request line. */
  path: string;
}

/** TLS settings for wss://, and the signal that abandons the connect. */
export interface StreamOptions {
  /** PEM CA certificates trusted in addition to the built-in roots. */
  caCerts?: string[];
  /** Verify that the certificate matches the host name (default true); the chain is verified either way. */
  checkHostname?: boolean;
  /** Accept any certificate without verification (insecure; loads node:tls on first use). */
  allowUnknownCerts?: boolean;
  /** Stops every step of the connect. */
  signal: AbortSignal;
}

/** Parses a ws:// or wss:// URL; throws a WsError of kind "url" for anything else. */
export function parseTarget(url: string): Target {
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

/** TCP, then TLS unless ws://; every step stops when `options.signal` aborts. */
export async function openStream(target: Target, options: StreamOptions): Promise<ByteStream> {
  const { signal } = options;
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

/** Writes all of `data`, however many writes it takes. */
export async function writeAll(stream: ByteStream, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await stream.write(data.subarray(offset));
}

/** Closes a stream, ignoring one that is already closed. */
export function closeQuietly(stream: ByteStream | undefined): void {
  try {
    stream?.close();
  } catch { /* already closed */ }
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
