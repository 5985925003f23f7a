/** Tests of lib/backoff.ts with an injected clock and random source. */
import assert from "node:assert/strict";
import { Backoff } from "../../lib/transport/backoff.ts";

/** A Backoff on a fake clock; `random` is what the jitter draws. */
function make(initialMs: number, maxMs: number, random = () => 0) {
  const clock = { now: 1_000_000 };
  const backoff = new Backoff({ initialMs, maxMs, now: () => clock.now, random: () => random() });
  return { backoff, clock };
}

Deno.test("backoff: the first attempt is immediate", () => {
  const { backoff } = make(1000, 300_000);
  assert.equal(backoff.delayMs(), 0);
});

Deno.test("backoff: without jitter the delays are 2, 4, 8 … x initial up to the maximum", () => {
  const { backoff, clock } = make(1000, 300_000);
  const waits: number[] = [];
  for (let i = 0; i < 11; i++) {
    waits.push(backoff.error());
    clock.now += waits.at(-1)!;
  }
  assert.deepEqual(waits, [2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300].map((s) => s * 1000));
});

Deno.test("backoff: jitter draws each wait from [0.8 d, d]", () => {
  for (const r of [0, 0.5, 0.999999]) {
    const { backoff, clock } = make(1000, 300_000, () => r);
    for (const d of [2000, 4000, 8000]) {
      const wait = backoff.error();
      assert.ok(wait <= d && wait >= 0.8 * d, `wait ${wait} for d ${d} and random ${r}`);
      assert.ok(Math.abs(wait - d * (1 - 0.2 * r)) < 1e-6);
      clock.now += wait;
    }
  }
});

Deno.test("backoff: a real random source stays within the bounds", () => {
  const { backoff, clock } = make(100, 1_000_000, Math.random);
  let d = 100;
  for (let i = 0; i < 12; i++) {
    d = Math.min(d * 2, 1_000_000);
    const wait = backoff.error();
    assert.ok(wait >= 0.8 * d && wait <= d);
    clock.now += wait;
  }
});

Deno.test("backoff: errors while still waiting only move the ready time later", () => {
  const { backoff, clock } = make(1000, 300_000);
  assert.equal(backoff.error(), 2000);
  clock.now += 500;
  // d = 4000 from now is later than the remaining 1500.
  assert.equal(backoff.error(), 4000);
});

Deno.test("backoff: activity resets the delay and makes the next attempt immediate", () => {
  const { backoff, clock } = make(1000, 300_000);
  backoff.error();
  backoff.error();
  clock.now += 10;
  backoff.activity();
  assert.equal(backoff.delayMs(), 0);
  assert.equal(backoff.error(), 2000);
});

Deno.test("backoff: a forced backoff is a lower bound that jitter and doubling never undercut", () => {
  const { backoff, clock } = make(10, 300_000, () => 0.999);
  backoff.force(60);
  assert.equal(backoff.delayMs(), 60_000);
  assert.equal(backoff.error(), 60_000);
  clock.now += 30_000;
  assert.equal(backoff.delayMs(), 30_000);
  // A longer exponential delay than the forced one still wins.
  const { backoff: b2 } = make(40_000, 300_000, () => 0);
  b2.force(1.5);
  assert.equal(b2.error(), 80_000);
});

Deno.test("backoff: setLimits applies new timings and clamps the current delay", () => {
  const { backoff, clock } = make(1000, 300_000);
  for (let i = 0; i < 5; i++) {
    clock.now += backoff.error();
  }
  backoff.setLimits(500, 10_000);
  assert.equal(backoff.error(), 10_000);
  backoff.activity();
  assert.equal(backoff.error(), 1000);
});
