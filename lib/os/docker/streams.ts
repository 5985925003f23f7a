/**
 * The two stream formats of the Engine: the multiplexed log stream (frames
 * with an 8-byte header: stream id, three zero bytes, big-endian length) and
 * the JSON-lines progress stream of pulls and imports.
 */

/** Text read from a stream, cut at `maxBytes` (then `truncated` is true). */
export interface StreamText {
  text: string;
  truncated: boolean;
}

/** Decodes a multiplexed log stream into text (stdout and stderr interleaved as sent). */
export function readMultiplexed(
  body: ReadableStream<Uint8Array>,
  options: { maxBytes: number },
): Promise<StreamText> {
  let pending: Uint8Array = new Uint8Array(0);
  return readCapped(body, options.maxBytes, (chunk) => {
    pending = concat(pending, chunk);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (pending.length - at >= 8) {
      const size = new DataView(pending.buffer, pending.byteOffset + at + 4, 4).getUint32(0);
      if (pending.length - at - 8 < size) break;
      frames.push(pending.subarray(at + 8, at + 8 + size));
      at += 8 + size;
    }
    pending = pending.slice(at);
    return frames;
  });
}

/** Reads a raw (TTY) log stream as text. */
export function readRaw(
  body: ReadableStream<Uint8Array>,
  options: { maxBytes: number },
): Promise<StreamText> {
  return readCapped(body, options.maxBytes, (chunk) => [chunk]);
}

/** Decodes the pieces `split` cuts from each chunk, up to `maxBytes`. */
async function readCapped(
  body: ReadableStream<Uint8Array>,
  maxBytes: number,
  split: (chunk: Uint8Array) => Uint8Array[],
): Promise<StreamText> {
  const decoder = new TextDecoder();
  let text = "";
  let bytes = 0;
  const reader = body.getReader();
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      for (const piece of split(value)) {
        if (bytes + piece.length > maxBytes) {
          text += decoder.decode(piece.subarray(0, maxBytes - bytes));
          return { text, truncated: true };
        }
        bytes += piece.length;
        text += decoder.decode(piece, { stream: true });
      }
    }
  } finally {
    await reader.cancel().catch(() => {});
  }
  return { text: text + decoder.decode(), truncated: false };
}

/** Yields each JSON document of a JSON-lines stream; a line that is not JSON is yielded as text. */
export async function* jsonLines(
  body: ReadableStream<Uint8Array>,
): AsyncGenerator<Record<string, unknown>> {
  const decoder = new TextDecoder();
  let buffered = "";
  const reader = body.getReader();
  const parse = (line: string): Record<string, unknown> | undefined => {
    const t = line.trim();
    if (t === "") return undefined;
    try {
      const doc = JSON.parse(t);
      return doc && typeof doc === "object" ? doc : { status: String(doc) };
    } catch {
      return { status: t };
    }
  };
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffered += decoder.decode(value, { stream: true });
      let nl: number;
      while ((nl = buffered.indexOf("\n")) >= 0) {
        const doc = parse(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 1);
        if (doc) yield doc;
      }
    }
    const last = parse(buffered + decoder.decode());
    if (last) yield last;
  } finally {
    await reader.cancel().catch(() => {});
  }
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b;
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}
