/**
 * System-stat collectors. `init_system_stat` creates a
 * named collector that samples one statistic every `checkInterval` seconds
 * and keeps the newest `holdCount` samples; `get_system_stat` reads them.
 * Collectors are timer chains on the event loop, kept in memory only, and
 * all stopped at shutdown.
 */
import type { StatOptions, StatRegistryLike } from "../../lib/core/mod.ts";
import {
  cpuBusyFraction,
  type CpuTimes,
  type DiskCounters,
  type NetCounters,
  type ProcOptions,
  readCpuTimes,
  readDiskCounters,
  readNetCounters,
} from "../../lib/os/mod.ts";

/** One sample: "timestamp" (float epoch seconds) plus the statistic's fields. */
export type StatSample = Record<string, number>;

/** Smallest accepted checkInterval in seconds; the original's own test uses 0.1. */
const MIN_CHECK_INTERVAL = 0.1;
/** Largest accepted checkInterval (one day); longer timer delays overflow to "at once". */
const MAX_CHECK_INTERVAL = 86400;
/** Largest accepted holdCount of one collector. */
export const MAX_HOLD_COUNT = 10000;
/** Longest accepted statName. */
const MAX_STAT_NAME_LENGTH = 256;

/** Options of {@linkcode StatRegistry}. */
export interface StatRegistryOptions extends ProcOptions {
  /** At most this many collectors at once (default 100). */
  maxCollectors?: number;
  /**
   * At most this many samples summed over the holdCounts of all collectors
   * (default 100000, a few tens of MB at worst), so a manager cannot make the
   * agent hold 100 × 10000 samples.
   */
  maxTotalSamples?: number;
}

/** Computes the fields of one sample; called once per interval. */
type Sampler = () => Record<string, number>;

/** A statType: its reply_type and how to build its sampler. */
interface StatKind {
  replyType: string;
  /** Takes the baseline reading now (so unreadable counters fail init) and returns the sampler. */
  start(checkInterval: number, proc: ProcOptions): Sampler;
}

/** The stat types, in the original agent's order. */
const KINDS: Record<string, StatKind> = {
  "cpu-idle": {
    replyType: "cpu_idle_stat_array",
    start: (_interval, proc) => cpuSampler(proc, (busy) => ({ "cpu-idle": 1 - busy })),
  },
  "system-stats": {
    replyType: "system_info_stat_array",
    start: (_interval, proc) =>
      cpuSampler(proc, (busy) => {
        const disk = readDiskCounters(proc);
        const net = readNetCounters(proc);
        return {
          "cpu-load": busy,
          "disk-read-ops": disk.readOps,
          "disk-write-ops": disk.writeOps,
          "disk-read-bytes": disk.readBytes,
          "disk-write-bytes": disk.writeBytes,
          "net-bytes-in": net.bytesIn,
          "net-bytes-out": net.bytesOut,
        };
      }),
  },
  "disk-read-ops": diskRate("disk-read-ops", "readOps"),
  "disk-write-ops": diskRate("disk-write-ops", "writeOps"),
  "disk-read-bytes": diskRate("disk-read-bytes", "readBytes"),
  "disk-write-bytes": diskRate("disk-write-bytes", "writeBytes"),
  "net-bytes-in": netRate("net-bytes-in", "bytesIn"),
  "net-bytes-out": netRate("net-bytes-out", "bytesOut"),
};

/** The eight statType names init_system_stat accepts. */
export const STAT_TYPES: readonly string[] = Object.keys(KINDS);

/** A sampler over the CPU busy fraction since the previous reading. */
function cpuSampler(proc: ProcOptions, fields: (busy: number) => Record<string, number>): Sampler {
  let previous: CpuTimes = readCpuTimes(proc);
  return () => {
    const current = readCpuTimes(proc);
    const busy = cpuBusyFraction(previous, current);
    previous = current;
    return fields(busy);
  };
}

/**
 * A per-second rate of one cumulative counter over the nominal interval, as
 * the original computed it. The reading taken at init is only the baseline,
 * so the first sample comes one interval later. A counter that went
 * backwards (a disk or interface was removed) gives 0, not a negative rate.
 */
function rateKind(key: string, read: (proc: ProcOptions) => number): StatKind {
  return {
    replyType: `${key.replaceAll("-", "_")}_stat_array`,
    start: (interval, proc) => {
      let previous = read(proc);
      return () => {
        const current = read(proc);
        const rate = Math.max(0, current - previous) / interval;
        previous = current;
        return { [key]: rate };
      };
    },
  };
}

function diskRate(key: string, field: keyof DiskCounters): StatKind {
  return rateKind(key, (p) => readDiskCounters(p)[field]);
}

function netRate(key: string, field: keyof NetCounters): StatKind {
  return rateKind(key, (p) => readNetCounters(p)[field]);
}

/** One running collector: a timer chain filling a ring of samples. */
class Collector {
  readonly replyType: string;
  readonly holdCount: number;
  #ring: StatSample[] = [];
  /** Index in #ring of the oldest sample once the ring is full. */
  #oldest = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #stopped = false;
  #error: string | undefined;
  #intervalMs: number;
  #deadline: number;
  #sampler: Sampler;

  constructor(options: StatOptions, kind: StatKind, proc: ProcOptions) {
    this.replyType = kind.replyType;
    this.holdCount = options.holdCount;
    this.#intervalMs = options.checkInterval * 1000;
    this.#sampler = kind.start(options.checkInterval, proc);
    this.#deadline = performance.now() + this.#intervalMs;
    this.#schedule();
  }

