/**
 * `deno task bench`: measures the agent as a separate process with a fresh
 * base dir and prints one JSON object with the results and the budgets:
 * start-up to handshake, idle RSS and CPU, heartbeat latency and throughput,
 * and RSS under a flood of hostile frames (on a fresh agent) against its idle figure.
 * The agent runs as the compiled binary would: with its runtime flags and
 * without the checkout's deno.json, lockfile and npm resolution.
 *
 *   deno run -A scripts/bench.ts [--idle-seconds 30] [--runs 5] [--heartbeats 200]
 *     [--requests 3000] [--in-flight 50] [--flood 100000] [--entry main.ts] [--strict]
 *
 * Progress goes to stderr; stdout carries only the JSON object.
 */
import { parseArgs } from "node:util";
import { AGENT_RUNTIME_FLAGS } from "../lib/config/runtime_flags.ts";
import { AgentProcess, killAllAgents } from "./agent_process.ts";
import { DevManager } from "./dev_manager.ts";
import { measureFlood } from "./hostile_flood.ts";
import { median, percentile, round } from "./bench_stats.ts";

/** The performance budgets the results are compared with. */
const BUDGETS = {
  startup_to_handshake_ms: 100,
  idle_rss_mb: 42,
  heartbeat_latency_p50_ms: 1,
  throughput_replies_per_s: 2000,
  flood_rss_ratio: 1.5,
} as const;

/** Agent settings as shipped, so idle traffic and timers are what production sees. */
const PRODUCTION_LIKE_CONF = {
  connection: { heartbeat_frequency: "30" },
  messaging: { retransmission_timeout: "5" },
};
const HANDSHAKE_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 60_000;
/** Time after the handshake before idle sampling starts, so start-up work is not counted. */
const SETTLE_MS = 2000;

interface BenchOptions {
  idleSeconds: number;
  runs: number;
  heartbeats: number;
  requests: number;
  inFlight: number;
  flood: number;
  entry?: string;
  strict: boolean;
}

function progress(message: string): void {
  console.error(`bench: ${message}`);
}

function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function positiveInt(name: string, value: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) {
    throw new Error(`--${name} must be a positive integer, got '${value}'`);
  }
  return n;
}

function parseOptions(args: string[]): BenchOptions {
  const { values } = parseArgs({
    args,
    options: {
      "idle-seconds": { type: "string", default: "30" },
      runs: { type: "string", default: "5" },
      heartbeats: { type: "string", default: "200" },
      requests: { type: "string", default: "3000" },
      "in-flight": { type: "string", default: "50" },
      flood: { type: "string", default: "100000" },
      entry: { type: "string" },
      strict: { type: "boolean", default: false },
    },
  });
  return {
    idleSeconds: positiveInt("idle-seconds", values["idle-seconds"]),
    runs: positiveInt("runs", values.runs),
    heartbeats: positiveInt("heartbeats", values.heartbeats),
    requests: positiveInt("requests", values.requests),
    inFlight: positiveInt("in-flight", values["in-flight"]),
    flood: positiveInt("flood", values.flood),
    entry: values.entry,
    strict: values.strict,
  };
}

/** The processes in the agent's process group (the agent and anything it started), with their CPU time. */
async function groupMembers(pgid: number): Promise<{ pid: number; ticks: number }[]> {
  const members: { pid: number; ticks: number }[] = [];
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    const stat = await readStat(Number(e.name));
    if (stat && stat.pgrp === pgid) members.push({ pid: Number(e.name), ticks: stat.ticks });
  }
  return members;
}

/** pgrp and utime+stime (clock ticks) from /proc/<pid>/stat, or null if the process is gone. */
async function readStat(pid: number): Promise<{ pgrp: number; ticks: number } | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(`/proc/${pid}/stat`);
  } catch {
    return null;
  }
  // The command name is in parentheses and may contain spaces: split after the last ')'.
  const rest = text.slice(text.lastIndexOf(")") + 2).split(" ");
  return { pgrp: Number(rest[2]), ticks: Number(rest[11]) + Number(rest[12]) };
}

/** Resident memory of a process in kB: the total, and its anonymous (heap) and file-backed (code) parts. */
interface Rss {
  kb: number;
  anonKb: number;
  fileKb: number;
}

async function readRss(pid: number): Promise<Rss> {
  let status: string;
  try {
    status = await Deno.readTextFile(`/proc/${pid}/status`);
  } catch {
    return { kb: 0, anonKb: 0, fileKb: 0 };
  }
  const field = (name: string) =>
    Number(new RegExp(`^${name}:\\s+(\\d+)\\s+kB`, "m").exec(status)?.[1] ?? 0);
  return { kb: field("VmRSS"), anonKb: field("RssAnon"), fileKb: field("RssFile") };
}

