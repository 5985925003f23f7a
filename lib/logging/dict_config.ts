/**
 * Reader of logging.yaml in the Python `dictConfig` format of the original agent:
 * reads the file, checks its sections, and resolves loggers, `root` and
 * `propagate` into one logger configuration per category, as Python routes
 * records. Handlers are built by handlers.ts.
 */
import {
  compareLogLevel,
  type LoggerConfig,
  type LogLevel as Severity,
  type Sink,
} from "./logger.ts";
import { PYTHON_NUMBERS } from "./format.ts";
import { ConfigError, parseYamlSubset } from "../config/mod.ts";
import { CONSOLE_CATEGORY, WIRE_CATEGORY } from "./categories.ts";
import { TODCM_FORMAT } from "./format.ts";

const CONSOLE_NAME = CONSOLE_CATEGORY.join(".");
const WIRE_NAME = WIRE_CATEGORY.join(".");
/** Sink id of the extra stderr handler (a name no YAML handler is likely to use). */
export const EXTRA_STDERR = "(stderr)";

/** Marks a `@NAME@` placeholder left by `dcm-agent configure`; `@` cannot start a plain YAML value. */
const PLACEHOLDER = /@([A-Z][A-Z0-9_]*)@/g;
/** A placeholder as it reads after {@linkcode readConfig}; group 1 is its name. */
export const UNSUBSTITUTED: RegExp = /__UNSUBSTITUTED_([A-Z][A-Z0-9_]*)__/;

/** A parsed logging.yaml. */
export type Doc = Record<string, unknown>;

/** One handler of the file, as the routing needs it. */
export interface Handler {
  /** Records below it are dropped (applied when the sinks are installed). */
  level: Severity;
  /** `null`: the handler writes nothing (NullHandler, unsupported class, no manager). */
  sink: Sink | null;
  /** The manager sink: only console-category loggers route to it. */
  consoleOnly: boolean;
}

/** Reads and parses a logging.yaml; throws {@linkcode ConfigError} naming the file (and line) when it is unusable. */
export function readConfig(file: string): Doc {
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (err) {
    throw new ConfigError(
      `cannot read the logging configuration ${file}: ${(err as Error).message}; ` +
        "fix [logging] configfile in agent.conf or create the file (dcm-agent configure writes one)",
    );
  }
  const source = text.replace(PLACEHOLDER, "__UNSUBSTITUTED_$1__");
  let doc: unknown;
  try {
    doc = parseYamlSubset(source, { name: file });
  } catch (err) {
    throw new ConfigError(
      `the logging configuration ${file} is not valid YAML or uses YAML this agent does not read: ` +
        `${(err as Error).message}; fix the file or point [logging] configfile in agent.conf ` +
        "to a valid one",
    );
  }
  if (!isMap(doc)) {
    throw new ConfigError(
      `the logging configuration ${file} is not a mapping with handlers and loggers; ` +
        "write it in the Python logging dictConfig format (version: 1, handlers:, loggers:, root:)",
    );
  }
  return doc;
}

/** Without a file: INFO and above to stderr (added by the `stderr` option), console events to the manager. */
export function defaultConfig(): Doc {
  return {
    version: 1,
    formatters: { todcm: { format: TODCM_FORMAT } },
    handlers: {
      dcm_logger: { class: "dcm.agent.logger.dcmLogger", level: "INFO", formatter: "todcm" },
    },
    loggers: { [CONSOLE_NAME]: { handlers: ["dcm_logger"] } },
    root: { level: "INFO" },
  };
}

const TOP_KEYS = new Set([
  "version",
  "disable_existing_loggers",
  "incremental",
  "formatters",
  "filters",
  "handlers",
  "loggers",
  "root",
]);
/** Keys a formatter may have. */
export const FORMATTER_KEYS: Set<string> = new Set([
  "format",
  "datefmt",
  "style",
  "class",
  "()",
  "validate",
  "defaults",
]);
/** Keys a handler may have. */
export const HANDLER_KEYS: Set<string> = new Set([
  "class",
  "()",
  "level",
  "formatter",
  "filters",
  "filename",
  "maxBytes",
  "backupCount",
  "encoding",
  "mode",
  "delay",
  "owner",
  "stream",
  "errors",
]);
const LOGGER_KEYS = new Set(["level", "handlers", "propagate", "filters"]);

/** Whether a parsed value is a mapping. */
export function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

