/**
 * `dcm-agent status [--json]`: whether the agent runs (the pid in
 * `<base>/dcm-agent.pid`), whether it is connected to its manager and since
 * when (recorded by the agent in the journal), the initialisation state and
 * the request counts from the journal. Every fact is labelled; `--json`
 * prints the same facts as one object. Exit code 0 only when the agent runs.
 * It reads everything and changes nothing, and needs no manager URL.
 */
import {
  type ConnectionRecord,
  Journal,
  type JournalReset,
  readConnection,
  readRejectedCount,
  type RequestState,
  timestamp,
} from "../core/mod.ts";
import { type AgentConfig, SYSTEM_CONFIG_FILE } from "../config/mod.ts";
import { readLockOwner, readUpgrade, type UpgradeRecord, userNameOf } from "../os/mod.ts";

/** Where status output goes (tests capture it). */
export interface StatusOutput {
  line(text: string): void;
  color: boolean;
  /** Print one JSON object instead of text. */
  json?: boolean;
}

/** The agent process, from its pid file and /proc. */
export interface ProcessFacts {
  running: boolean;
  pid: number | null;
  /** Why it is not running (or why that is not known). */
  reason: string | null;
  started_at: string | null;
  user: string | null;
  state: string | null;
  /** The config files the running agent was started with (from its lock file). */
  config_files: string[];
}

/** Everything `status` reports. */
export interface StatusFacts {
  config_files: string[];
  manager_url: string | null;
  process: ProcessFacts;
  /** `connected` is null when it cannot be known (the journal cannot be read). */
  connection: {
    connected: boolean | null;
    since: string | null;
    reason: string | null;
    /** The running agent's version, as it recorded it. */
    version: string | null;
  };
  agent_state: { state: string; detail: string };
  requests: {
    processed: number;
    rejected: number;
    running: number;
    replying: number;
    replies_rejected: number;
  };
  /** `error`: why an existing journal could not be read (e.g. not root). */
  journal: { file: string; found: boolean; error: string | null; reset: JournalReset | null };
  /** The last `upgrade-binary`, with its outcome (upgraded, rolled back, ...). */
  last_upgrade: UpgradeRecord | null;
}

const COLORS = { green: "\x1b[32m", red: "\x1b[31m", yellow: "\x1b[33m", reset: "\x1b[0m" };
type Color = keyof typeof COLORS;

/** Prints the status report; returns the exit code (0 only when the agent runs). */
export function printStatus(config: AgentConfig, out: StatusOutput): number {
  const facts = collectStatus(config);
  if (out.json) out.line(JSON.stringify(facts, null, 2));
  else for (const line of renderStatus(facts, out.color)) out.line(line);
  return facts.process.running ? 0 : 1;
}

/** Gathers the facts from the configuration, the journal, the pid file and /proc. */
function collectStatus(config: AgentConfig): StatusFacts {
  const dbfile = config.storage.dbfile!;
  let counts: Record<string, number> = {};
  let initStates: RequestState[] = [];
  let reset: JournalReset | null = null;
  let connection: ConnectionRecord | null = null;
  let rejected = 0;
  let agentState: string | undefined;
  let found = false;
  let error: string | null = null;
  try {
    const journal = Journal.open(dbfile, { readOnly: true });
    found = true;
    try {
      counts = journal.countByState();
      initStates = journal.statesOfCommand("initialize");
      reset = journal.lastReset();
      connection = readConnection(journal);
      rejected = readRejectedCount(journal);
      agentState = journal.getValue("agent_state");
    } finally {
      journal.close();
    }
  } catch (err) {
    // No journal yet means the agent never ran here; anything else is worth saying.
    if (exists(dbfile)) error = (err as Error).message;
  }
  const process = processFacts(config.storage.base_dir!);
  const unreadable = "the journal cannot be read";
  return {
    config_files: config.files,
    manager_url: config.connection.agentmanager_url,
    process,
    connection: error
      ? { connected: null, since: null, reason: unreadable, version: null }
      : connectionFacts(process, connection),
    agent_state: error
      ? { state: "UNKNOWN", detail: unreadable }
      : initState(initStates, agentState, found),
    requests: {
      processed: counts.REPLY_ACKED ?? 0,
      rejected: rejected + (counts.NACKED ?? 0),
      running: counts.ACKED ?? 0,
      replying: counts.REPLY ?? 0,
      replies_rejected: counts.REPLY_NACKED ?? 0,
    },
    journal: { file: dbfile, found, error, reset },
    last_upgrade: readUpgrade(config.storage.base_dir!) ?? null,
  };
}

