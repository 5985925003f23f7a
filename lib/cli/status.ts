/**
 * `dcm-agent status` (spec 6.1): the initialisation state and request counts
 * from the journal, and whether the process in `<base>/dcm-agent.pid` runs.
 * Exit code 0 only when the agent is running.
 */
import { Journal, type JournalReset, type RequestState, timestamp } from "../core/mod.ts";
import type { AgentConfig } from "../config/mod.ts";
import { userNameOf } from "../os/mod.ts";
import { readHandshake, readUpgrade } from "../os/mod.ts";

/** Where status output goes (tests capture it). */
export interface StatusOutput {
  line(text: string): void;
  color: boolean;
}

const COLORS = { green: "\x1b[32m", red: "\x1b[31m", yellow: "\x1b[33m", reset: "\x1b[0m" };

/** Prints the status report; returns the exit code. */
export function printStatus(config: AgentConfig, out: StatusOutput): number {
  const paint = (c: keyof typeof COLORS, t: string) =>
    out.color ? `${COLORS[c]}${t}${COLORS.reset}` : t;
  let counts: Record<string, number> = {};
  let initStates: RequestState[] = [];
  let reset: JournalReset | null = null;
  try {
    const journal = Journal.open(config.storage.dbfile!, { readOnly: true });
    try {
      counts = journal.countByState();
      initStates = journal.statesOfCommand("initialize");
      reset = journal.lastReset();
    } finally {
      journal.close();
    }
  } catch {
    // No journal yet: the agent never ran. Report as UNKNOWN below.
  }
  // The original checks these in order and the last match wins.
  let overall: [keyof typeof COLORS, string] = ["yellow", "UNKNOWN"];
  const checks: [RequestState, keyof typeof COLORS, string][] = [
    ["REPLY_ACKED", "green", "INITIALIZED"],
    ["ACKED", "green", "INITIALIZING"],
    ["REPLY", "green", "INITIALIZING"],
    ["REPLY_NACKED", "red", "UNKNOWN INITIALIZATION STATE"],
    ["NACKED", "red", "INITIALIZATION REJECTED"],
  ];
  for (const [state, color, text] of checks) {
    if (initStates.includes(state)) overall = [color, text];
  }
  out.line(paint(overall[0], overall[1]));
  const labels: [string, RequestState][] = [
    ["Commands processed:", "REPLY_ACKED"],
    ["Commands rejected:", "NACKED"],
    ["Commands being processed:", "ACKED"],
    ["Commands being replying to:", "REPLY"],
    ["Replies rejected:", "REPLY_NACKED"],
  ];
  for (const [label, state] of labels) out.line(`    ${label.padEnd(30)}${counts[state] ?? 0}`);
  if (reset) {
    out.line(
      paint("red", `Journal replaced at ${reset.at.slice(0, 19)}: ${reset.reason}`) +
        ` (the damaged file is kept as ${reset.savedAs})`,
    );
  }
  const base = config.storage.base_dir ?? "/dcm";
  const hs = readHandshake(base);
  if (hs) {
    out.line(`    ${"Last handshake:".padEnd(30)}${hs.at} (pid ${hs.pid}, version ${hs.version})`);
  }
  const up = readUpgrade(base);
  if (up) {
    const color = up.state === "upgraded" ? "green" : up.state === "pending" ? "yellow" : "red";
    out.line(
      `    ${"Last upgrade:".padEnd(30)}${paint(color, up.state.toUpperCase())} ` +
        `${up.fromVersion} -> ${up.toVersion} at ${up.updatedAt}${
          up.reason ? `: ${up.reason}` : ""
        }`,
    );
  }

  const pidFile = `${config.storage.base_dir}/dcm-agent.pid`;
  let text: string;
  try {
    text = Deno.readTextFileSync(pidFile).trim();
  } catch {
    out.line(`${paint("red", "NOT RUNNING")} PID file not found`);
    return 1;
  }
  const pid = Number(text);
  if (!/^\d+$/.test(text) || pid <= 0) {
    out.line(
      `${paint("yellow", "UNKNOWN")} the PID file ${pidFile} does not hold a process id: '${
        text.slice(0, 40)
      }'`,
    );
    return 1;
  }
  const proc = readProcess(pid);
  if (!proc) {
    out.line(`${paint("red", "NOT RUNNING")} The PID ${pid} was not found`);
    return 1;
  }
  out.line(paint("green", "RUNNING"));
  out.line(`    ${"Started at:".padEnd(30)}${proc.started}`);
  out.line(`    ${"User:".padEnd(30)}${proc.user}`);
  out.line(`    ${"Status:".padEnd(30)}${proc.status}`);
  out.line(`    ${"Pid:".padEnd(30)}${pid}`);
  return 0;
}

function readProcess(pid: number): { started: string; user: string; status: string } | undefined {
  let statText: string;
  let statusText: string;
  try {
    statText = Deno.readTextFileSync(`/proc/${pid}/stat`);
    statusText = Deno.readTextFileSync(`/proc/${pid}/status`);
  } catch {
    return undefined;
  }
  const fields = statText.slice(statText.lastIndexOf(")") + 2).split(" ");
  const state = fields[0];
  if (state === "Z") return undefined;
  const startTicks = Number(fields[19]);
  const uptime = Number(Deno.readTextFileSync("/proc/uptime").split(" ")[0]);
  const started = new Date(Date.now() - (uptime - startTicks / 100) * 1000);
  const uid = /^Uid:\s+(\d+)/m.exec(statusText)?.[1] ?? "?";
  const status = /^State:\s+\S+\s+\((\w+)\)/m.exec(statusText)?.[1] ?? state;
  // Local time to the second: the journal's timestamp without its fraction.
  return { started: timestamp(started).slice(0, 19), user: userName(uid), status };
}

function userName(uid: string): string {
  return (/^\d+$/.test(uid) ? userNameOf(Number(uid)) : undefined) ?? uid;
}
