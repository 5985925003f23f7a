/**
 * `dcm-agent upgrade-binary FILE|URL [--sha256 HEX]`: replaces the agent's
 * executable with a checked new one, restarts the service and waits for the
 * new agent to reach the manager, rolling back to the previous executable
 * otherwise. Run from an agent script (an `upgrade`), it finishes in a
 * detached process, since restarting the agent ends the script.
 */
import { parseArgs } from "node:util";
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { loadConfig } from "../config/mod.ts";
import { AGENT_RUNTIME_FLAGS } from "../config/mod.ts";
import { VERSION } from "../protocol/mod.ts";

const UPGRADE_BINARY_USAGE = `Usage: dcm-agent upgrade-binary FILE|URL [options]

Replaces the agent's executable: checks the new file (SHA-256, '--version'),
keeps the old one as <target>.previous, swaps by rename, restarts the service
(systemd or /etc/init.d/dcm-agent) and waits for the new agent's handshake
with the manager. Without it in time, the previous executable is put back and
restarted. The outcome is shown by 'dcm-agent status' and sent to the manager
as a LOG line. Exit 0: upgraded; 1: rolled back or failed; 2: bad usage.
  --sha256 HEX         the new file's SHA-256; a mismatch changes nothing
  --timeout SECONDS    how long the new agent has to reach the manager (default 300)
  --target PATH        the executable to replace (default: this one)
  -c, --config FILE    the agent.conf (for the base directory)
  --detach             finish in the background (default when run from an agent script)
  --no-detach          stay in the foreground even from an agent script
  --root DIR           look for the service under DIR (tests)
  -h, --help           print this help`;

/** What the command line asks for. */
interface UpgradeRequest {
  /** The new file or URL; null for the detached finisher (already staged). */
  source: string | null;
  /** Index of the source in the arguments (left out for the finisher). */
  sourceIndex: number;
  sha256: string | null;
  timeoutMs: number;
  target: string;
  baseDir: string;
  root: string;
  detach: boolean;
  /** The finisher's staged file and its version. */
  staged: { path: string; version: string } | null;
}

/** Runs `dcm-agent upgrade-binary`; returns the exit code. */
export async function upgradeBinaryMain(args: string[]): Promise<number> {
  const req = parseRequest(args);
  if (typeof req === "number") return req;
  const { lockUpgrade } = await import("../os/binary_swap.ts");
  let unlock: () => void;
  try {
    // The detached finisher may start before its parent has let go of the lock.
    unlock = await lockUpgrade(req.target, { waitMs: req.staged ? 30_000 : 0 });
  } catch (err) {
    console.error(`dcm-agent upgrade-binary: ${(err as Error).message}`);
    return 1;
  }
  try {
    return await runUpgrade(req, args);
  } finally {
    unlock();
  }
}

