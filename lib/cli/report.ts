/**
 * `dcm-agent --report` (README, Running): a support tarball with the agent's base
 * directory, boot and cloud-init logs, metadata and process facts. Unlike the
 * original, the `secure/` directory (token, journal) is left out: the tarball
 * lands in /tmp and is meant to be shared.
 */
import { basename, dirname } from "node:path";
import type { AgentConfig } from "../config/mod.ts";
import { lookupUser, pathExists, platformFor } from "../os/mod.ts";
import { PROTOCOL_VERSION } from "../protocol/mod.ts";
import { VERSION } from "../protocol/mod.ts";

/** Default location of the report, as the original. */
const REPORT_FILE = "/tmp/agent_info.tar.gz";

const SYSTEM_LOGS = [
  "/tmp/boot.log",
  "/tmp/error.log",
  "/var/log/cloud-init-output.log",
  "/var/log/cloud-init.log",
  "/var/log/boot.log",
];

/** Builds the report tarball; returns its path. Throws with a clear message on failure. */
export async function buildReport(
  config: AgentConfig,
  options: { output?: string } = {},
): Promise<string> {
  const output = options.output ?? REPORT_FILE;
  const work = Deno.makeTempDirSync({ prefix: "dcm-report-" });
  try {
    const platform = platformFor(config);
    Deno.writeTextFileSync(
      `${work}/meta_info.txt`,
      [
        `cloud: ${config.cloud.type}`,
        `platform name: ${platform.name}`,
        `platform version: ${platform.version}`,
        `agent version: ${VERSION}`,
        `protocol version: ${PROTOCOL_VERSION}`,
        "",
      ].join("\n"),
    );
    Deno.writeTextFileSync(`${work}/process_info.txt`, processInfo(config.system.user ?? "dcm"));
    const base = config.storage.base_dir ?? "/dcm";
    const args = ["-czf", output, "--ignore-failed-read", "--exclude", `${basename(base)}/secure`];
    if (pathExists(base)) args.push("-C", dirname(base), basename(base));
    for (const f of SYSTEM_LOGS) if (pathExists(f)) args.push("-C", dirname(f), basename(f));
    args.push("-C", work, "meta_info.txt", "process_info.txt");
    const r = await new Deno.Command("tar", { args, stdout: "null", stderr: "piped" }).output();
    if (!r.success) {
      throw new Error(
        `tar could not write ${output}: ${new TextDecoder().decode(r.stderr).trim()}`,
      );
    }
    Deno.chmodSync(output, 0o600);
    return output;
  } finally {
    Deno.removeSync(work, { recursive: true });
  }
}

/** Name, pid, state, command line and memory of the system user's processes. */
function processInfo(user: string): string {
  const uid = lookupUser(user)?.uid;
  const lines: string[] = [`processes of user ${user} (uid ${uid ?? "unknown"})`];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const status = Deno.readTextFileSync(`/proc/${e.name}/status`);
      const procUid = /^Uid:\s+(\d+)/m.exec(status)?.[1];
      if (uid !== undefined && procUid !== String(uid)) continue;
      const name = /^Name:\s+(.*)$/m.exec(status)?.[1] ?? "?";
      const rss = /^VmRSS:\s+(.*)$/m.exec(status)?.[1] ?? "-";
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).split("\0").join(" ").trim();
      lines.push(`${e.name}\t${name}\trss ${rss}\t${cmd}`);
    } catch {
      // The process ended while we looked.
    }
  }
  return lines.join("\n") + "\n";
}
