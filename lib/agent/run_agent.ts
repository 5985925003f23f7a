/**
 * `dcm-agent run`: wires configuration, logging, the journal, the command
 * table, the request listener and the manager connection together, and owns
 * the process life cycle (signals, pid file, graceful shutdown).
 */
import { type AgentConfig, loadConfig } from "../config/mod.ts";
import { configureLogging, CONSOLE_CATEGORY, getLogger, shutdownLogging } from "../logging/mod.ts";
import {
  builtinPluginTable,
  Journal,
  loadPluginTable,
  type PluginTable,
  recordConnection,
  RejectionCounter,
  RequestListener,
} from "../core/mod.ts";
import {
  acquireInstanceLock,
  AlreadyRunningError,
  type CloudMetadata,
  createCloudMetadata,
  type InstanceLock,
  killAllProcessGroups,
  loadOrCreateToken,
  lookupUser,
  platformFor,
  regenerateToken,
  removeOwnPidFile,
  writeFileAtomic,
} from "../os/mod.ts";
import { buildHandshake, Connection } from "../transport/mod.ts";
import { BUILTIN_COMMANDS, StatRegistry } from "../../commands/mod.ts";
import { logFrame, type LogLevel, VERSION } from "../protocol/mod.ts";
import { ServiceNotify } from "./service_notify.ts";
import { logToStderr } from "./log_stderr.ts";
import { makeAgentControl, noteHandshake } from "./agent_control.ts";
import type { IntrusionDetection } from "./intrusion_detection.ts";

const log = getLogger(["dcm", "agent"]);

/** LOG frames kept while the connection is down (oldest dropped first). */
const MAX_BUFFERED_LOGS = 200;

/** Options for {@linkcode runAgent}. */
export interface RunAgentOptions {
  /** The `-c FILE` argument. */
  configFile?: string;
  /** `--log-stderr`: also log to stderr at the configured level (automatic under systemd). */
  logStderr?: boolean;
}

