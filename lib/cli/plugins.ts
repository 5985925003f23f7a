/**
 * `dcm-agent plugins add|remove|list`: the counterpart of the original's
 * `dcm-agent-add-plugins`, for external executable plugins. It edits the
 * plugin.conf named by agent.conf in place: other sections and their
 * comments stay as they are, the result is checked before it is written, and
 * it replaces the file atomically. A running agent applies it on SIGHUP
 * (`--reload` sends it) with a new handshake.
 */
import { parseArgs } from "node:util";
import { type AgentConfig, loadConfig, parseIni } from "../config/mod.ts";
import {
  checkExecutable,
  defaultPluginConfText,
  describeExePlugin,
  type ExeCommandModule,
  exePluginModule,
  parseArgDeclaration,
} from "../core/mod.ts";
import { writeFileAtomic } from "../os/mod.ts";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";

const USAGE = `Usage: dcm-agent plugins list [-c FILE]
       dcm-agent plugins add NAME PATH [options] [-c FILE]
       dcm-agent plugins remove NAME [-c FILE] [--reload]

Adds, removes or lists the commands of plugin.conf ([plugin] configfile in agent.conf).
An external plugin is an executable that reads the request as JSON on stdin and
prints one JSON reply on stdout (see the README).
Options of add:
  --long                 a long-running job (longer_runner)
  --immediate            runs at once, outside the worker pool
  --arg NAME=DECL        declares an argument, DECL = TYPE[; required][; default=JSON][; help=TEXT]
                         (repeatable); TYPE is str, int, float, bool, list, dict, json,
                         base64_text, base64_bytes or user_name
  --describe             take the arguments from 'PATH --describe' instead
  --timeout SECONDS      time limit of one run (default [jobs] script_timeout)
  -o, --overwrite        replace an existing section of that name
  --reload               send SIGHUP to the running agent afterwards`;

const NAME_RE = /^[A-Za-z0-9_][A-Za-z0-9_-]{0,99}$/;

/** Output of the tool (tests capture it). */
export interface PluginsIo {
  out(line: string): void;
  err(line: string): void;
}

const consoleIo: PluginsIo = { out: (l) => console.log(l), err: (l) => console.error(l) };

