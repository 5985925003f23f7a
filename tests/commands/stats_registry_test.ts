import assert from "node:assert/strict";
import deleteSystemStat from "../../commands/stats/delete_system_stat.ts";
import getAgentData from "../../commands/agent/get_agent_data.ts";
import getSystemStat from "../../commands/stats/get_system_stat.ts";
import initSystemStat from "../../commands/stats/init_system_stat.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import {
  MAX_HOLD_COUNT,
  STAT_TYPES,
  StatRegistry,
  type StatSample,
} from "../../commands/stats/registry.ts";
import { makeTestContext } from "../helpers/context.ts";

/**
 * Deno 2 leaves the op sanitizer off by default; these tests turn it on so
 * that a collector timer left running fails the test that started it.
 */
function test(name: string, fn: () => void | Promise<void>): void {
  Deno.test({ name, fn, sanitizeOps: true, sanitizeResources: true });
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Polls until `ready()` holds; fails after `limitMs`. */
async function waitFor(what: string, ready: () => boolean, limitMs = 3000): Promise<void> {
  const end = performance.now() + limitMs;
  while (!ready()) {
    if (performance.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(10);
  }
}

/** A temporary fake proc root, removed when the `using` scope ends. */
interface FakeProc extends Disposable {
  root: string;
  /** Rewrites the counter files. */
  write(counters: Counters): void;
}

/** The counters a fake proc root reports. */
interface Counters {
  /** user and idle ticks of the aggregate cpu line. */
  user: number;
  idle: number;
  readOps: number;
  readSectors: number;
  writeOps: number;
  writeSectors: number;
  bytesIn: number;
  bytesOut: number;
}

function fakeProc(counters: Counters): FakeProc {
  const root = Deno.makeTempDirSync({ prefix: "fake_proc_" });
  Deno.mkdirSync(`${root}/net`);
  const write = (c: Counters) => {
    Deno.writeTextFileSync(`${root}/stat`, `cpu  ${c.user} 0 0 ${c.idle} 0 0 0 0 0 0\n`);
    // A partition and a loop device that must not be counted.
    Deno.writeTextFileSync(
      `${root}/diskstats`,
      `   8 0 sda ${c.readOps} 0 ${c.readSectors} 0 ${c.writeOps} 0 ${c.writeSectors} 0 0 0 0\n` +
        `   8 1 sda1 7 0 7 0 7 0 7 0 0 0 0\n   7 0 loop0 9 0 9 0 9 0 9 0 0 0 0\n`,
    );
    Deno.writeTextFileSync(
      `${root}/net/dev`,
      "Inter-| header\n face |bytes\n" +
        "    lo: 5 0 0 0 0 0 0 0 5 0 0 0 0 0 0 0\n" +
        `  eth0: ${c.bytesIn} 0 0 0 0 0 0 0 ${c.bytesOut} 0 0 0 0 0 0 0\n`,
    );
  };
  write(counters);
  return { root, write, [Symbol.dispose]: () => Deno.removeSync(root, { recursive: true }) };
}

const BASE: Counters = {
  user: 1000,
  idle: 9000,
  readOps: 100,
  readSectors: 1000,
  writeOps: 200,
  writeSectors: 2000,
  bytesIn: 10000,
  bytesOut: 20000,
};

const EXPECTED: Record<string, { replyType: string; keys: string[] }> = {
  "cpu-idle": { replyType: "cpu_idle_stat_array", keys: ["timestamp", "cpu-idle"] },
  "system-stats": {
    replyType: "system_info_stat_array",
    keys: [
      "timestamp",
      "cpu-load",
      "disk-read-ops",
      "disk-write-ops",
      "disk-read-bytes",
      "disk-write-bytes",
      "net-bytes-in",
      "net-bytes-out",
    ],
  },
  "disk-read-ops": { replyType: "disk_read_ops_stat_array", keys: ["timestamp", "disk-read-ops"] },
  "disk-write-ops": {
    replyType: "disk_write_ops_stat_array",
    keys: ["timestamp", "disk-write-ops"],
  },
  "disk-read-bytes": {
    replyType: "disk_read_bytes_stat_array",
    keys: ["timestamp", "disk-read-bytes"],
  },
  "disk-write-bytes": {
    replyType: "disk_write_bytes_stat_array",
    keys: ["timestamp", "disk-write-bytes"],
  },
  "net-bytes-in": { replyType: "net_bytes_in_stat_array", keys: ["timestamp", "net-bytes-in"] },
  "net-bytes-out": { replyType: "net_bytes_out_stat_array", keys: ["timestamp", "net-bytes-out"] },
};

test("the eight statTypes give samples with the original's keys and reply_types (real /proc)", async () => {
  assert.deepEqual([...STAT_TYPES].sort(), Object.keys(EXPECTED).sort());
  const stats = new StatRegistry();
  try {
    for (const statType of STAT_TYPES) {
      stats.init({ statType, statName: `s-${statType}`, holdCount: 5, checkInterval: 0.1 });
    }
    await waitFor(
      "one sample of every type",
      () => STAT_TYPES.every((t) => stats.get(`s-${t}`).samples.length > 0),
    );
    const now = Date.now() / 1000;
    for (const statType of STAT_TYPES) {
      const { replyType, samples } = stats.get(`s-${statType}`);
      assert.equal(replyType, EXPECTED[statType].replyType);
      for (const sample of samples) {
        assert.deepEqual(Object.keys(sample), EXPECTED[statType].keys, statType);
        assert.ok(Math.abs(sample.timestamp - now) < 5, "timestamps are epoch seconds");
        for (const [key, value] of Object.entries(sample)) {
          assert.ok(Number.isFinite(value) && value >= 0, `${statType} ${key} = ${value}`);
          if (key.startsWith("cpu-")) assert.ok(value <= 1, `${key} is a fraction`);
        }
      }
    }
  } finally {
    stats.stopAll();
  }
});

test("after checkInterval × (holdCount + 1) at 0.1 s there are holdCount cpu-idle samples", async () => {
  const stats = new StatRegistry();
  try {
    stats.init({ statType: "cpu-idle", statName: "idle", holdCount: 3, checkInterval: 0.1 });
    await sleep(0.1 * (3 + 1) * 1000);
    const { samples } = stats.get("idle");
    assert.equal(samples.length, 3);
    for (let i = 1; i < samples.length; i++) {
      assert.ok(samples[i].timestamp > samples[i - 1].timestamp, "oldest first, newest last");
    }
  } finally {
    stats.stopAll();
  }
});

test("rates are (counter − previous) / checkInterval; system-stats reports cumulative counters", async () => {
  using proc = fakeProc(BASE);
  const stats = new StatRegistry({ procRoot: proc.root });
  try {
    for (const statType of STAT_TYPES) {
      stats.init({ statType, statName: statType, holdCount: 10, checkInterval: 0.2 });
    }
    // init took the baseline; these are the counters at the first tick.
    const next: Counters = {
      user: BASE.user + 100,
      idle: BASE.idle + 300,
      readOps: BASE.readOps + 50,
      readSectors: BASE.readSectors + 100,
      writeOps: BASE.writeOps + 10,
      writeSectors: BASE.writeSectors + 20,
      bytesIn: BASE.bytesIn + 1000,
      bytesOut: BASE.bytesOut + 3000,
    };
    proc.write(next);
    await waitFor(
      "the first sample of every type",
      () => STAT_TYPES.every((t) => stats.get(t).samples.length > 0),
    );
    const first = (statType: string): StatSample => stats.get(statType).samples[0];
    assert.equal(first("cpu-idle")["cpu-idle"], 0.75);
    assert.equal(first("disk-read-ops")["disk-read-ops"], 50 / 0.2);
    assert.equal(first("disk-write-ops")["disk-write-ops"], 10 / 0.2);
    assert.equal(first("disk-read-bytes")["disk-read-bytes"], (100 * 512) / 0.2);
    assert.equal(first("disk-write-bytes")["disk-write-bytes"], (20 * 512) / 0.2);
    assert.equal(first("net-bytes-in")["net-bytes-in"], 1000 / 0.2);
    assert.equal(first("net-bytes-out")["net-bytes-out"], 3000 / 0.2);
    const { timestamp, ...system } = first("system-stats");
    assert.ok(timestamp > 0);
    assert.deepEqual(system, {
      "cpu-load": 0.25,
      "disk-read-ops": next.readOps,
      "disk-write-ops": next.writeOps,
      "disk-read-bytes": next.readSectors * 512,
      "disk-write-bytes": next.writeSectors * 512,
      "net-bytes-in": next.bytesIn,
      "net-bytes-out": next.bytesOut,
    });
  } finally {
    stats.stopAll();
  }
});

test("a counter that went backwards gives a rate of 0, not a negative one", async () => {
  using proc = fakeProc(BASE);
  const stats = new StatRegistry({ procRoot: proc.root });
  try {
    stats.init({ statType: "net-bytes-in", statName: "in", holdCount: 1, checkInterval: 0.1 });
    proc.write({ ...BASE, bytesIn: 10 });
    await waitFor("a sample", () => stats.get("in").samples.length > 0);
    assert.equal(stats.get("in").samples[0]["net-bytes-in"], 0);
  } finally {
    stats.stopAll();
  }
});

test("the ring keeps the newest holdCount samples and get returns a copy", async () => {
  using proc = fakeProc(BASE);
  const stats = new StatRegistry({ procRoot: proc.root });
  try {
    stats.init({ statType: "cpu-idle", statName: "ring", holdCount: 2, checkInterval: 0.1 });
    const seen: number[] = [];
    await waitFor("five ticks", () => {
      for (const s of stats.get("ring").samples) {
        if (!seen.includes(s.timestamp)) seen.push(s.timestamp);
      }
      return seen.length >= 5;
    });
    const { samples } = stats.get("ring");
    assert.equal(samples.length, 2);
    assert.ok(samples[0].timestamp < samples[1].timestamp, "newest last");
    assert.ok(samples[0].timestamp >= seen[seen.length - 2], "the oldest samples were dropped");
    samples[0]["cpu-idle"] = 42;
    samples.pop();
    const again = stats.get("ring").samples;
    assert.ok(again.length === 2 && again[0]["cpu-idle"] !== 42);
  } finally {
    stats.stopAll();
  }
});

test("duplicate and unknown names are errors that say what to do", () => {
  const stats = new StatRegistry();
  try {
    stats.init({ statType: "cpu-idle", statName: "a", holdCount: 1, checkInterval: 60 });
    assert.throws(
      () => stats.init({ statType: "net-bytes-in", statName: "a", holdCount: 1, checkInterval: 1 }),
      /a system stat named 'a' already exists; delete it with delete_system_stat first/,
    );
    const unknown = {
      message: "there is no system stat named 'x'; create it with init_system_stat first",
    };
    assert.throws(() => stats.get("x"), unknown);
    assert.throws(() => stats.delete("x"), unknown);
    stats.delete("a");
    assert.equal(stats.size, 0);
    assert.throws(() => stats.get("a"), /no system stat named 'a'/);
    // The name is free again.
    stats.init({ statType: "cpu-idle", statName: "a", holdCount: 1, checkInterval: 60 });
    assert.equal(stats.size, 1);
  } finally {
    stats.stopAll();
  }
});

test("hostile options are rejected with clear messages", () => {
  const stats = new StatRegistry({ maxCollectors: 3, maxTotalSamples: 15000 });
  const ok = { statType: "cpu-idle", statName: "n", holdCount: 1, checkInterval: 1 };
  try {
    const bad: [Partial<typeof ok>, RegExp][] = [
      [{ statType: "cpu-busy" }, /unknown statType 'cpu-busy'; use one of cpu-idle, system-stats/],
      [{ statType: "constructor" }, /unknown statType/],
      [{ statName: "" }, /statName must be a non-empty string/],
      [{ statName: "x".repeat(257) }, /statName is longer than 256 characters/],
      [{ holdCount: 0 }, /holdCount must be a whole number from 1 to 10000, not 0/],
      [{ holdCount: MAX_HOLD_COUNT + 1 }, /holdCount must be a whole number/],
      [{ holdCount: 1.5 }, /holdCount must be a whole number/],
      [{ checkInterval: 0.05 }, /checkInterval must be from 0.1 to 86400 seconds, not 0.05/],
      [{ checkInterval: NaN }, /checkInterval must be from/],
      [{ checkInterval: Infinity }, /checkInterval must be from/],
      [{ checkInterval: 86401 }, /checkInterval must be from/],
    ];
    for (const [change, message] of bad) {
      assert.throws(() => stats.init({ ...ok, ...change }), message);
    }
    assert.equal(stats.size, 0);
    stats.init({ ...ok, statName: "big", holdCount: 10000 });
    assert.throws(
      () => stats.init({ ...ok, statName: "big2", holdCount: 5001 }),
      /more than 15000 samples in total \(10000 already\); use a smaller holdCount/,
    );
    stats.init({ ...ok, statName: "two" });
    stats.init({ ...ok, statName: "three" });
    assert.throws(
      () => stats.init({ ...ok, statName: "four" }),
      /already 3 system stats, the most allowed; delete one with delete_system_stat first/,
    );
    assert.equal(stats.size, 3);
  } finally {
    stats.stopAll();
  }
});

test("by default at most 100 collectors may exist", () => {
  const stats = new StatRegistry();
  try {
    for (let i = 0; i < 100; i++) {
      stats.init({ statType: "cpu-idle", statName: `c${i}`, holdCount: 1, checkInterval: 60 });
    }
    assert.throws(
      () => stats.init({ statType: "cpu-idle", statName: "c100", holdCount: 1, checkInterval: 60 }),
      /already 100 system stats/,
    );
  } finally {
    stats.stopAll();
  }
});

test("stopAll and delete stop the timers (the op sanitizer would catch a leak)", async () => {
  const stats = new StatRegistry();
  for (const statType of STAT_TYPES) {
    stats.init({ statType, statName: statType, holdCount: 2, checkInterval: 0.1 });
  }
  stats.delete("cpu-idle");
  assert.equal(stats.size, STAT_TYPES.length - 1);
  await sleep(150);
  stats.stopAll();
  assert.equal(stats.size, 0);
  assert.throws(() => stats.get("system-stats"), /no system stat named/);
});

test("a collector whose counters become unreadable stops and get says why", async () => {
  using proc = fakeProc(BASE);
  const stats = new StatRegistry({ procRoot: proc.root });
  try {
    stats.init({ statType: "disk-read-ops", statName: "d", holdCount: 5, checkInterval: 0.1 });
    Deno.removeSync(`${proc.root}/diskstats`);
    await waitFor("the collector to fail", () => {
      try {
        stats.get("d");
        return false;
      } catch {
        return true;
      }
    });
    assert.throws(
      () => stats.get("d"),
      /system stat 'd' stopped: cannot read .*diskstats.*; delete it with delete_system_stat/,
    );
    stats.delete("d");
  } finally {
    stats.stopAll();
  }
});

test("init fails at once when the counters cannot be read", () => {
  using proc = fakeProc(BASE);
  Deno.removeSync(`${proc.root}/net/dev`);
  const stats = new StatRegistry({ procRoot: proc.root });
  assert.throws(
    () => stats.init({ statType: "net-bytes-out", statName: "n", holdCount: 1, checkInterval: 1 }),
    /cannot read .*net\/dev/,
  );
  assert.equal(stats.size, 0);
});

test("init_system_stat, get_system_stat and delete_system_stat through executeCommand", async () => {
  const stats = new StatRegistry();
  const ctx = makeTestContext({ services: { stats } });
  try {
    const init = await executeCommand(initSystemStat, {
      statType: "cpu-idle",
      statName: "cmd",
      holdCount: "3",
      checkInterval: "0.1",
    }, ctx);
    assert.deepEqual(init, {
      return_code: 0,
      reply_type: "void",
      reply_object: null,
      message: "",
      error_message: "",
    });
    await waitFor("a sample", () => stats.get("cmd").samples.length > 0);
    const got = await executeCommand(getSystemStat, { statName: "cmd" }, ctx);
    assert.equal(got.return_code, 0);
    assert.equal(got.reply_type, "cpu_idle_stat_array");
    const status = (got.reply_object as { status: StatSample[] }).status;
    assert.deepEqual(Object.keys(got.reply_object as object), ["status"]);
    assert.ok(status.length >= 1 && status.length <= 3);
    assert.deepEqual(Object.keys(status[0]), ["timestamp", "cpu-idle"]);

    const system = await executeCommand(initSystemStat, {
      statType: "system-stats",
      statName: "sys",
      holdCount: 2,
      checkInterval: 0.1,
    }, ctx);
    assert.equal(system.return_code, 0);
    await waitFor("a system-stats sample", () => stats.get("sys").samples.length > 0);
    const sys = await executeCommand(getSystemStat, { statName: "sys" }, ctx);
    assert.equal(sys.reply_type, "system_info_stat_array");

    const deleted = await executeCommand(deleteSystemStat, { statName: "cmd" }, ctx);
    assert.equal(deleted.return_code, 0);
    assert.equal(deleted.reply_type, "void");
    const gone = await executeCommand(getSystemStat, { statName: "cmd" }, ctx);
    assert.equal(gone.return_code, 1);
    assert.equal(gone.reply_type, "void");
    assert.match(decodeURIComponent(gone.error_message), /no system stat named 'cmd'; create it/);
    assert.equal((await executeCommand(deleteSystemStat, { statName: "cmd" }, ctx)).return_code, 1);
  } finally {
    stats.stopAll();
  }
});

test("bad init_system_stat arguments give return_code 1", async () => {
  const stats = new StatRegistry();
  const ctx = makeTestContext({ services: { stats } });
  const good = { statType: "cpu-idle", statName: "x", holdCount: 3, checkInterval: 1 };
  try {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ ...good, holdCount: "x" }, /holdCount/],
      [{ ...good, checkInterval: "soon" }, /checkInterval/],
      [{ statType: "cpu-idle", statName: "x", holdCount: 3 }, /checkInterval/],
      [{ ...good, statName: null }, /must not be null/],
      [{ ...good, statType: "disk-io" }, /unknown statType/],
      [{ ...good, holdCount: 0 }, /holdCount must be a whole number/],
    ];
    for (const [args, message] of cases) {
      const reply = await executeCommand(initSystemStat, args, ctx);
      assert.equal(reply.return_code, 1, JSON.stringify(args));
      assert.match(decodeURIComponent(reply.error_message), message);
    }
    assert.equal(stats.size, 0);
    assert.equal((await executeCommand(initSystemStat, good, ctx)).return_code, 0);
    const dup = await executeCommand(initSystemStat, good, ctx);
    assert.equal(dup.return_code, 1);
    assert.match(decodeURIComponent(dup.error_message), /already exists/);
  } finally {
    stats.stopAll();
  }
});

