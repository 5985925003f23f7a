/**
 * The websocket frame codec of a client (RFC 6455): masked frames out, and a
 * decoder for the server's frames that checks the framing rules, reassembles
 * fragmented messages up to a size limit, decodes UTF-8 and validates close
 * codes. It does no I/O: the client feeds it bytes and acts on its events.
 */
import type { WsErrorKind } from "./ws_error.ts";

/** The largest payload of a ping, pong or close frame. */
export const MAX_CONTROL_PAYLOAD = 125;
/** Message buffers up to this size are reused; larger ones are freed after their message. */
const KEPT_MESSAGE_BUFFER_BYTES = 64 * 1024;

const OP_CONTINUATION = 0x0;
/** Opcode of a text frame. */
export const OP_TEXT = 0x1;
const OP_BINARY = 0x2;
const OP_CLOSE = 0x8;
/** Opcode of a ping frame. */
export const OP_PING = 0x9;
/** Opcode of a pong frame. */
export const OP_PONG = 0xa;

const encoder = new TextEncoder();
/** Fatal: invalid UTF-8 must fail the connection (RFC 6455 8.1); BOMs are content. */
const utf8 = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/** A frame whose header has been read. */
interface Frame {
  fin: boolean;
  opcode: number;
  length: number;
  /** Payload bytes still to come. */
  remaining: number;
}

/** What the decoder found; called synchronously from {@linkcode FrameDecoder.push}. */
export interface FrameEvents {
  /** A complete text (or binary, decoded as UTF-8) message. */
  onMessage(text: string): void;
  /** A ping with its data. */
  onPing(data: Uint8Array): void;
  /** A pong with its data. */
  onPong(data: Uint8Array): void;
  /** A valid close frame (code 1005 when it carried none); the decoder has stopped. */
  onClose(code: number, reason: string): void;
  /** The server broke the rules; the connection must be closed with `code`. The decoder has stopped. */
  onFail(kind: WsErrorKind, code: number, message: string): void;
}

/** Parses the server's frames out of the bytes pushed into it, across reads. */
export class FrameDecoder {
  /** Largest message accepted, after reassembling fragments; may change between messages. */
  maxPayload: number;
  #events: FrameEvents;
  /** After a close frame or a failure nothing more is parsed. */
  #stopped = false;
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

  constructor(events: FrameEvents, maxPayload: number) {
    this.#events = events;
    this.maxPayload = maxPayload;
  }

  /** True once a close frame or a failure was read, or stop() was called. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Parses nothing more (the connection is closing or gone). */
  stop(): void {
    this.#stopped = true;
  }

  /** Parses frames out of `bytes`, keeping partial headers and payloads for the next push. */
  push(bytes: Uint8Array): void {
    let offset = 0;
    while (offset < bytes.length && !this.#stopped) {
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
      Math.min(this.maxPayload, Math.max(size, this.#message.length * 2)),
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
      if (this.#messageSize + length > this.maxPayload) {
        return this.#fail(
          "too_large",
          1009,
          `the server sent a message of at least ${this.#messageSize + length} bytes; ` +
            `the limit is ${this.maxPayload}`,
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
        this.#events.onPing(this.#control.slice(0, frame.length));
        return;
      }
      case OP_PONG: {
        this.#events.onPong(this.#control.slice(0, frame.length));
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
    this.#events.onMessage(text);
  }

  /** The server's close frame: checks its code and reason; the client echoes it and drops the connection. */
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
    this.#stopped = true;
    this.#events.onClose(code, reason);
  }

  /** Stops parsing and reports a broken rule, to be answered with close `code`. */
  #fail(kind: WsErrorKind, code: number, message: string): void {
    this.#stopped = true;
    this.#events.onFail(kind, code, message);
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
export function encodeFrame(opcode: number, payload: Uint8Array): Uint8Array {
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
export function encodeClose(code: number, reason: string): Uint8Array {
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
