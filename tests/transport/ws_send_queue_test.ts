import assert from "node:assert/strict";
import { SendQueue } from "../../lib/transport/ws_send_queue.ts";
import type { ByteStream } from "../../lib/transport/ws_socket.ts";

/** A stream whose writes complete only when the test lets them. */
class SlowStream implements ByteStream {
  writes: Uint8Array[] = [];
  #release: (() => void)[] = [];
  read(): Promise<number | null> {
    return Promise.resolve(null);
  }
  write(data: Uint8Array): Promise<number> {
    this.writes.push(data.slice());
    return new Promise((resolve) => this.#release.push(() => resolve(data.length)));
  }
  close(): void {}
  /** Completes every write started so far. */
  flush(): void {
    for (const r of this.#release.splice(0)) r();
  }
}

const tick = () => new Promise((r) => setTimeout(r, 0));

Deno.test("send queue: small frames are joined into few writes, in order", async () => {
  const stream = new SlowStream();
  const q = new SendQueue(stream, (err) => {
    throw err;
  });
  const frames = Array.from({ length: 1000 }, (_, i) => new TextEncoder().encode(`frame ${i};`));
  for (const f of frames) q.push(f);
  const total = frames.reduce((n, f) => n + f.length, 0);
  assert.equal(q.bufferedAmount, total);
  while (q.bufferedAmount > 0) {
    stream.flush();
    await tick();
  }
  assert.ok(stream.writes.length <= 3, `${stream.writes.length} writes for 1000 frames`);
  const text = stream.writes.map((w) => new TextDecoder().decode(w)).join("");
  assert.equal(text, frames.map((f) => new TextDecoder().decode(f)).join(""));
});

Deno.test("send queue: drainTo waits for progress and gives up on a peer that takes nothing", async () => {
  const stream = new SlowStream();
  const q = new SendQueue(stream, () => {});
  q.push(new Uint8Array(100_000));
  q.push(new Uint8Array(10));
  const drained = q.drainTo(50, 5000);
  stream.flush();
  await tick();
  stream.flush();
  assert.equal(await drained, true);
  q.push(new Uint8Array(100_000));
  const t0 = performance.now();
  assert.equal(await q.drainTo(50, 100), false, "nothing was written for the stall time");
  assert.ok(performance.now() - t0 >= 90);
  q.close();
});