/** Runs the agent until SIGTERM/SIGINT; returns the process exit code; throws ConfigError for a bad agent.conf. */
export async function runAgent(options: RunAgentOptions = {}): Promise<number> {
  const startedAt = new Date().toISOString();
  let config: AgentConfig = loadConfig({ file: options.configFile });
  // Before anything else: a second agent on the same base directory must not
  // touch the journal, the logs or the pid file of the running one.
  let lock: InstanceLock;
  try {
    lock = acquireInstanceLock(config.storage.base_dir!, { configFiles: config.files });
  } catch (err) {
    const text = err instanceof AlreadyRunningError
      ? err.message
      : `cannot take the lock in ${config.storage.base_dir}: ${(err as Error).message}`;
    console.error(`dcm-agent: ${text}`);
    return 1;
  }
  const stderr = options.logStderr || logToStderr();
  const pendingLogs: Record<string, unknown>[] = [];
  // Logging and the listener are set up before the connection exists.
  const link: { connection?: Connection } = {};
  const managerSink = (level: LogLevel, line: string) => {
    const frame = logFrame(level, line);
    if (link.connection?.send(frame)) return;
    pendingLogs.push(frame);
    if (pendingLogs.length > MAX_BUFFERED_LOGS) pendingLogs.shift();
  };
  try {
    await configureLogging(config.logging.configfile, {
      managerSink,
      resolveUser: lookupUser,
      stderr,
    });
  } catch (err) {
    console.error(`dcm-agent: logging configuration error: ${(err as Error).message}`);
    lock.release();
    return 2;
  }
  for (const warning of config.warnings) log.warn("agent.conf: {warning}", { warning });

  let journal: Journal;
  try {
    journal = Journal.openForAgent(config.storage.dbfile!);
  } catch (err) {
    console.error(`dcm-agent: ${(err as Error).message}`);
    await shutdownLogging();
    lock.release();
    return 1;
  }
  if (journal.reset) {
    const { reason, savedAs } = journal.reset;
    const text = `the request journal was damaged (${reason}); it was moved to ${savedAs} and ` +
      "a fresh journal started: replies still owed from before are lost";
    log.error(text);
    getLogger(CONSOLE_CATEGORY).error(text);
  }
  const baseDir = config.storage.base_dir!;
  let token = loadOrCreateToken(baseDir);
  let metadata: CloudMetadata = createCloudMetadata(config);
  const platform = platformFor(config);
  let plugins = await loadPlugins(config);
  let agentId: string | null = journal.getValue("agent_id") ?? null;
  let customerId: unknown = null;
  const stats = new StatRegistry();
  const rejections = new RejectionCounter(journal);
  const managerUrl = () => config.connection.agentmanager_url ?? "";
  const live: { notify?: ServiceNotify | null; connectedSince?: string } = {};
  const { promise: stopped, resolve: stop } = Promise.withResolvers<void>();
  const transport = {
    send: (frame: Record<string, unknown>) => {
      // A re-sent rejection ("already rejected") is not a new one.
      if (frame.type === "NACK" && frame.entity !== "request_received") rejections.add();
      return link.connection?.send(frame) ?? false;
    },
    isOpen: () => link.connection?.isOpen() ?? false,
  };
  // Loaded only when on, so an agent without OSSEC does not carry the alert code.
  let alerts: IntrusionDetection | null = null;
  let alertSource = "";
  /** Starts, stops or (for another alert file or format) restarts intrusion detection. */
  const applyAlerts = async (next: AgentConfig | null) => {
    const ids = next?.intrusion_detection;
    const source = ids?.ossec ? `${ids.alert_file} (${ids.alert_format})` : "";
    if (source === alertSource) return;
    alertSource = source;
    if (alerts) {
      const stopping = alerts;
      alerts = null;
      await stopping.stop();
    }
    if (!source) return;
    const { IntrusionDetection } = await import("./intrusion_detection.ts");
    alerts = new IntrusionDetection({ config: () => config, journal, transport });
    await alerts.start();
  };

  const listener = new RequestListener({
    config,
    journal,
    plugins: () => plugins,
    transport,
    agentId: () => agentId,
    services: {
      state: {
        get: () => journal.getValue("agent_state") ?? "STARTING",
        set: (s) => void journal.setValue("agent_state", s),
      },
      stats,
      host: {
        version: VERSION,
        platformName: platform.name,
        platformVersion: platform.version,
        ipv4Addresses: () => metadata.hostAddresses(),
        customerId: () => customerId,
      },
      adapters: {},
      agent: makeAgentControl({ journal, baseDir, exit: () => stop() }),
    },
    onHemlock: hemlock,
    onAlertAck: (id) => alerts?.sender.onAck(id) ?? null,
  });
  await listener.start();
  await applyAlerts(config);
  // After start-up recovery, which needs the journal to itself.
  void recordConnection(journal, {
    connected: false,
    url: managerUrl(),
    reason: "not connected yet",
  });

  const connection = new Connection({
    config,
    buildHandshake: () =>
      buildHandshake(config, {
        agentId,
        token,
        metadata,
        platform,
        version: VERSION,
        plugins: plugins.names(),
        pluginFeatures: pluginFeatures(plugins, config),
      }),
    onAccepted: (hs) => {
      agentId = typeof hs.agentID === "string"
        ? hs.agentID
        : hs.agentID == null
        ? null
        : String(hs.agentID);
      customerId = hs.customerId ?? null;
      if (agentId !== null) {
        void journal.setValue("agent_id", agentId);
        void journal.purgeOtherAgents(agentId);
      }
      log.info("connected to the manager as agent {agentId}", { agentId });
      noteHandshake(baseDir, startedAt);
    },
    onTokenConflict: () => {
      log.warn(
        "the manager says this agent's token is in use elsewhere (409); generating a new token",
      );
      token = regenerateToken(baseDir);
    },
    onOpen: () => {
      live.connectedSince = new Date().toTimeString().slice(0, 8);
      void recordConnection(journal, { connected: true, url: managerUrl() });
      listener.onOpen();
      alerts?.onOpen();
      live.notify?.refresh();
      while (pendingLogs.length && connection.send(pendingLogs[0])) pendingLogs.shift();
    },
    onMessage: (text) => listener.handleFrame(text),
    onDisconnect: (reason) => {
      log.info("disconnected from the manager: {reason}", { reason });
      live.connectedSince = undefined;
      void recordConnection(journal, { connected: false, url: managerUrl(), reason });
      live.notify?.refresh();
    },
  });

  link.connection = connection;

  const pidFile = `${baseDir}/dcm-agent.pid`;
  try {
    writeFileAtomic(pidFile, `${Deno.pid}\n`, { mode: 0o644 });
  } catch (err) {
    log.warn("cannot write the pid file {pidFile}: {error}", {
      pidFile,
      error: (err as Error).message,
    });
  }

  const sweepEvery = Math.min(3600, Math.max(10, config.storage.db_timeout / 4)) * 1000;
  const sweeper = setInterval(() => {
    const n = journal.sweep(config.storage.db_timeout);
    const j = config.jobs.retain_job_time > 0 ? journal.sweepJobs(config.jobs.retain_job_time) : 0;
    if (n || j) log.debug("journal sweep removed {n} request(s) and {j} job(s)", { n, j });
  }, sweepEvery);

  connection.start();
  const notify = await ServiceNotify.open(() => {
    const running = listener.outstanding.running;
    const where = live.connectedSince
      ? `connected to ${managerUrl()} since ${live.connectedSince}`
      : `not connected to ${managerUrl()}`;
    return `${where}; ${running} command${running === 1 ? "" : "s"} running`;
  });
  live.notify = notify;
  notify?.ready();
  log.info("dcm-agent {version} started (pid {pid}); manager {url}", {
    version: VERSION,
    pid: Deno.pid,
    url: config.connection.agentmanager_url,
  });

  const onStop = () => stop();
  const onHup = async () => {
    try {
      const next = loadConfig({ file: options.configFile });
      const nextPlugins = await loadPlugins(next);
      const offered = (t: PluginTable) => JSON.stringify(t.names());
      const changed = offered(nextPlugins) !== offered(plugins);
      config = next;
      metadata = createCloudMetadata(next);
      plugins = nextPlugins;
      listener.reconfigure(next);
      connection.updateConfig(next);
      // The manager learns the offered commands only from a handshake.
      if (changed) connection.reconnect("the commands in plugin.conf changed");
      await applyAlerts(next);
      void configureLogging(next.logging.configfile, {
        managerSink,
        resolveUser: lookupUser,
        stderr,
      })
        .catch((err) =>
          log.error("SIGHUP: the new logging settings were not applied: {error}", {
            error: (err as Error).message,
          })
        );
      for (const warning of next.warnings) log.warn("agent.conf: {warning}", { warning });
      log.info("SIGHUP: configuration reloaded");
    } catch (err) {
      log.error("SIGHUP: the configuration was not reloaded, the old one stays in force: {error}", {
        error: (err as Error).message,
      });
    }
  };
  Deno.addSignalListener("SIGTERM", onStop);
  Deno.addSignalListener("SIGINT", onStop);
  const hup = () => void onHup();
  Deno.addSignalListener("SIGHUP", hup);
  await stopped;
  notify?.stopping();

  log.info("stopping: waiting up to {grace} s for running commands", {
    grace: config.workers.shutdown_grace,
  });
  await listener.stop(config.workers.shutdown_grace * 1000);
  await applyAlerts(null);
  stats.stopAll();
  clearInterval(sweeper);
  await connection.stop();
  await rejections.flush();
  await recordConnection(journal, { connected: false, url: managerUrl(), reason: "agent stopped" })
    .catch(() => {});
  journal.close();
  Deno.removeSignalListener("SIGTERM", onStop);
  Deno.removeSignalListener("SIGINT", onStop);
  Deno.removeSignalListener("SIGHUP", hup);
  removeOwnPidFile(pidFile);
  log.info("dcm-agent stopped");
  await shutdownLogging();
  notify?.close();
  lock.release();
  return 0;
}