/** Runs `dcm-agent plugins ...`; returns the exit code. */
export async function pluginsMain(args: string[], io: PluginsIo = consoleIo): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        config: { type: "string", short: "c" },
        long: { type: "boolean" },
        immediate: { type: "boolean" },
        arg: { type: "string", multiple: true },
        describe: { type: "boolean" },
        timeout: { type: "string" },
        overwrite: { type: "boolean", short: "o" },
        reload: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
    });
  } catch (err) {
    io.err(`dcm-agent plugins: ${(err as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values: v, positionals: [action, ...rest] } = parsed;
  if (v.help || action === undefined) {
    io.out(USAGE);
    return action === undefined && !v.help ? 2 : 0;
  }
  const config = loadConfig({ file: v.config });
  const file = config.plugin.configfile;
  if (!file) {
    io.err(
      "dcm-agent plugins: agent.conf names no plugin.conf; set [plugin] configfile (dcm-agent configure writes one)",
    );
    return 1;
  }
  let code: number;
  if (action === "list" && rest.length === 0) code = list(file, io);
  else if (action === "remove" && rest.length === 1) code = remove(file, rest[0], io);
  else if (action === "add" && rest.length === 2) {
    code = await add(file, { name: rest[0], path: rest[1], ...v }, io);
  } else {
    io.err(`dcm-agent plugins: wrong arguments for '${action}'\n\n${USAGE}`);
    return 2;
  }
  if (code === 0 && action !== "list") afterChange(config, v.reload === true, io);
  return code;
}

function list(file: string, io: PluginsIo): number {
  const text = readOrDefault(file);
  for (const s of parseIni(text)) {
    if (!s.name.startsWith("plugin:")) continue;
    const name = s.name.slice(7);
    const type = s.entries.get("type") ?? "python_module";
    const cls = s.entries.has("longer_runner")
      ? "long"
      : s.entries.has("immediate")
      ? "immediate"
      : "normal";
    if (type === "exe") {
      const path = s.entries.get("path") ?? "";
      const problem = checkExecutable(path);
      io.out(`${name}\texe\t${cls}\t${path}${problem ? `\tSKIPPED: ${problem}` : ""}`);
    } else io.out(`${name}\tbuilt-in\t${cls}`);
  }
  return 0;
}

interface AddOptions {
  name: string;
  path: string;
  long?: boolean;
  immediate?: boolean;
  arg?: string[];
  describe?: boolean;
  timeout?: string;
  overwrite?: boolean;
}

async function add(file: string, o: AddOptions, io: PluginsIo): Promise<number> {
  if (!NAME_RE.test(o.name)) {
    io.err(`dcm-agent plugins: '${o.name}' is not a command name (letters, digits, '_' and '-')`);
    return 2;
  }
  if (o.long && o.immediate) {
    io.err("dcm-agent plugins: a command is either --long or --immediate, not both");
    return 2;
  }
  const keys: [string, string][] = [["type", "exe"], ["path", o.path]];
  if (o.long) keys.push(["longer_runner", "True"]);
  if (o.immediate) keys.push(["immediate", "True"]);
  if (o.timeout !== undefined) keys.push(["timeout", o.timeout]);
  if (o.describe) keys.push(["describe", "True"]);
  for (const a of o.arg ?? []) {
    const eq = a.indexOf("=");
    const argName = a.slice(0, eq).trim();
    if (eq < 1 || !/^[a-z_][a-z0-9_]*$/.test(argName)) {
      io.err(`dcm-agent plugins: --arg '${a}' must be NAME=DECL with a lower-case name`);
      return 2;
    }
    const decl = a.slice(eq + 1).trim();
    const spec = parseArgDeclaration(decl);
    if (typeof spec === "string") {
      io.err(`dcm-agent plugins: --arg ${argName}: ${spec}`);
      return 2;
    }
    keys.push([`arg.${argName}`, decl]);
  }
  if (keys.some(([k, val]) => /[\r\n]/.test(k + val))) {
    io.err("dcm-agent plugins: values must be single-line");
    return 2;
  }
  // The section must load exactly as the agent will load it.
  const module = exePluginModule(o.name, new Map(keys));
  if (typeof module === "string") {
    io.err(`dcm-agent plugins: ${module}`);
    return 1;
  }
  if (o.describe) {
    const problem = await describeExePlugin(module as ExeCommandModule);
    if (problem) {
      io.err(`dcm-agent plugins: ${problem}`);
      return 1;
    }
  }
  const text = readOrDefault(file);
  const section = `plugin:${o.name}`;
  const exists = parseIni(text).some((s) => s.name === section);
  if (exists && !o.overwrite) {
    io.err(`dcm-agent plugins: ${file} already has [${section}]; add -o to replace it`);
    return 1;
  }
  const shadow = parseIni(text).find((s) =>
    s.name.startsWith("plugin:") && s.name !== section && matches(s.name, o.name)
  );
  if (shadow) {
    io.err(
      `dcm-agent plugins: warning: the earlier section [${shadow.name}] also matches '${o.name}' and wins`,
    );
  }
  const block = [`[${section}]`, ...keys.map(([k, val]) => `${k} = ${val}`), ""];
  const next = exists ? replaceSection(text, section, block) : appendSection(text, block);
  parseIni(next); // Never write a file the agent cannot read.
  writeFileAtomic(file, next);
  io.out(`${exists ? "replaced" : "added"} [${section}] in ${file}`);
  return 0;
}

function remove(file: string, name: string, io: PluginsIo): number {
  const text = readOrDefault(file);
  const section = `plugin:${name}`;
  if (!parseIni(text).some((s) => s.name === section)) {
    io.err(`dcm-agent plugins: ${file} has no [${section}]`);
    return 1;
  }
  const next = replaceSection(text, section, []);
  parseIni(next);
  writeFileAtomic(file, next);
  io.out(`removed [${section}] from ${file}`);
  return 0;
}

/** Tells the running agent, or says how to. */
function afterChange(config: AgentConfig, reload: boolean, io: PluginsIo): void {
  const pidFile = `${config.storage.base_dir}/dcm-agent.pid`;
  let pid = NaN;
  try {
    pid = Number(Deno.readTextFileSync(pidFile).trim());
  } catch { /* not running */ }
  if (reload && Number.isInteger(pid) && pid > 0) {
    try {
      Deno.kill(pid, "SIGHUP");
      io.out(`sent SIGHUP to the agent (pid ${pid}); it offers the new command list now`);
      return;
    } catch (err) {
      io.err(`dcm-agent plugins: cannot signal pid ${pid}: ${(err as Error).message}`);
    }
  }
  io.out(`a running agent applies this on SIGHUP: kill -HUP $(cat ${pidFile})`);
}

/** The file's text; a missing file starts as the default list, so built-in commands stay offered. */
function readOrDefault(file: string): string {
  try {
    return Deno.readTextFileSync(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return defaultPluginConfText(BUILTIN_COMMANDS);
    throw new Error(`cannot read ${file}: ${(err as Error).message}`);
  }
}

function matches(sectionName: string, command: string): boolean {
  try {
    return new RegExp(`^${sectionName}$`).test(`plugin:${command}`);
  } catch {
    return false;
  }
}

/** Index of each section header line. */
function headers(lines: string[]): { name: string; line: number }[] {
  const out: { name: string; line: number }[] = [];
  lines.forEach((raw, i) => {
    const t = raw.trim();
    const end = t.lastIndexOf("]");
    if (t.startsWith("[") && end > 0 && !/^\s/.test(raw)) {
      out.push({ name: t.slice(1, end).trim(), line: i });
    }
  });
  return out;
}

/**
 * Replaces the lines of `section` (its header up to the next header) with
 * `block`; the comment lines right above the next header belong to that one.
 */
function replaceSection(text: string, section: string, block: string[]): string {
  const lines = text.split("\n");
  const hs = headers(lines);
  const i = hs.findIndex((h) => h.name === section);
  const start = hs[i].line;
  let end = i + 1 < hs.length ? hs[i + 1].line : lines.length;
  if (i + 1 < hs.length) {
    while (end - 1 > start && /^\s*[#;]/.test(lines[end - 1])) end--;
  }
  lines.splice(start, end - start, ...block);
  return lines.join("\n");
}

function appendSection(text: string, block: string[]): string {
  const base = text.endsWith("\n") || text === "" ? text : `${text}\n`;
  const gap = base === "" || base.endsWith("\n\n") ? "" : "\n";
  return `${base}${gap}${block.join("\n")}`;
}