/** A top-level section as a mapping; empty (with a warning if it is something else) when missing. */
export function section(
  doc: Doc,
  key: string,
  where: string,
  warnings: string[],
): Record<string, unknown> {
  const value = doc[key];
  if (value === undefined || value === null) return {};
  if (isMap(value)) return value;
  warnings.push(`${where}: "${key}" is not a mapping and is ignored`);
  return {};
}

/** Warns about each key the agent does not read. */
export function warnUnknownKeys(
  spec: Record<string, unknown>,
  known: Set<string>,
  what: string,
  warnings: string[],
): void {
  for (const key of Object.keys(spec)) {
    if (!known.has(key)) warnings.push(`${what}: unknown key "${key}" is ignored`);
  }
}

/** Warns about top-level keys and settings that are not read as Python would. */
export function checkTopLevel(doc: Doc, where: string, warnings: string[]): void {
  warnUnknownKeys(doc, TOP_KEYS, where, warnings);
  if (doc.version !== undefined && Number(doc.version) !== 1) {
    warnings.push(`${where}: version ${doc.version} is not 1; reading it as version 1`);
  }
  if (doc.incremental === true) {
    warnings.push(
      `${where}: incremental configuration is not supported; the file replaces the whole configuration`,
    );
  }
}

// ---------------------------------------------------------------------------
// Levels

const LEVEL_NAMES: Record<string, Severity> = {
  NOTSET: "trace",
  TRACE: "trace",
  DEBUG: "debug",
  INFO: "info",
  WARN: "warning",
  WARNING: "warning",
  ERROR: "error",
  CRITICAL: "fatal",
  FATAL: "fatal",
};

/** A level from the file; `undefined` when not set. Bad values fall back to INFO with a warning. */
export function parseLevel(value: unknown, what: string, warnings: string[]): Severity | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value === "number") {
    const found = (Object.keys(PYTHON_NUMBERS) as Severity[]).find((l) =>
      PYTHON_NUMBERS[l] >= value
    );
    return value <= 0 ? "trace" : found ?? "fatal";
  }
  const text = String(value).trim();
  const level = LEVEL_NAMES[text.toUpperCase()];
  if (level) return level;
  const placeholder = text.match(UNSUBSTITUTED);
  warnings.push(
    placeholder
      ? `${what}: level still holds the placeholder @${
        placeholder[1]
      }@ (run dcm-agent configure); using INFO`
      : `${what}: unknown level "${text}"; using INFO (use DEBUG, INFO, WARNING, ERROR or CRITICAL)`,
  );
  return "info";
}

/** The more severe of two levels. */
function maxLevel(a: Severity, b: Severity): Severity {
  return compareLogLevel(a, b) >= 0 ? a : b;
}

/**
 * The level of the agent's main log: the most permissive file or stream
 * handler of the `dcm.agent` logger (else of the root), no lower than that
 * logger's own level; INFO when there is none. The extra stderr log uses it.
 */
export function mainLogLevel(
  loggers: Map<string, PyLogger>,
  handlers: Map<string, Handler>,
): Severity {
  for (const name of ["dcm.agent", ""]) {
    const logger = loggers.get(name);
    const levels = (logger?.handlers ?? []).map((h) => handlers.get(h)!)
      .filter((h) => h.sink !== null && !h.consoleOnly).map((h) => h.level);
    if (!logger || levels.length === 0) continue;
    const lowest = levels.reduce((a, b) => compareLogLevel(a, b) <= 0 ? a : b);
    return logger.level ? maxLevel(logger.level, lowest) : lowest;
  }
  return "info";
}

/** Names of the filters defined in the file, warning about all but the original's request filter. */
export function knownFilters(doc: Doc, where: string, warnings: string[]): Set<string> {
  const filters = section(doc, "filters", where, warnings);
  for (const [name, spec] of Object.entries(filters)) {
    const cls = isMap(spec) ? String(spec["()"] ?? spec.class ?? spec.name ?? "") : "";
    // The agent always adds the request id itself, so the original's RequestFilter is a no-op.
    if (!/RequestFilter$/.test(cls)) {
      warnings.push(
        `${where}: filter ${name} (${cls || "no class"}) is not supported and is ignored`,
      );
    }
  }
  return new Set(Object.keys(filters));
}

/** Warns about filter names that the file does not define. */
export function checkFilterRefs(
  refs: unknown,
  known: Set<string>,
  what: string,
  warnings: string[],
): void {
  if (refs === undefined || refs === null) return;
  for (const ref of Array.isArray(refs) ? refs : [refs]) {
    if (!known.has(String(ref))) {
      warnings.push(`${what}: filter ${ref} is not defined and is ignored`);
    }
  }
}