test("get_agent_data reports CPU, memory, processes and platform", async () => {
  const ctx = makeTestContext();
  const started = performance.now();
  const reply = await executeCommand(getAgentData, {}, ctx);
  assert.ok(performance.now() - started >= 90, "cpu_load is sampled over 0.1 s");
  assert.equal(reply.return_code, 0);
  assert.equal(reply.reply_type, "agent_data");
  const data = reply.reply_object as Record<string, unknown>;
  assert.deepEqual(Object.keys(data).sort(), [
    "cpu_count",
    "cpu_load",
    "current_ram",
    "max_ram",
    "platform",
    "processes",
    "server_state",
  ]);
  assert.ok(Number.isInteger(data.cpu_count) && (data.cpu_count as number) >= 1);
  assert.equal(typeof data.cpu_load, "number");
  assert.ok((data.cpu_load as number) >= 0 && (data.cpu_load as number) <= 100);
  assert.ok(Number.isSafeInteger(data.max_ram) && (data.max_ram as number) > 0);
  assert.ok(Number.isSafeInteger(data.current_ram) && (data.current_ram as number) > 0);
  assert.ok((data.current_ram as number) <= (data.max_ram as number));
  assert.ok(Number.isInteger(data.processes) && (data.processes as number) >= 1);
  assert.match(data.platform as string, /^Linux-\S+$/);
  assert.equal(data.server_state, "OK");
});