async function clockTicksPerSecond(): Promise<number> {
  try {
    const out = await new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).output();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
}

async function groupTicks(pgid: number): Promise<number> {
  return (await groupMembers(pgid)).reduce((sum, m) => sum + m.ticks, 0);
}

async function groupRss(pgid: number): Promise<Rss & { processes: number }> {
  const members = await groupMembers(pgid);
  const sum = { kb: 0, anonKb: 0, fileKb: 0, processes: members.length };
  for (const { pid } of members) {
    const rss = await readRss(pid);
    sum.kb += rss.kb;
    sum.anonKb += rss.anonKb;
    sum.fileKb += rss.fileKb;
  }
  return sum;
}

/** A fresh manager and agent, connected; `close` stops and removes both. */
async function startConnected(
  options: BenchOptions,
): Promise<{ manager: DevManager; agent: AgentProcess; close: () => Promise<void> }> {
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({
    managerUrl: manager.url,
    entry: options.entry,
    conf: PRODUCTION_LIKE_CONF,
    // As the compiled binary runs: no deno.json, lockfile or npm resolution of the checkout.
    noConfig: true,
  });
  const close = async () => {
    await agent.stop();
    await agent.cleanup();
    await manager.close();
  };
  try {
    await agent.whileRunning(
      manager.waitForHandshake({ timeoutMs: HANDSHAKE_TIMEOUT_MS }),
      "waiting for its handshake",
    );
  } catch (err) {
    await close();
    throw err;
  }
  return { manager, agent, close };
}

async function measureStartup(options: BenchOptions): Promise<number[]> {
  const results: number[] = [];
  for (let run = 1; run <= options.runs; run++) {
    const { manager, agent, close } = await startConnected(options);
    try {
      const ms = manager.handshakeTimes[0] - agent.spawnedAt;
      results.push(ms);
      progress(`start-up run ${run}/${options.runs}: ${ms.toFixed(1)} ms`);
    } finally {
      await close();
    }
  }
  return results;
}

async function measureIdle(
  agent: AgentProcess,
  seconds: number,
): Promise<{ peak: Rss; cpuPercent: number; processes: number }> {
  const hz = await clockTicksPerSecond();
  await delay(SETTLE_MS);
  const t0 = performance.now();
  const ticks0 = await groupTicks(agent.pid);
  let peak: Rss = { kb: 0, anonKb: 0, fileKb: 0 };
  let processes = 0;
  const sample = async () => {
    const rss = await groupRss(agent.pid);
    if (rss.kb > peak.kb) peak = rss;
    processes = Math.max(processes, rss.processes);
  };
  const sampleMs = Math.min(1000, (seconds * 1000) / 5);
  while (performance.now() - t0 < seconds * 1000) {
    await sample();
    await delay(Math.min(sampleMs, seconds * 1000 - (performance.now() - t0)));
  }
  const ticks1 = await groupTicks(agent.pid);
  const wall = (performance.now() - t0) / 1000;
  await sample();
  return { peak, cpuPercent: ((ticks1 - ticks0) / hz / wall) * 100, processes };
}

async function measureLatency(
  manager: DevManager,
  agent: AgentProcess,
  count: number,
): Promise<{ p50: number; p95: number; p99: number }> {
  const one = () =>
    agent.whileRunning(
      manager.request("heartbeat", {}, { timeoutMs: REQUEST_TIMEOUT_MS }),
      "answering heartbeats",
    );
  for (let i = 0; i < 20; i++) await one(); // warm-up, not measured
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const t = performance.now();
    await one();
    samples.push(performance.now() - t);
  }
  samples.sort((a, b) => a - b);
  return {
    p50: round(percentile(samples, 50), 3),
    p95: round(percentile(samples, 95), 3),
    p99: round(percentile(samples, 99), 3),
  };
}

async function runConcurrent(
  manager: DevManager,
  agent: AgentProcess,
  total: number,
  inFlight: number,
): Promise<number> {
  let issued = 0;
  const worker = async () => {
    while (issued < total) {
      issued++;
      await manager.request("heartbeat", {}, { timeoutMs: REQUEST_TIMEOUT_MS });
    }
  };
  const t = performance.now();
  await agent.whileRunning(
    Promise.all(Array.from({ length: Math.min(inFlight, total) }, worker)),
    `answering ${inFlight} concurrent heartbeats`,
  );
  return performance.now() - t;
}

