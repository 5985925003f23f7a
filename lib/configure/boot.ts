/**
 * Start at boot (`configure -B`): a systemd unit where systemd is present,
 * otherwise a SysV init script registered with insserv, update-rc.d or
 * chkconfig (README, Installing on a VM). Both files are shipped in config/ and embedded in the
 * binary through text imports; configure fills in the installed paths.
 * With a root other than "/", files are written below it and links are made
 * by hand, so the running system's init is never touched.
 */
import { basename, join } from "node:path";
import { fileURLToPath } from "node:url";
import { writeFileAtomic } from "../os/mod.ts";
import unitTemplate from "../../config/dcm-agent.service" with { type: "text" };
import initTemplate from "../../config/dcm-agent.init" with { type: "text" };
import { AGENT_RUNTIME_FLAGS } from "../config/mod.ts";
import { pathExists } from "../os/mod.ts";
import { SERVICE_NAME } from "../os/mod.ts";

/** The init systems configure can register with. */
export type InitSystem = "systemd" | "sysv";

/** The name of the unit and of the init script. */
export { SERVICE_NAME };

/** What the boot files start. */
export interface BootTarget {
  /** The program that runs the agent: the binary, or deno plus its arguments. */
  program: readonly string[];
  /** The agent.conf given to the agent with -c. */
  confFile: string;
  /** The base directory (for the pid file and the init script's output file). */
  base: string;
}

/** Options for {@linkcode installBoot}. */
export interface InstallBootOptions {
  /** Where / is; default "/". */
  root?: string;
  /** Overrides detection (tests). */
  initSystem?: InitSystem;
}

/** What {@linkcode installBoot} did. */
export interface BootResult {
  initSystem: InitSystem;
  /** The unit or init script that was written. */
  file: string;
  /** How it was enabled, e.g. "systemctl enable" or "rc links". */
  method: string;
}

/** The command line that runs this program as the agent: the compiled binary, or deno with its main module. */
export function agentProgram(): string[] {
  const exec = Deno.execPath();
  if (basename(exec) === "deno" && Deno.mainModule.startsWith("file:")) {
    return [exec, "run", "-A", ...AGENT_RUNTIME_FLAGS, fileURLToPath(Deno.mainModule)];
  }
  return [exec];
}

/** systemd when it runs or is installed under `root`, otherwise SysV init. */
export function detectInitSystem(root = "/"): InitSystem {
  const marks = ["run/systemd/system", "usr/lib/systemd/systemd", "lib/systemd/systemd"];
  return marks.some((p) => pathExists(join(root, p))) ? "systemd" : "sysv";
}

/** Whether a boot unit or init script of the agent is installed under `root`. */
export function bootInstalled(root = "/"): boolean {
  return [`etc/systemd/system/${SERVICE_NAME}.service`, `etc/init.d/${SERVICE_NAME}`]
    .some((p) => pathExists(join(root, p)));
}

/** The systemd unit for `target`. */
export function renderUnit(target: BootTarget): string {
  // The agent writes and removes its pid file itself (see the template).
  return replaceLine(unitTemplate, "ExecStart=", `ExecStart=${words(target).join(" ")}`);
}

/** The SysV init script for `target`. */
function renderInitScript(target: BootTarget): string {
  const [daemon, ...args] = words(target);
  let text = replaceLine(initTemplate, "DAEMON=", `DAEMON=${daemon}`);
  text = replaceLine(text, "DAEMON_ARGS=", `DAEMON_ARGS="${args.join(" ")}"`);
  text = replaceLine(text, "PIDFILE=", `PIDFILE=${safeWord(join(target.base, "dcm-agent.pid"))}`);
  return replaceLine(
    text,
    "OUTFILE=",
    `OUTFILE=${safeWord(join(target.base, "logs", "dcm-agent.out"))}`,
  );
}

/** Writes and enables the boot service for `target`. */
export function installBoot(target: BootTarget, options: InstallBootOptions = {}): BootResult {
  const root = options.root ?? "/";
  const initSystem = options.initSystem ?? detectInitSystem(root);
  return initSystem === "systemd" ? installUnit(target, root) : installInitScript(target, root);
}