/** Parses the arguments; an exit code when there is nothing to do (help) or they are wrong. */
function parseRequest(args: string[]): UpgradeRequest | number {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      strict: true,
      allowPositionals: true,
      tokens: true,
      options: {
        sha256: { type: "string" },
        timeout: { type: "string" },
        target: { type: "string" },
        config: { type: "string", short: "c" },
        detach: { type: "boolean" },
        "no-detach": { type: "boolean" },
        root: { type: "string" },
        "finish-staged": { type: "string" },
        "staged-version": { type: "string" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    console.error(`dcm-agent upgrade-binary: ${(err as Error).message}\n\n${UPGRADE_BINARY_USAGE}`);
    return 2;
  }
  const v = parsed.values;
  if (v.help) {
    console.log(UPGRADE_BINARY_USAGE);
    return 0;
  }
  const finishing = v["finish-staged"] !== undefined;
  if (!finishing && parsed.positionals.length !== 1) {
    console.error(
      `dcm-agent upgrade-binary: give exactly one FILE or URL\n\n${UPGRADE_BINARY_USAGE}`,
    );
    return 2;
  }
  const timeout = Number(v.timeout ?? "300");
  if (!Number.isFinite(timeout) || timeout <= 0) {
    console.error(`dcm-agent upgrade-binary: --timeout must be a positive number of seconds`);
    return 2;
  }
  const given = v.target ?? defaultTarget();
  if (given === null) {
    console.error(
      "dcm-agent upgrade-binary: this agent runs from source; give the executable to replace with --target",
    );
    return 2;
  }
  let target: string;
  try {
    // Through a link, the file it points to is replaced (the link stays).
    target = Deno.realPathSync(given);
  } catch (err) {
    console.error(`dcm-agent upgrade-binary: the target ${given}: ${(err as Error).message}`);
    return 2;
  }
  let baseDir: string;
  try {
    baseDir = loadConfig({ file: v.config }).storage.base_dir ?? "/dcm";
  } catch (err) {
    console.error(
      `dcm-agent upgrade-binary: cannot read the agent's configuration: ${(err as Error).message}`,
    );
    return 2;
  }
  return {
    source: finishing ? null : parsed.positionals[0],
    sourceIndex: parsed.tokens.find((t) => t.kind === "positional")?.index ?? -1,
    sha256: v.sha256 ?? null,
    timeoutMs: timeout * 1000,
    target,
    baseDir,
    root: v.root ?? "/",
    // From an agent script (an `upgrade`), the restart would end the script: finish detached.
    detach: v.detach || (Deno.env.get("DCM_LOG_FILE") !== undefined && !v["no-detach"]),
    staged: finishing
      ? { path: v["finish-staged"]!, version: v["staged-version"] ?? "unknown" }
      : null,
  };
}

/** Stages (or takes the staged file), then swaps and watches, or hands over to a detached finisher. */
async function runUpgrade(req: UpgradeRequest, args: string[]): Promise<number> {
  const { stageBinary, swapAndWatch } = await import("../os/binary_swap.ts");
  const { installedService } = await import("../os/service.ts");
  const say = (line: string) => console.log(`dcm-agent upgrade-binary: ${line}`);
  let staged = req.staged;
  if (staged === null) {
    try {
      staged = await stageBinary(req.source!, { target: req.target, sha256: req.sha256 });
    } catch (err) {
      console.error(`dcm-agent upgrade-binary: ${(err as Error).message}`);
      return 1;
    }
    say(`${staged.path} answers version ${staged.version}`);
    if (req.detach) {
      // The source is already staged: the finisher gets every argument but it.
      return spawnFinisher(args.filter((_, i) => i !== req.sourceIndex), {
        baseDir: req.baseDir,
        staged: staged.path,
        version: staged.version,
      });
    }
  }
  const result = await swapAndWatch(staged, {
    target: req.target,
    baseDir: req.baseDir,
    service: installedService(req.root),
    fromVersion: VERSION,
    timeoutMs: req.timeoutMs,
    log: say,
  });
  if (result.state === "upgraded") return 0;
  console.error(`dcm-agent upgrade-binary: ${result.state}: ${result.reason ?? ""}`);
  return 1;
}

/** The running compiled executable, or null when running from source. */
function defaultTarget(): string | null {
  const exec = Deno.execPath();
  return basename(exec) === "deno" ? null : exec;
}

/** Runs the swap in a detached process (own session) logging to <base>/logs/upgrade-binary.log. */
function spawnFinisher(
  args: string[],
  options: { baseDir: string; staged: string; version: string },
): number {
  const exec = Deno.execPath();
  const self = basename(exec) === "deno" && Deno.mainModule.startsWith("file:")
    ? [exec, "run", "-A", ...AGENT_RUNTIME_FLAGS, fileURLToPath(Deno.mainModule)]
    : [exec];
  const argv = [
    ...self,
    "upgrade-binary",
    ...args,
    "--no-detach",
    "--finish-staged",
    options.staged,
    "--staged-version",
    options.version,
  ];
  const logFile = join(options.baseDir, "logs", "upgrade-binary.log");
  new Deno.Command("/bin/sh", {
    args: ["-c", 'log=$1; shift; exec "$@" >>"$log" 2>&1 </dev/null', "sh", logFile, ...argv],
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn().unref();
  console.log(
    `dcm-agent upgrade-binary: the swap and restart continue in the background; ` +
      `follow ${logFile} and 'dcm-agent status'`,
  );
  return 0;
}
