/**
 * The agent's service under systemd or a SysV init script: which one runs
 * it, and stop / restart through it. Loaded by path, on first use (terminate,
 * upgrade-binary). Takes a root so tests drive a stand-in init script in a
 * throw-away directory.
 */
import { join } from "node:path";
import { runProcess } from "./process_runner.ts";
import { pathExists } from "./fs_stat.ts";

/** The unit and init script name `configure -B` installs. */
export const SERVICE_NAME = "dcm-agent";

/** How the agent's service is managed. */
export type ServiceManager =
  | { kind: "systemd"; unit: string }
  | { kind: "sysv"; script: string }
  | { kind: "none" };

/** The systemd unit this process runs in, from /proc/self/cgroup, or null. */
export function ownSystemdUnit(): string | null {
  if (!Deno.env.get("INVOCATION_ID")) return null; // systemd sets it for every service it starts.
  try {
    const cgroup = Deno.readTextFileSync("/proc/self/cgroup");
    const m = /\/([^/\n]+\.service)(\/|$)/m.exec(cgroup);
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

/** The service manager of the installed agent under `root`: systemd when it runs there, else the init script. */
export function installedService(root = "/"): ServiceManager {
  const unitFile = ["etc/systemd/system", "lib/systemd/system", "usr/lib/systemd/system"]
    .some((d) => pathExists(join(root, d, `${SERVICE_NAME}.service`)));
  if (unitFile && pathExists(join(root, "run/systemd/system"))) {
    return { kind: "systemd", unit: `${SERVICE_NAME}.service` };
  }
  const script = join(root, "etc/init.d", SERVICE_NAME);
  if (pathExists(script)) return { kind: "sysv", script };
  return { kind: "none" };
}

/** Options for {@linkcode serviceAction}. */
export interface ServiceActionOptions {
  /** systemd only: queue the job and return at once (the caller may be the one stopped). */
  noBlock?: boolean;
  timeoutMs?: number;
}

/** Runs `stop`, `start` or `restart` through the service manager; throws with its output when it fails. */
export async function serviceAction(
  service: ServiceManager,
  action: "stop" | "start" | "restart",
  options: ServiceActionOptions = {},
): Promise<void> {
  let argv: string[];
  if (service.kind === "systemd") {
    argv = ["systemctl", action, ...(options.noBlock ? ["--no-block"] : []), service.unit];
  } else if (service.kind === "sysv") {
    argv = [service.script, action];
  } else {
    throw new Error(
      "the agent is not installed as a service (no systemd unit, no /etc/init.d/dcm-agent); " +
        "run 'dcm-agent configure -B' or restart the agent by hand",
    );
  }
  const r = await runProcess(argv, {
    env: {},
    timeoutMs: options.timeoutMs ?? 120_000,
    maxOutputBytes: 65536,
  });
  if (r.code !== 0) {
    const detail = `${r.stdout}${r.stderr}`.trim().replace(/\s*\n\s*/g, "; ") ||
      `exit code ${r.code}`;
    throw new Error(`'${argv.join(" ")}' failed: ${detail}`);
  }
}