function installUnit(target: BootTarget, root: string): BootResult {
  const unitDir = join(root, "etc/systemd/system");
  const file = join(unitDir, `${SERVICE_NAME}.service`);
  Deno.mkdirSync(unitDir, { recursive: true });
  writeFileAtomic(file, renderUnit(target), { mode: 0o644 });
  if (root === "/") {
    // daemon-reload only talks to a running systemd (not in an image build).
    if (pathExists("/run/systemd/system")) runTool("systemctl", ["daemon-reload"]);
    const enabled = runTool("systemctl", ["enable", `${SERVICE_NAME}.service`]);
    if (enabled !== undefined) return { initSystem: "systemd", file, method: "systemctl enable" };
  }
  // What `systemctl enable` does for WantedBy=multi-user.target.
  const wants = join(unitDir, "multi-user.target.wants");
  Deno.mkdirSync(wants, { recursive: true });
  replaceSymlink(
    `/etc/systemd/system/${SERVICE_NAME}.service`,
    join(wants, `${SERVICE_NAME}.service`),
  );
  return { initSystem: "systemd", file, method: "multi-user.target.wants link" };
}

function installInitScript(target: BootTarget, root: string): BootResult {
  const initDir = join(root, "etc/init.d");
  const file = join(initDir, SERVICE_NAME);
  Deno.mkdirSync(initDir, { recursive: true });
  writeFileAtomic(file, renderInitScript(target), { mode: 0o755 });
  if (root === "/") {
    // The original's order (README, Installing on a VM): the first tool that exists does it.
    const tools: [string, string[]][] = [
      ["insserv", [SERVICE_NAME]],
      ["update-rc.d", [SERVICE_NAME, "defaults"]],
      ["chkconfig", ["--add", SERVICE_NAME]],
    ];
    for (const [tool, args] of tools) {
      if (runTool(tool, args) !== undefined) return { initSystem: "sysv", file, method: tool };
    }
  }
  // What update-rc.d does for Default-Start 2 3 4 5 / Default-Stop 0 1 6.
  for (const level of ["0", "1", "2", "3", "4", "5", "6"]) {
    const dir = join(root, `etc/rc${level}.d`);
    Deno.mkdirSync(dir, { recursive: true });
    const link = ["0", "1", "6"].includes(level) ? `K20${SERVICE_NAME}` : `S20${SERVICE_NAME}`;
    replaceSymlink(`../init.d/${SERVICE_NAME}`, join(dir, link));
  }
  return { initSystem: "sysv", file, method: "rc links" };
}

/** The words of the agent command line, each checked to need no quoting. */
function words(target: BootTarget): string[] {
  return [...target.program, "run", "-c", target.confFile].map(safeWord);
}

/**
 * Refuses words that a unit file or `sh` would split or expand. Quoting
 * them correctly for both is possible but such paths are almost always a
 * mistake, and a boot file that silently runs the wrong thing is worse.
 */
function safeWord(word: string): string {
  const bad = /[\s"'\\$`%;&|<>()*?]/.exec(word);
  if (bad) {
    throw new Error(
      `cannot write the boot files: '${word}' contains '${
        bad[0]
      }', which the unit and init script cannot quote; use paths without spaces or special characters`,
    );
  }
  return word;
}

/** Replaces the first line starting with `prefix` (a line of the shipped template). */
function replaceLine(text: string, prefix: string, line: string): string {
  const lines = text.split("\n");
  const i = lines.findIndex((l) => l.startsWith(prefix));
  if (i < 0) {
    throw new Error(`the embedded boot template has no '${prefix}' line; the build is broken`);
  }
  lines[i] = line;
  return lines.join("\n");
}

function replaceSymlink(target: string, link: string): void {
  try {
    Deno.removeSync(link);
  } catch { /* not there yet */ }
  Deno.symlinkSync(target, link);
}

/**
 * Runs an init tool found on PATH or in the sbin directories (cloud-init and
 * sudo may run configure without them on PATH). Returns undefined when the
 * tool does not exist; throws when it fails.
 */
function runTool(tool: string, args: string[]): true | undefined {
  const path = `${Deno.env.get("PATH") ?? "/usr/bin:/bin"}:/usr/local/sbin:/usr/sbin:/sbin`;
  const found = path.split(":").map((d) => join(d, tool)).find(isExecutable);
  if (!found) return undefined;
  const out = new Deno.Command(found, { args, stdout: "piped", stderr: "piped" }).outputSync();
  if (!out.success) {
    const detail = new TextDecoder().decode(out.stderr).trim() || `exit code ${out.code}`;
    throw new Error(
      `'${tool} ${
        args.join(" ")
      }' failed: ${detail}; fix the init system or run configure without -B`,
    );
  }
  return true;
}

function isExecutable(path: string): boolean {
  try {
    const st = Deno.statSync(path);
    return st.isFile && ((st.mode ?? 0) & 0o111) !== 0;
  } catch {
    return false;
  }
}