  /** The held samples, oldest first, as copies. */
  samples(statName: string): StatSample[] {
    if (this.#error !== undefined) {
      throw new Error(
        `system stat '${statName}' stopped: ${this.#error}; delete it with ` +
          "delete_system_stat and create it again",
      );
    }
    const ordered = [...this.#ring.slice(this.#oldest), ...this.#ring.slice(0, this.#oldest)];
    return ordered.map((s) => ({ ...s }));
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  #schedule(): void {
    const timer = setTimeout(() => this.#tick(), Math.max(0, this.#deadline - performance.now()));
    // A collector must never be what keeps the agent process alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #tick(): void {
    if (this.#stopped) return;
    let sample: StatSample;
    try {
      sample = { timestamp: Date.now() / 1000, ...this.#sampler() };
    } catch (err) {
      // A timer callback that throws would kill the agent; keep the reason for get.
      this.#error = (err as Error).message;
      this.stop();
      return;
    }
    this.#push(sample);
    // Keep a steady cadence from the start time, but after a long stall (a
    // paused VM) restart it rather than firing the missed ticks back to back.
    const now = performance.now();
    this.#deadline += this.#intervalMs;
    if (this.#deadline <= now) this.#deadline = now + this.#intervalMs;
    this.#schedule();
  }

  #push(sample: StatSample): void {
    if (this.#ring.length < this.holdCount) {
      this.#ring.push(sample);
      return;
    }
    this.#ring[this.#oldest] = sample;
    this.#oldest = (this.#oldest + 1) % this.holdCount;
  }
}

/** The collectors of one agent process, by statName. */
export class StatRegistry implements StatRegistryLike {
  #collectors = new Map<string, Collector>();
  #proc: ProcOptions;
  #maxCollectors: number;
  #maxTotalSamples: number;

  constructor(options: StatRegistryOptions = {}) {
    this.#proc = { procRoot: options.procRoot };
    this.#maxCollectors = options.maxCollectors ?? 100;
    this.#maxTotalSamples = options.maxTotalSamples ?? 100000;
  }

  /** The number of collectors. */
  get size(): number {
    return this.#collectors.size;
  }

  /** Validates the options and starts a collector; throws Error with a clear text. */
  init(options: StatOptions): void {
    const { statType, statName, holdCount, checkInterval } = options;
    const kind = Object.hasOwn(KINDS, statType) ? KINDS[statType] : undefined;
    if (kind === undefined) {
      throw new Error(`unknown statType '${statType}'; use one of ${STAT_TYPES.join(", ")}`);
    }
    if (typeof statName !== "string" || statName === "") {
      throw new Error("statName must be a non-empty string");
    }
    if (statName.length > MAX_STAT_NAME_LENGTH) {
      throw new Error(
        `statName is longer than ${MAX_STAT_NAME_LENGTH} characters; use a shorter name`,
      );
    }
    if (this.#collectors.has(statName)) {
      throw new Error(
        `a system stat named '${statName}' already exists; delete it with delete_system_stat ` +
          "first or choose another statName",
      );
    }
    if (!Number.isInteger(holdCount) || holdCount < 1 || holdCount > MAX_HOLD_COUNT) {
      throw new Error(
        `holdCount must be a whole number from 1 to ${MAX_HOLD_COUNT}, not ${holdCount}`,
      );
    }
    if (
      !Number.isFinite(checkInterval) || checkInterval < MIN_CHECK_INTERVAL ||
      checkInterval > MAX_CHECK_INTERVAL
    ) {
      throw new Error(
        `checkInterval must be from ${MIN_CHECK_INTERVAL} to ${MAX_CHECK_INTERVAL} seconds, ` +
          `not ${checkInterval}`,
      );
    }
    if (this.#collectors.size >= this.#maxCollectors) {
      throw new Error(
        `there are already ${this.#collectors.size} system stats, the most allowed; ` +
          "delete one with delete_system_stat first",
      );
    }
    const held = [...this.#collectors.values()].reduce((sum, c) => sum + c.holdCount, 0);
    if (held + holdCount > this.#maxTotalSamples) {
      throw new Error(
        `holdCount ${holdCount} would make the system stats hold more than ` +
          `${this.#maxTotalSamples} samples in total (${held} already); use a smaller ` +
          "holdCount or delete a stat with delete_system_stat",
      );
    }
    this.#collectors.set(statName, new Collector(options, kind, this.#proc));
  }

  /** The reply_type and a copy of the held samples, oldest first. */
  get(statName: string): { replyType: string; samples: StatSample[] } {
    const collector = this.#find(statName);
    return { replyType: collector.replyType, samples: collector.samples(statName) };
  }

  /** Stops and removes a collector. */
  delete(statName: string): void {
    this.#find(statName).stop();
    this.#collectors.delete(statName);
  }

  /** Stops and removes every collector (agent shutdown). */
  stopAll(): void {
    for (const collector of this.#collectors.values()) collector.stop();
    this.#collectors.clear();
  }

  #find(statName: string): Collector {
    const collector = this.#collectors.get(statName);
    if (collector === undefined) {
      throw new Error(
        `there is no system stat named '${statName}'; create it with init_system_stat first`,
      );
    }
    return collector;
  }
}
