/**
 * The HTTP/1.1 upgrade that opens a websocket: the GET request with a fresh
 * Sec-WebSocket-Key, and the checks on the server's 101 response (status,
 * Upgrade and Connection headers, Sec-WebSocket-Accept, no extension, the
 * subprotocol asked for or none).
 */
import { WsError } from "./ws_error.ts";
import { type ByteStream, type Target, writeAll } from "./ws_socket.ts";

const ACCEPT_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
/** A longer upgrade response is not a websocket server. */
const MAX_RESPONSE_HEAD_BYTES = 16 * 1024;

const encoder = new TextEncoder();

/** Sends the upgrade request and checks the 101 response; `rest` holds any frame bytes read with it. */
export async function upgrade(
  stream: ByteStream,
  target: Target,
  options: { protocol?: string } = {},
): Promise<{ protocol: string; rest: Uint8Array }> {
  const { protocol } = options;
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

function toBase64(bytes: Uint8Array): string {
  return btoa(String.fromCharCode(...bytes));
}
