import assert from "node:assert/strict";
import { LogThrottle } from "../../lib/logging/throttle.ts";

Deno.test("log throttle: the first events of a period are logged, the rest counted once", () => {
  const summaries: number[] = [];
  const t = new LogThrottle({ burst: 3, periodMs: 1000, onSuppressed: (n) => summaries.push(n) });
  const allowed = Array.from({ length: 10 }, (_, i) => t.allow(i));
  assert.deepEqual(allowed, [true, true, true, false, false, false, false, false, false, false]);
  assert.deepEqual(summaries, [], "the summary waits for the end of the period");
  // The next period starts with a full burst and reports the last one's count.
  assert.equal(t.allow(1000), true);
  assert.deepEqual(summaries, [7]);
  assert.equal(t.allow(1001), true);
  assert.equal(t.allow(1002), true);
  assert.equal(t.allow(1003), false);
  assert.equal(t.allow(2500), true);
  assert.deepEqual(summaries, [7, 1]);
});

Deno.test("log throttle: the summary comes at the end of the period without a later event", async () => {
  const summaries: number[] = [];
  const t = new LogThrottle({ burst: 1, periodMs: 50, onSuppressed: (n) => summaries.push(n) });
  t.allow();
  t.allow();
  t.allow();
  await new Promise((r) => setTimeout(r, 120));
  assert.deepEqual(summaries, [2]);
});
