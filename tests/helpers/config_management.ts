/**
 * configure_server end to end: a real agent process against the development
 * manager, the command sent as the manager sends it (a long job) and polled
 * with get_job_description until it ends.
 */
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { delay } from "./wait.ts";
import template from "../../config/logging.yaml" with { type: "text" };

/** A running agent and its manager. */
export interface CmAgent {
  manager: DevManager;
  agent: AgentProcess;
  /** The agent's DEBUG log file (wire log next to it, `.wire`). */
  logFile: string;
  close(): Promise<void>;
}

/** Base64 of UTF-8 text, as the manager sends keys. */
export function b64(text: string): string {
  return btoa(String.fromCharCode(...new TextEncoder().encode(text)));
}

/** Starts the agent with a DEBUG log file and the wire log on, and waits for its handshake. */
export async function startCmAgent(
  options: { conf?: Record<string, Record<string, string>>; env?: Record<string, string> } = {},
): Promise<CmAgent> {
  const manager = await DevManager.start();
  // The log file lies in the agent's own logs directory, as `configure` puts it (and --report takes it).
  const baseDir = await Deno.makeTempDir({ prefix: "dcm-agent-test-" });
  await Deno.mkdir(`${baseDir}/logs`);
  const logFile = `${baseDir}/logs/agent.log`;
  const yaml = `${baseDir}/logging.yaml`;
  // Everything at DEBUG, wire log included: the secrets tests read these files.
  await Deno.writeTextFile(
    yaml,
    template.replaceAll("@LOGFILE_PATH@", logFile).replaceAll("@LOG_LEVEL@", "DEBUG")
      .replaceAll("@DCM_USER@", "root").replaceAll("level: INFO", "level: DEBUG"),
  );
  const agent = await AgentProcess.start({
    managerUrl: manager.url,
    baseDir,
    conf: { logging: { configfile: yaml }, ...options.conf },
    env: options.env,
  });
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 60_000 }), "connecting");
  } catch (err) {
    await agent.cleanup();
    await manager.close();
    await Deno.remove(baseDir, { recursive: true }).catch(() => {});
    throw err;
  }
  return {
    manager,
    agent,
    logFile,
    async close() {
      try {
        await agent.stop();
      } finally {
        await agent.cleanup();
        await manager.close();
        await Deno.remove(baseDir, { recursive: true }).catch(() => {});
      }
    },
  };
}

/** The reply of a finished configure_server job. */
export interface JobOutcome {
  job: Frame;
  reply: Frame;
}

/** Sends configure_server, polls the job until it ends, and returns its description and reply. */
export async function configureServer(
  cm: CmAgent,
  args: Record<string, unknown>,
  options: { timeoutMs?: number; requestId?: string } = {},
): Promise<JobOutcome> {
  const timeoutMs = options.timeoutMs ?? 120_000;
  const first = await cm.agent.whileRunning(
    cm.manager.request("configure_server", args, { requestId: options.requestId }),
    "starting configure_server",
  );
  const reply0 = first.reply.payload as Frame;
  if (reply0.reply_type !== "job_description") {
    throw new Error(`configure_server did not start a job: ${JSON.stringify(reply0)}`);
  }
  const jobId = (reply0.reply_object as Frame).job_id;
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const polled = await cm.agent.whileRunning(
      cm.manager.request("get_job_description", { jobId }),
      "polling the job",
    );
    const job = (polled.reply.payload as Frame).reply_object as Frame;
    if (job.job_status === "COMPLETE" || job.job_status === "ERROR") {
      return { job, reply: job.command_reply as Frame };
    }
    if (performance.now() > deadline) {
      throw new Error(
        `configure_server job ${jobId} still ${job.job_status} after ${timeoutMs} ms`,
      );
    }
    await delay(300);
  }
}

/** Every LOG frame the agent sent (decoded message text) with its level. */
export function logFrames(manager: DevManager): { level: string; message: string }[] {
  const out: { level: string; message: string }[] = [];
  for (const r of manager.frames) {
    if (r.dir !== "in" || typeof r.frame === "string" || r.frame.type !== "LOG") continue;
    const raw = String(r.frame.message ?? "");
    let message = raw;
    try {
      message = decodeURIComponent(raw);
    } catch {
      // Not percent-encoded.
    }
    out.push({ level: String(r.frame.level), message });
  }
  return out;
}
