/**
 * plugin.conf (README, Configuration): which commands the agent offers, in which order,
 * and their execution class. Section names are regular expressions anchored
 * at both ends, matched against `plugin:<command>`; the first match wins.
 * A section with `type = exe` is an external executable (exe_plugin.ts).
 */
import { getLogger } from "../logging/mod.ts";
import { parseIni } from "../config/mod.ts";
import type { CommandModule, Execution } from "./command.ts";
import { describeExePlugin, type ExeCommandModule, exePluginModule } from "./exe_plugin.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

/** One loaded `[plugin:<name>]` entry. */
export interface PluginEntry {
  /** The raw name after `plugin:` (may be a regex such as `unmount.*`). */
  name: string;
  module: CommandModule;
  execution: Execution;
  matcher: RegExp;
}

/** The commands the agent offers, in plugin.conf order. */
export interface PluginTable {
  entries: PluginEntry[];
  /** Finds the command for a request, first match wins. */
  find(command: string): PluginEntry | undefined;
  /** Names advertised in the handshake `plugins` feature. */
  names(): string[];
  /** Where the table came from (a file name or the built-in list), for logs. */
  source: string;
}

/** Builds the table from the built-in command list (no plugin.conf). */
export function builtinPluginTable(commands: readonly CommandModule[]): PluginTable {
  return makeTable(
    commands.map((m) => ({
      name: m.pluginSection ?? m.name,
      module: m,
      execution: m.execution,
      matcher: anchored(m.pluginSection ?? m.name),
    })),
    "built-in command list",
  );
}

/** Loads plugin.conf; entries that cannot be loaded are skipped with an error log. */
export function loadPluginConf(
  file: string,
  commands: readonly CommandModule[],
): PluginTable {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (err) {
    throw new Error(
      `cannot read plugin.conf ${file}: ${
        (err as Error).message
      }; fix [plugin] configfile in agent.conf or remove it to use the built-in commands`,
    );
  }
  return parsePluginConf(text, { file, commands });
}

/** Parses plugin.conf text (see {@linkcode loadPluginConf}). */
export function parsePluginConf(
  text: string,
  options: { file: string; commands: readonly CommandModule[] },
): PluginTable {
  const byName = new Map(options.commands.map((m) => [m.name, m]));
  const entries: PluginEntry[] = [];
  for (const section of parseIni(text)) {
    if (!section.name.startsWith("plugin:")) continue;
    const name = section.name.slice("plugin:".length);
    let matcher: RegExp;
    try {
      matcher = anchored(name);
    } catch {
      log.error("plugin.conf {file}: section [{section}] is not a valid pattern; skipped", {
        file: options.file,
        section: section.name,
      });
      continue;
    }
    const type = section.entries.get("type") ?? "python_module";
    if (type === "exe") {
      const exe = exePluginModule(name, section.entries);
      if (typeof exe === "string") {
        log.warn("plugin.conf {file}: [{section}] is skipped: {problem}", {
          file: options.file,
          section: section.name,
          problem: exe,
        });
        continue;
      }
      entries.push({ name, module: exe, execution: executionOf(section.entries, exe), matcher });
      continue;
    }
    if (type !== "python_module" && type !== "builtin") {
      log.error(
        "plugin.conf {file}: [{section}] has type '{type}', which this agent cannot load; skipped",
        {
          file: options.file,
          section: section.name,
          type,
        },
      );
      continue;
    }
    const moduleName = section.entries.get("module_name") ?? "";
    const module = resolveModule(name, moduleName, byName);
    if (!module) {
      log.error(
        "plugin.conf {file}: [{section}] names module '{moduleName}', which this agent does not provide; skipped",
        { file: options.file, section: section.name, moduleName },
      );
      continue;
    }
    entries.push({ name, module, execution: executionOf(section.entries, module), matcher });
  }
  return makeTable(entries, options.file);
}

/**
 * Loads plugin.conf and asks `describe = true` exe plugins for their
 * arguments; a plugin that cannot answer is skipped with a warning.
 */
export async function loadPluginTable(
  file: string,
  commands: readonly CommandModule[],
): Promise<PluginTable> {
  const table = loadPluginConf(file, commands);
  const failed = new Set<PluginEntry>();
  for (const e of table.entries) {
    const m = e.module as Partial<ExeCommandModule>;
    if (!m.describe) continue;
    const problem = await describeExePlugin(m as ExeCommandModule);
    if (problem) {
      log.warn("plugin.conf {file}: [plugin:{name}] is skipped: {problem}", {
        file,
        name: e.name,
        problem,
      });
      failed.add(e);
    }
  }
  return failed.size ? makeTable(table.entries.filter((e) => !failed.has(e)), file) : table;
}

/** The original decides the class by the presence of a key, whatever its value. */
function executionOf(keys: ReadonlyMap<string, string>, module: CommandModule): Execution {
  return keys.has("longer_runner")
    ? "long"
    : keys.has("immediate")
    ? "immediate"
    : module.execution;
}

/** Finds the built-in module for a plugin.conf entry. */
function resolveModule(
  sectionName: string,
  moduleName: string,
  byName: Map<string, CommandModule>,
): CommandModule | undefined {
  const last = moduleName.split(".").pop() ?? "";
  return byName.get(last) ?? byName.get(sectionName) ??
    byName.get(sectionName.replace(/\.\*$/, ""));
}

function anchored(name: string): RegExp {
  return new RegExp(`^plugin:${name}$`);
}

function makeTable(entries: PluginEntry[], source: string): PluginTable {
  const exact = new Map<string, PluginEntry>();
  return {
    entries,
    source,
    find(command: string): PluginEntry | undefined {
      const hit = exact.get(command);
      if (hit) return hit;
      const key = `plugin:${command}`;
      const found = entries.find((e) => e.matcher.test(key));
      if (found && exact.size < 1000) exact.set(command, found);
      return found;
    },
    names: () => entries.map((e) => e.name),
  };
}

/** The default plugin.conf that `configure` writes: one section per built-in command. */
export function defaultPluginConfText(commands: readonly CommandModule[]): string {
  const lines = [
    "# Commands this agent offers to the manager, in the order they are advertised.",
    "# A section name is a regular expression matched against 'plugin:<command>'.",
    "# 'longer_runner' makes a command a long-running job; 'immediate' runs it at once.",
    "[default]",
    "",
  ];
  for (const m of commands) {
    lines.push(
      `[plugin:${m.pluginSection ?? m.name}]`,
      "type = python_module",
      `module_name = dcm.agent.plugins.builtin.${m.name}`,
    );
    if (m.execution === "long") lines.push("longer_runner = True");
    if (m.execution === "immediate") lines.push("immediate = True");
    lines.push("");
  }
  return lines.join("\n");
}