// ---------------------------------------------------------------------------
// Loggers

interface PyLogger {
  level: Severity | undefined;
  handlers: string[];
  propagate: boolean;
}

interface LoggerContext {
  where: string;
  filters: Set<string>;
  warnings: string[];
}

/** The file's loggers by Python name; the root logger is `""`. */
export function buildLoggers(
  doc: Doc,
  handlers: Map<string, Handler>,
  { where, filters, warnings }: LoggerContext,
): Map<string, PyLogger> {
  const loggers = new Map<string, PyLogger>();
  const entries: [string, unknown][] = Object.entries(section(doc, "loggers", where, warnings));
  entries.push(["", doc.root ?? {}]);
  for (const [name, spec] of entries) {
    const what = `${where}: ${name === "" ? "root logger" : `logger ${name}`}`;
    if (!isMap(spec)) {
      warnings.push(`${what} is not a mapping and is ignored`);
      continue;
    }
    warnUnknownKeys(spec, LOGGER_KEYS, what, warnings);
    checkFilterRefs(spec.filters, filters, what, warnings);
    let level = parseLevel(spec.level, what, warnings);
    // NOTSET on a logger means "inherit"; on the root it means "everything".
    if (level === "trace" && name !== "") level = undefined;
    const refs = spec.handlers === undefined || spec.handlers === null
      ? []
      : Array.isArray(spec.handlers)
      ? spec.handlers.map(String)
      : [String(spec.handlers)];
    for (const ref of refs) {
      if (!handlers.has(ref)) {
        warnings.push(`${what}: handler ${ref} is not defined and is ignored`);
      }
    }
    loggers.set(name, {
      level: name === "" ? level ?? "warning" : level,
      handlers: refs.filter((ref) => handlers.has(ref)),
      propagate: !["false", "no", "off", "0"].includes(
        String(spec.propagate ?? true).toLowerCase(),
      ),
    });
  }
  return loggers;
}

function ancestry(name: string): string[] {
  const chain = [name];
  for (let i = name.lastIndexOf("."); i > 0; i = name.lastIndexOf(".", i - 1)) {
    chain.push(name.slice(0, i));
  }
  if (name !== "") chain.push("");
  return chain;
}

/**
 * Resolves each configured logger (plus the root, console and wire categories)
 * to Python's effective level and handler set. Each becomes a logger that
 * overrides its parents, so an unconfigured category behaves like its nearest
 * configured ancestor, as in Python.
 */
export function planCategories(
  loggers: Map<string, PyLogger>,
  handlers: Map<string, Handler>,
): LoggerConfig[] {
  const names = new Set([...loggers.keys(), CONSOLE_NAME, WIRE_NAME]);
  const configs: LoggerConfig[] = [];
  for (const name of names) {
    const chain = ancestry(name);
    let level: Severity = "warning";
    for (const n of chain) {
      const found = loggers.get(n)?.level;
      if (found) {
        level = found;
        break;
      }
    }
    const isConsole = name === CONSOLE_NAME || name.startsWith(CONSOLE_NAME + ".");
    const routed = new Set<string>();
    for (const n of chain) {
      const logger = loggers.get(n);
      if (!logger) continue;
      for (const h of logger.handlers) routed.add(h);
      if (!logger.propagate) break;
    }
    // The wire log (every frame) stays in its own file.
    const isWire = name === WIRE_NAME || name.startsWith(WIRE_NAME + ".");
    if (handlers.has(EXTRA_STDERR) && !isWire) routed.add(EXTRA_STDERR);
    const sinks = [...routed].filter((h) => {
      const handler = handlers.get(h)!;
      return handler.sink !== null && (isConsole || !handler.consoleOnly);
    });
    // Raising the logger to its most permissive handler drops nothing that would be
    // written, and lets `isEnabledFor` (the wire log's check) skip work cheaply.
    let lowest: Severity | null = null;
    for (const h of sinks) {
      const handlerLevel = handlers.get(h)!.level;
      if (lowest === null || compareLogLevel(handlerLevel, lowest) < 0) lowest = handlerLevel;
    }
    configs.push({
      category: name === "" ? [] : name.split("."),
      sinks,
      parentSinks: "override",
      lowestLevel: lowest === null ? null : maxLevel(level, lowest),
    });
  }
  return configs;
}