/** Loads plugin.conf when configured; falls back to the built-in list if it cannot be read. */
async function loadPlugins(config: AgentConfig): Promise<PluginTable> {
  const file = config.plugin.configfile;
  if (!file) return builtinPluginTable(BUILTIN_COMMANDS);
  try {
    return await loadPluginTable(file, BUILTIN_COMMANDS);
  } catch (err) {
    log.error("{error}; using the built-in command list", { error: (err as Error).message });
    return builtinPluginTable(BUILTIN_COMMANDS);
  }
}

/** Handshake features contributed by the offered commands; a failing one is skipped. */
function pluginFeatures(plugins: PluginTable, config: AgentConfig): Record<string, unknown> {
  const out: Record<string, unknown> = {};
  for (const e of plugins.entries) {
    try {
      Object.assign(out, e.module.features?.(config) ?? {});
    } catch (err) {
      log.error("command {name} could not report its features: {error}", {
        name: e.name,
        error: (err as Error).message,
      });
    }
  }
  return out;
}

/** HEMLOCK: kill every command's process tree, then the agent's own process group. */
function hemlock(): void {
  killAllProcessGroups("SIGKILL");
  const pgid = ownProcessGroup();
  if (pgid === Deno.pid) Deno.kill(-pgid, "SIGKILL");
  Deno.kill(Deno.pid, "SIGKILL");
}

function ownProcessGroup(): number {
  try {
    // Field 5 of /proc/self/stat, after the parenthesised command name.
    const stat = Deno.readTextFileSync("/proc/self/stat");
    return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]);
  } catch {
    return -1;
  }
}
