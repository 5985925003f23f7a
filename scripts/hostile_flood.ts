/**
 * A flood of malformed, oversized and hostile frames at full speed, for the
 * bench and the tests: the shapes the fuzz tests use (broken JSON, stray
 * ACKs, unknown and invalid REQUESTs, hostile keys, long ids, deep nesting,
 * large payloads under the size limit), with heartbeat REQUESTs spread
 * through it to show the agent keeps answering.
 */
import type { DevManager, RequestResult } from "./dev_manager.ts";

/** Options of {@linkcode floodHostileFrames}. */
export interface FloodOptions {
  /** Hostile frames to send. */
  count: number;
  /** A heartbeat REQUEST goes out after every this many frames; default 10000. */
  heartbeatEvery?: number;
  /** Called every 10,000 frames (for RSS sampling). */
  onProgress?: (sent: number) => void | Promise<void>;
}

/** What a flood measured. */
export interface FloodResult {
  /** Seconds from the first frame to the last frame's answer. */
  seconds: number;
  /** Heartbeats sent during the flood and answered. */
  heartbeats: number;
  /** The slowest heartbeat answer during the flood, in ms. */
  slowestHeartbeatMs: number;
}

const BIG = "B".repeat(16 * 1024);
const DEEP = "[".repeat(5000) + "]".repeat(5000);

/** The i-th hostile frame, serialised. */
export function hostileFrame(i: number): string {
  switch (i % 12) {
    case 0:
      return "{broken";
    case 1:
      return JSON.stringify({ request_id: `stray-${i}`, type: "ACK" });
    case 2:
      return JSON.stringify({
        request_id: `unknown-${i}`,
        type: "REQUEST",
        payload: { command: "nope".repeat(50), arguments: {} },
      });
    case 3:
      return JSON.stringify({
        request_id: `badargs-${i}`,
        type: "REQUEST",
        payload: { command: "heartbeat", arguments: "x" },
      });
    case 4:
      return '{"__proto__":{"polluted":1},"constructor":{"prototype":{}},"type":"REQUEST",' +
        `"request_id":"proto-${i}","payload":{"command":"__proto__","arguments":{}}}`;
    case 5:
      return JSON.stringify({ request_id: `x${i}`.padEnd(2000, "x"), type: "BOGUS" });
    case 6:
      return DEEP;
    case 7:
      return JSON.stringify({
        request_id: `big-${i}`,
        type: "REQUEST",
        payload: { command: "nope", arguments: { blob: BIG } },
      });
    case 8:
      return "42";
    case 9:
      return JSON.stringify({ type: "NACK" });
    case 10:
      return JSON.stringify({ request_id: `status-${i}`, type: "STATUS" });
    default:
      return `{"type":"REQUEST","request_id":"${i}\\u0000\\ud800","payload":null}`;
  }
}

/**
 * Sends `count` hostile frames as fast as the manager can write them, with
 * heartbeats in between; resolves once the agent has answered the last one.
 */
export async function floodHostileFrames(
  manager: DevManager,
  options: FloodOptions,
): Promise<FloodResult> {
  const every = options.heartbeatEvery ?? 10_000;
  const beats: Promise<number>[] = [];
  const beat = () => {
    const t = performance.now();
    beats.push(
      manager.request("heartbeat", {}, { timeoutMs: 120_000 }).then((r: RequestResult) => {
        const code = (r.reply.payload as Record<string, unknown>).return_code;
        if (code !== 0) throw new Error(`a heartbeat during the flood failed: ${code}`);
        return performance.now() - t;
      }),
    );
  };
  const t0 = performance.now();
  for (let i = 0; i < options.count; i++) {
    manager.send(hostileFrame(i));
    if ((i + 1) % every === 0) beat();
    if ((i + 1) % 1000 === 0) {
      // Let the manager's event loop read the agent's NACKs, as a real peer would.
      await new Promise((r) => setTimeout(r, 0));
      if ((i + 1) % 10_000 === 0) await options.onProgress?.(i + 1);
    }
  }
  beat(); // answered after every frame before it
  const times = await Promise.all(beats);
  return {
    seconds: (performance.now() - t0) / 1000,
    heartbeats: times.length,
    slowestHeartbeatMs: Math.max(...times),
  };
}

/** Resident memory of a process in kB (VmRSS), 0 once it is gone. */
export function rssKb(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/^VmRSS:\s+(\d+)\s+kB/m.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Options of {@linkcode measureFlood}. */
export interface MeasureFloodOptions {
  /** Hostile frames to send. */
  count: number;
  /** Seconds of idle sampling before the flood (the idle figure is their peak); default 5. */
  idleSeconds?: number;
  /** Seconds to wait after the flood for memory to settle; default 30. */
  settleSeconds?: number;
  /** Stop waiting once RSS is at most this many times the idle figure. */
  settleRatio?: number;
}

/** RSS figures of a flood, in MB, and the ratios to the idle figure. */
export interface FloodMemory extends FloodResult {
  frames: number;
  frames_per_s: number;
  idle_rss_mb: number;
  /** The highest RSS seen from the first frame to the end of the flood. */
  peak_rss_mb: number;
  /** RSS once the last frame was answered. */
  after_rss_mb: number;
  /** The lowest RSS in the settling time after the flood. */
  settled_rss_mb: number;
  peak_ratio: number;
  settled_ratio: number;
}

const mb = (kb: number) => Math.round((kb / 1024) * 10) / 10;
const ratio = (a: number, b: number) => Math.round((a / b) * 100) / 100;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Measures the agent `pid` idle, under a hostile flood from `manager`, and settling after it. */
export async function measureFlood(
  manager: DevManager,
  pid: number,
  options: MeasureFloodOptions,
): Promise<FloodMemory> {
  let idle = 0;
  for (let i = 0; i < (options.idleSeconds ?? 5) * 4; i++) {
    idle = Math.max(idle, rssKb(pid));
    await sleep(250);
  }
  let peak = rssKb(pid);
  const sampler = setInterval(() => peak = Math.max(peak, rssKb(pid)), 50);
  let result: FloodResult;
  try {
    result = await floodHostileFrames(manager, { count: options.count });
  } finally {
    clearInterval(sampler);
  }
  const after = rssKb(pid);
  peak = Math.max(peak, after);
  let settled = after;
  for (let i = 0; i < (options.settleSeconds ?? 30) * 2; i++) {
    await sleep(500);
    settled = Math.min(settled, rssKb(pid));
    if (options.settleRatio && settled <= idle * options.settleRatio) break;
  }
  return {
    ...result,
    seconds: Math.round(result.seconds * 100) / 100,
    slowestHeartbeatMs: Math.round(result.slowestHeartbeatMs),
    frames: options.count,
    frames_per_s: Math.round(options.count / result.seconds),
    idle_rss_mb: mb(idle),
    peak_rss_mb: mb(peak),
    after_rss_mb: mb(after),
    settled_rss_mb: mb(settled),
    peak_ratio: ratio(peak, idle),
    settled_ratio: ratio(settled, idle),
  };
}