/** Peak RSS of an empty Deno program run like the agent: the floor the agent's figure sits on. */
async function measureEmptyProgram(): Promise<Rss> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-agent-bench-" });
  const file = `${dir}/empty.js`;
  await Deno.writeTextFile(file, "setTimeout(() => {}, 60_000);\n");
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", ...AGENT_RUNTIME_FLAGS, "--no-config", file],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  try {
    await delay(SETTLE_MS);
    let peak: Rss = { kb: 0, anonKb: 0, fileKb: 0 };
    for (let i = 0; i < 5; i++) {
      const rss = await readRss(child.pid);
      if (rss.kb > peak.kb) peak = rss;
      await delay(500);
    }
    return peak;
  } finally {
    child.kill("SIGKILL");
    await child.status;
    await Deno.remove(dir, { recursive: true });
  }
}

async function bench(options: BenchOptions): Promise<Record<string, unknown>> {
  progress("an empty Deno program, for comparison");
  const empty = await measureEmptyProgram();
  progress(`start-up: ${options.runs} runs`);
  const startups = await measureStartup(options);

  const { manager, agent, close } = await startConnected(options);
  try {
    progress(`idle: ${options.idleSeconds} s (after ${SETTLE_MS / 1000} s to settle)`);
    const idle = await measureIdle(agent, options.idleSeconds);

    progress(`latency: ${options.heartbeats} sequential heartbeats`);
    const latency = await measureLatency(manager, agent, options.heartbeats);

    progress(`throughput: ${options.requests} heartbeats, ${options.inFlight} in flight`);
    await runConcurrent(manager, agent, Math.min(200, options.requests), options.inFlight);
    const elapsedMs = await runConcurrent(manager, agent, options.requests, options.inFlight);
    const throughput = options.requests / (elapsedMs / 1000);

    progress(`flood: ${options.flood} hostile frames at a fresh agent, then 30 s to settle`);
    const fresh = await startConnected(options);
    const flood = await measureFlood(fresh.manager, fresh.agent.pid, { count: options.flood })
      .finally(fresh.close);

    const startup = median(startups);
    const results = {
      startup_to_handshake_ms: round(startup, 1),
      idle_rss_mb: round(idle.peak.kb / 1024, 1),
      idle_cpu_percent: round(idle.cpuPercent, 3),
      heartbeat_latency_ms: latency,
      throughput_replies_per_s: Math.round(throughput),
      // Peak RSS during the flood over the same agent's idle RSS just before it.
      flood_rss_ratio: flood.peak_ratio,
    };
    return {
      ...results,
      budgets: BUDGETS,
      within_budget: {
        startup_to_handshake_ms: startup <= BUDGETS.startup_to_handshake_ms,
        idle_rss_mb: idle.peak.kb / 1024 <= BUDGETS.idle_rss_mb,
        heartbeat_latency_p50_ms: latency.p50 <= BUDGETS.heartbeat_latency_p50_ms,
        throughput_replies_per_s: throughput >= BUDGETS.throughput_replies_per_s,
        flood_rss_ratio: flood.peak_ratio <= BUDGETS.flood_rss_ratio,
      },
      details: {
        startup_runs_ms: startups.map((ms) => round(ms, 1)),
        idle_seconds: options.idleSeconds,
        idle_processes: idle.processes,
        // Anonymous memory is the agent's own heap; file-backed is the Deno binary's code it has touched.
        idle_rss_anon_mb: round(idle.peak.anonKb / 1024, 1),
        idle_rss_file_mb: round(idle.peak.fileKb / 1024, 1),
        empty_deno_program_rss_mb: round(empty.kb / 1024, 1),
        heartbeats: options.heartbeats,
        throughput_requests: options.requests,
        throughput_in_flight: options.inFlight,
        flood,
        entry: options.entry ?? Deno.env.get("DCM_AGENT_TEST_ENTRY") ?? "main.ts",
        deno: Deno.version.deno,
      },
    };
  } finally {
    await close();
  }
}

async function main(): Promise<number> {
  const options = parseOptions(Deno.args);
  // Ctrl-C must not leave an agent running.
  const onSigint = () => {
    killAllAgents();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    const result = await bench(options);
    console.log(JSON.stringify(result, null, 2));
    const within = result.within_budget as Record<string, boolean>;
    const missed = Object.entries(within).filter(([, ok]) => !ok).map(([k]) => k);
    if (missed.length > 0) progress(`over budget: ${missed.join(", ")}`);
    return options.strict && missed.length > 0 ? 2 : 0;
  } catch (err) {
    console.error(`bench FAILED: ${(err as Error).message}`);
    return 1;
  } finally {
    Deno.removeSignalListener("SIGINT", onSigint);
  }
}

if (import.meta.main) {
  Deno.exit(await main());
}
