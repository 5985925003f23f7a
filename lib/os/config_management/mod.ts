/**
 * Configuration management for `configure_server`: one Puppet, Chef or
 * Ansible run in a private directory that is removed afterwards, as the
 * requested user, with a time limit and CANCEL killing the whole process tree.
 * The full output (secrets masked) goes to a file in the agent's log directory;
 * the caller gets it capped. Loaded by path, on first use.
 */
import { join } from "node:path";
import { runAnsible } from "./ansible.ts";
import { runChef } from "./chef.ts";
import { runPuppet } from "./puppet.ts";
import { type RunSettings, runUser, Workspace } from "./workspace.ts";
import type { ConfigOutcome, ConfigRequest, ConfigSettings, ToolRun } from "./types.ts";

export type { ConfigOutcome, ConfigRequest, ConfigSettings, ConfigTool } from "./types.ts";

/** Output kept in memory for the log file, per stream; the reply gets less. */
const FULL_OUTPUT_BYTES = 16 * 1024 * 1024;
/** Output files kept in the log directory (older ones are deleted). */
const KEPT_OUTPUT_FILES = 20;
const OUTPUT_FILE_PREFIX = "configure_server-";

/** Runs the tool of `request` once; throws a clear error when the run cannot start. */
export async function runConfigurationManagement(
  request: ConfigRequest,
  options: { conf: ConfigSettings; signal: AbortSignal },
): Promise<ConfigOutcome> {
  const conf = options.conf;
  const settings: RunSettings = {
    user: runUser(request.runAs),
    sudo: conf.sudo,
    timeoutMs: conf.timeoutSeconds * 1000,
    maxOutputBytes: FULL_OUTPUT_BYTES,
    signal: options.signal,
    extraPath: conf.extraPath,
  };
  const secrets = secretTexts(request);
  const ws = await Workspace.create(conf.tempDir, settings);
  let run: ToolRun;
  try {
    const tool = request.tool === "puppet"
      ? runPuppet
      : request.tool === "chef"
      ? runChef
      : runAnsible;
    run = await tool(request, ws, { settings, conf });
  } catch (err) {
    throw new Error(maskSecrets((err as Error).message, secrets));
  } finally {
    await ws.remove();
  }
  const { result } = run;
  const stdout = maskSecrets(result.stdout, secrets);
  const stderr = maskSecrets(result.stderr, secrets);
  let note = "";
  if (result.timedOut) {
    note = `the ${request.tool} run took longer than ${conf.timeoutSeconds} s and was stopped; ` +
      "raise [configuration_management] run_timeout in agent.conf if it needs more time";
  } else if (result.cancelled) {
    note = `the ${request.tool} run was cancelled and stopped`;
  }
  const ok = run.okCodes.includes(result.code) && note === "";
  const code = ok ? 0 : result.code === 0 ? 1 : result.code;
  const logFile = await writeOutputFile(conf.logDir, {
    tool: request.tool,
    command: maskSecrets(run.command, secrets),
    code: result.code,
    stdout,
    stderr,
    note,
  });
  return {
    code,
    stdout: tail(stdout, conf.replyBytes, logFile),
    stderr: tail(stderr, conf.replyBytes, logFile),
    note,
    logFile,
  };
}

/** The secret values of a request, and their lines, so output can never echo them. */
function secretTexts(request: ConfigRequest): string[] {
  const out = new Set<string>();
  for (const value of [request.authSecret, request.clientKey]) {
    if (!value) continue;
    out.add(value.trim());
    for (const line of value.split("\n")) {
      // PEM body lines; headers such as "-----END RSA PRIVATE KEY-----" are not secret.
      if (line.trim().length >= 16 && !line.startsWith("-----")) out.add(line.trim());
    }
  }
  return [...out].filter((s) => s.length > 0).sort((a, b) => b.length - a.length);
}

/** Replaces every occurrence of a secret value by "<redacted>". */
export function maskSecrets(text: string, secrets: string[]): string {
  let out = text;
  for (const s of secrets) if (out.includes(s)) out = out.split(s).join("<redacted>");
  return out;
}

/** The last `bytes` of `text` (about: characters), with a note of what was cut and where it is. */
function tail(text: string, bytes: number, logFile: string | null): string {
  if (text.length <= bytes) return text;
  const where = logFile ? `; the full output is in ${logFile}` : "";
  return `[dcm-agent: ${text.length - bytes} earlier characters cut${where}]\n` +
    text.slice(text.length - bytes);
}

interface OutputRecord {
  tool: string;
  command: string;
  code: number;
  stdout: string;
  stderr: string;
  note: string;
}

/** Writes the full output (mode 0600) and prunes old files; null when it cannot. */
async function writeOutputFile(dir: string, record: OutputRecord): Promise<string | null> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const file = join(dir, `${OUTPUT_FILE_PREFIX}${record.tool}-${stamp}.log`);
  const text = [
    `command: ${record.command}`,
    `exit code: ${record.code}`,
    ...(record.note ? [`note: ${record.note}`] : []),
    "----- stdout -----",
    record.stdout,
    "----- stderr -----",
    record.stderr,
    "",
  ].join("\n");
  try {
    await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
    await Deno.writeTextFile(file, text, { mode: 0o600 });
    await prune(dir);
    return file;
  } catch {
    // The reply still carries the output; a missing log directory must not fail the run.
    return null;
  }
}

async function prune(dir: string): Promise<void> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    if (e.isFile && e.name.startsWith(OUTPUT_FILE_PREFIX)) names.push(e.name);
  }
  names.sort();
  for (const name of names.slice(0, Math.max(0, names.length - KEPT_OUTPUT_FILES))) {
    await Deno.remove(join(dir, name)).catch(() => {});
  }
}