/** The text report, one labelled fact per line. */
function renderStatus(f: StatusFacts, color: boolean): string[] {
  const paint = (c: Color, t: string) => color ? `${COLORS[c]}${t}${COLORS.reset}` : t;
  const row = (label: string, value: string) => `${`${label}:`.padEnd(38)}${value}`;
  const lines: string[] = [];
  const p = f.process;
  lines.push(row(
    "agent process",
    p.running
      ? `${
        paint("green", "RUNNING")
      } (pid ${p.pid}, user ${p.user}, started ${p.started_at}, ${p.state})`
      : `${paint("red", "NOT RUNNING")} (${p.reason})`,
  ));
  if (f.config_files.length) {
    lines.push(row("configuration", f.config_files.join(", ")));
  } else {
    lines.push(row(
      "configuration",
      `${paint("yellow", "NONE FOUND")} (looked at ${SYSTEM_CONFIG_FILE} and $DCM_AGENT_CONF; ` +
        "run 'dcm-agent configure', or give -c FILE)",
    ));
  }
  if (p.running && p.config_files.length && p.config_files.join() !== f.config_files.join()) {
    lines.push(row("running agent's configuration", p.config_files.join(", ")));
  }
  lines.push(row("manager URL", f.manager_url ?? paint("yellow", "not set")));
  const c = f.connection;
  const since = c.since ? ` since ${c.since}` : "";
  lines.push(row(
    "connection",
    c.connected
      ? `${paint("green", "CONNECTED")}${since}${c.version ? ` (agent version ${c.version})` : ""}`
      : c.connected === null
      ? `${paint("yellow", "UNKNOWN")} (${c.reason})`
      : `${paint(p.running ? "red" : "yellow", "NOT CONNECTED")}${since}${
        c.reason ? ` (${c.reason})` : ""
      }`,
  ));
  const stateColor: Color = f.agent_state.state === "INITIALIZED" ||
      f.agent_state.state === "INITIALIZING"
    ? "green"
    : f.agent_state.state === "UNKNOWN"
    ? "yellow"
    : "red";
  lines.push(
    row("agent state", `${paint(stateColor, f.agent_state.state)} (${f.agent_state.detail})`),
  );
  const r = f.requests;
  lines.push(row("requests processed", String(r.processed)));
  lines.push(row("requests rejected (NACK sent)", String(r.rejected)));
  lines.push(row("requests running", String(r.running)));
  lines.push(row("replies awaiting the manager's ACK", String(r.replying)));
  lines.push(row("replies rejected by the manager", String(r.replies_rejected)));
  lines.push(
    row(
      "journal",
      f.journal.found
        ? f.journal.file
        : f.journal.error
        ? `${f.journal.file} ${paint("red", `cannot be read: ${f.journal.error}`)} (run as root)`
        : `${f.journal.file} (not created yet)`,
    ),
  );
  const reset = f.journal.reset;
  if (reset) {
    lines.push(
      row(
        "journal warning",
        `${paint("red", `Journal replaced at ${reset.at.slice(0, 19)}: ${reset.reason}`)}` +
          ` (the damaged file is kept as ${reset.savedAs})`,
      ),
    );
  }
  const up = f.last_upgrade;
  if (up) {
    const upColor: Color = up.state === "upgraded"
      ? "green"
      : up.state === "pending"
      ? "yellow"
      : "red";
    lines.push(row(
      "last upgrade",
      `${paint(upColor, up.state.toUpperCase())} ${up.fromVersion} -> ${up.toVersion} at ` +
        `${up.updatedAt}${up.reason ? `: ${up.reason}` : ""}`,
    ));
  }
  return lines;
}

/** The initialisation state: the journal row of `initialize`, else what it left in agent_state. */
function initState(
  states: RequestState[],
  agentState: string | undefined,
  journalFound: boolean,
): StatusFacts["agent_state"] {
  // The original checks these in order and the last match wins.
  const checks: [RequestState, string, string][] = [
    ["REPLY_ACKED", "INITIALIZED", "the manager's initialize request was carried out"],
    ["ACKED", "INITIALIZING", "the initialize request is running"],
    ["REPLY", "INITIALIZING", "initialize is done; its reply awaits the manager's ACK"],
    ["REPLY_NACKED", "UNKNOWN INITIALIZATION STATE", "the manager rejected initialize's reply"],
    ["NACKED", "INITIALIZATION REJECTED", "the agent rejected the initialize request"],
  ];
  let found: { state: string; detail: string } | undefined;
  for (const [state, text, detail] of checks) {
    if (states.includes(state)) found = { state: text, detail };
  }
  if (found) return found;
  // Journal rows expire after [storage] db_timeout; initialize leaves this behind.
  if (agentState === "RUNNING") {
    return { state: "INITIALIZED", detail: "initialize was carried out (its request has expired)" };
  }
  return {
    state: "UNKNOWN",
    detail: journalFound ? "no initialize received yet" : "the agent has not run here yet",
  };
}

function connectionFacts(
  p: ProcessFacts,
  record: ConnectionRecord | null,
): StatusFacts["connection"] {
  const since = record?.since.slice(0, 19) ?? null;
  if (!p.running) {
    return {
      connected: false,
      since: null,
      version: null,
      reason: "the agent is not running" +
        (record ? `; last recorded at ${since}: ${record.reason ?? "connected"}` : ""),
    };
  }
  if (!record || record.pid !== p.pid) {
    return { connected: false, since: null, reason: "no connection recorded yet", version: null };
  }
  return {
    connected: record.connected,
    since,
    version: record.version ?? null,
    reason: record.connected ? null : record.reason ?? null,
  };
}

function processFacts(baseDir: string): ProcessFacts {
  const pidFile = `${baseDir}/dcm-agent.pid`;
  const none = (reason: string): ProcessFacts => ({
    running: false,
    pid: null,
    reason,
    started_at: null,
    user: null,
    state: null,
    config_files: [],
  });
  let text: string;
  try {
    text = Deno.readTextFileSync(pidFile).trim();
  } catch {
    return none(`no pid file ${pidFile}`);
  }
  const pid = Number(text);
  if (!/^\d+$/.test(text) || pid <= 0) {
    return none(`the pid file ${pidFile} does not hold a process id: '${text.slice(0, 40)}'`);
  }
  const proc = readProcess(pid);
  if (!proc) return { ...none(`process ${pid} from ${pidFile} is not running`), pid };
  const owner = readLockOwner(`${baseDir}/dcm-agent.lock`);
  return {
    running: true,
    pid,
    reason: null,
    started_at: proc.started,
    user: proc.user,
    state: proc.status,
    config_files: owner.pid === pid ? owner.configFiles : [],
  };
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

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch (err) {
    // A directory we may not enter (not root): the file may well be there.
    return !(err instanceof Deno.errors.NotFound);
  }
}
