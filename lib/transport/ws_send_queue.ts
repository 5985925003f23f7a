/**
 * The websocket client's send queue: frames are written in order, many small
 * ones joined into one write (a flood of bad frames earns as many NACKs, and a
 * write per NACK let the queue, and memory, grow faster than the socket took
 * it), and readers can wait until the queue has drained, which is how the
 * client stops reading from a peer that sends faster than it reads.
 */
import type { ByteStream } from "./ws_socket.ts";

/** Frames smaller than this are joined into writes of up to this size. */
const BATCH_BYTES = 64 * 1024;

/** Ordered, batched writes of encoded frames to a stream. */
export class SendQueue {
  #stream: ByteStream;
  #queue: Uint8Array[] = [];
  #queuedBytes = 0;
  #writing = false;
  #idle: Promise<void> = Promise.resolve();
  #closed = false;
  #onError: (err: unknown) => void;
  /** performance.now() of the last write that made progress. */
  #progressAt = performance.now();
  #progress: (() => void) | null = null;

  constructor(stream: ByteStream, onError: (err: unknown) => void) {
    this.#stream = stream;
    this.#onError = onError;
  }

  /** Bytes queued and not yet written to the socket. */
  get bufferedAmount(): number {
    return this.#queuedBytes;
  }

  /** Resolves once the writer has stopped (queue empty, closed or failed). */
  get idle(): Promise<void> {
    return this.#idle;
  }

  /** Queues an encoded frame. */
  push(frame: Uint8Array): void {
    if (this.#closed) return;
    this.#queue.push(frame);
    this.#queuedBytes += frame.length;
    if (this.#writing) return;
    this.#writing = true;
    this.#idle = this.#write();
  }

  /** Stops writing; what is queued is dropped. */
  close(): void {
    this.#closed = true;
    this.#queue = [];
    this.#wake();
  }

  /**
   * Waits until at most `bytes` are queued. Resolves false if nothing was
   * written for `stallMs` meanwhile (the peer stopped reading), true otherwise.
   */
  async drainTo(bytes: number, stallMs: number): Promise<boolean> {
    while (this.#queuedBytes > bytes && !this.#closed) {
      const waited = performance.now() - this.#progressAt;
      if (waited >= stallMs) return false;
      let timer: ReturnType<typeof setTimeout> | undefined;
      await new Promise<void>((resolve) => {
        this.#progress = resolve;
        timer = setTimeout(resolve, stallMs - waited);
      });
      clearTimeout(timer);
    }
    return true;
  }

  async #write(): Promise<void> {
    try {
      while (this.#queue.length > 0 && !this.#closed) {
        const batch = this.#takeBatch();
        let offset = 0;
        while (offset < batch.length) {
          const n = await this.#stream.write(batch.subarray(offset));
          offset += n;
          this.#queuedBytes -= n;
          this.#progressAt = performance.now();
          this.#wake();
        }
      }
    } catch (err) {
      if (!this.#closed) this.#onError(err);
    } finally {
      this.#writing = false;
    }
  }

  /** Takes the next frame, or several small ones joined, off the queue. */
  #takeBatch(): Uint8Array {
    const first = this.#queue[0];
    if (first.length >= BATCH_BYTES || this.#queue.length === 1) return this.#queue.shift()!;
    let size = 0;
    let count = 0;
    for (const f of this.#queue) {
      if (size + f.length > BATCH_BYTES) break;
      size += f.length;
      count++;
    }
    const batch = new Uint8Array(size);
    let at = 0;
    for (const f of this.#queue.splice(0, count)) {
      batch.set(f, at);
      at += f.length;
    }
    return batch;
  }

  #wake(): void {
    const wake = this.#progress;
    this.#progress = null;
    wake?.();
  }
}
