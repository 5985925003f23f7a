/**
 * Agent logging (spec 1.9, 5.3). Reads a logging.yaml in the Python `dictConfig`
 * format of the original agent and builds sinks (lib/log.ts) from it, so files written
 * for the original keep working. Modules log with `getLogger(["dcm", "agent", area])`,
 * frames go to {@linkcode WIRE_CATEGORY} and console events for the manager to
 * {@linkcode CONSOLE_CATEGORY} (property `requestId` optional).
 *
 * Python's routing is kept: a record must pass its logger's effective level, then
 * goes to the handlers of that logger and of its ancestors up to the first one with
 * `propagate: false`; each handler applies its own level. Every line is passed
 * through {@linkcode scrubSecrets} just before it is written anywhere.
 */
import { dirname, resolve } from "node:path";
import {
  compareLogLevel,
  configure,
  getLogger,
  type LoggerConfig,
  type LogLevel as Severity,
  type LogRecord,
  reset,
  type Sink,
} from "./logger.ts";
import { ConfigError } from "../config/mod.ts";
import type { LogLevel } from "../protocol/mod.ts";
import { createRotatingFileSink, type RotatingFileSink } from "./rotating_file_sink.ts";
import { parseYamlSubset } from "../config/mod.ts";
import { ID_KEY } from "./redact.ts";

/** Category of console events that become LOG messages to the manager (spec 1.9). */
export const CONSOLE_CATEGORY: readonly string[] = [
  "dcm",
  "agent",
  "log",
  "to",
  "agent",
  "manager",
];

/** Category of the wire log: one `INCOMING …`/`OUTGOING …` DEBUG record per frame. */
export const WIRE_CATEGORY: readonly string[] = ["DCM_AGENT_WIRE"];

/** Options for {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** Receives console events at or above the `dcm_logger` handler's level, formatted as one line. */
  managerSink?: (level: LogLevel, line: string) => void;
  /** Also write INFO and above of every category to stderr; defaults to true only without a file. */
  stderr?: boolean;
}

/** The agent's default log line, and the base of the one sent to the manager. */
const SIMPLE_FORMAT =
  "%(levelname)s %(asctime)s [%(name)s] [(REQUEST=%(dcm_request_id)s)] %(message)s";
const TODCM_FORMAT = "%(asctime)s [%(name)s] [(REQUEST=%(dcm_request_id)s)] %(message)s";
/** Python's format when a handler names no formatter. */
const PYTHON_DEFAULT_FORMAT = "%(message)s";

const CONSOLE_NAME = CONSOLE_CATEGORY.join(".");
const WIRE_NAME = WIRE_CATEGORY.join(".");
/** Sink id of the extra stderr handler (a name no YAML handler is likely to use). */
const EXTRA_STDERR = "(stderr)";

const log = getLogger(["dcm", "agent", "logging"]);

/** The file sinks of the active configuration, closed when it is replaced. */
let activeFiles: Disposable[] = [];

/** Applies a logging.yaml (`null`: INFO and above to stderr); call again on SIGHUP; throws {@linkcode ConfigError}, keeping the old setup, for an unusable file. */
export async function configureLogging(
  file: string | null,
  options: LoggingOptions = {},
): Promise<void> {
  const warnings: string[] = [];
  const doc = file === null ? defaultConfig() : await readConfig(file);
  const where = file ?? "default logging";
  const files: Disposable[] = [];
  try {
    checkTopLevel(doc, where, warnings);
    const filters = knownFilters(doc, where, warnings);
    const handlers = buildHandlers(doc, {
      where,
      baseDir: file === null ? Deno.cwd() : dirname(resolve(file)),
      managerSink: options.managerSink,
      filters,
      files,
      warnings,
    });
    if (options.stderr ?? file === null) {
      handlers.set(EXTRA_STDERR, {
        level: "info",
        sink: streamSink(Deno.stderr, compileFormat(SIMPLE_FORMAT, where, warnings)),
        consoleOnly: false,
      });
    }
    const loggers = buildLoggers(doc, handlers, { where, filters, warnings });
    const sinks: Record<string, Sink> = {};
    for (const [name, { sink, level }] of handlers) if (sink) sinks[name] = withLevel(sink, level);
    await configure({ sinks, loggers: planCategories(loggers, handlers) });
  } catch (err) {
    disposeAll(files);
    throw err;
  }
  // The new sinks are live before the old files close, so no record is lost.
  disposeAll(activeFiles);
  activeFiles = files;
  for (const warning of warnings) log.warn("{warning}", { warning });
}

/** Closes every log sink; later records are dropped until {@linkcode configureLogging} runs again. */
export async function shutdownLogging(): Promise<void> {
  await reset();
  disposeAll(activeFiles);
  activeFiles = [];
}

// ---------------------------------------------------------------------------
// Secret scrubbing

/**
 * A key name that marks a secret: the whole word is captured by a lookahead, which
 * cannot be backtracked into, so a long run of word characters costs linear time.
 */
const SECRET_KEY = "(?<![\\w-])(?=([\\w-]*?(?:password|passwd|secret|token|key|script|" +
  "authentication|configcert|parameterlist|configurationdata)[\\w-]*))";
/** Cheap pre-test: most lines contain none of these and skip the scrubbing regexps. */
const SECRET_HINT =
  /passw|secret|token|key|script|authentication|configcert|parameterlist|configurationdata/i;
/** `"key": "value"`, `'key': 'value'`, `key: "value"` or `key="value"`; groups: quote, key, separator, quote, value. */
const QUOTED_SECRET = new RegExp(
  `(["']?)${SECRET_KEY}\\2\\1(\\s*[:=]\\s*)(["'])((?:\\\\[\\s\\S]|(?!\\4)[^\\\\])*)\\4`,
  "gi",
);
/** `key=value` without quotes, as in command lines and URLs. */
const BARE_SECRET = new RegExp(`${SECRET_KEY}\\1=(?!["'])[^\\s&,;]+`, "gi");
const PEM_PRIVATE_KEY =
  /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;

/** Replaces obvious secrets in a log line (quoted or `key=value` secret fields, PEM private keys) by `<redacted>`. */
export function scrubSecrets(line: string): string {
  if (!SECRET_HINT.test(line)) return line;
  return line
    .replace(PEM_PRIVATE_KEY, "-----BEGIN $1PRIVATE KEY-----<redacted>-----END $1PRIVATE KEY-----")
    .replace(
      QUOTED_SECRET,
      (match, kq: string, key: string, sep: string, q: string, value: string) =>
        // Values redacted earlier (lib/redact.ts writes "<redacted N bytes>") keep their size hint.
        ID_KEY.test(key) || value === "" || value.startsWith("<redacted")
          ? match
          : `${kq}${key}${kq}${sep}${q}<redacted>${q}`,
    )
    .replace(BARE_SECRET, (match, key: string) => ID_KEY.test(key) ? match : `${key}=<redacted>`);
}

// ---------------------------------------------------------------------------
// Reading the file

/** Marks a `@NAME@` placeholder left by `dcm-agent configure`; `@` cannot start a plain YAML value. */
const PLACEHOLDER = /@([A-Z][A-Z0-9_]*)@/g;
const UNSUBSTITUTED = /__UNSUBSTITUTED_([A-Z][A-Z0-9_]*)__/;

type Doc = Record<string, unknown>;

async function readConfig(file: string): Promise<Doc> {
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
  } catch {
    doc = await parseFullYaml(source, file);
  }
  if (!isMap(doc)) {
    throw new ConfigError(
      `the logging configuration ${file} is not a mapping with handlers and loggers; ` +
        "write it in the Python logging dictConfig format (version: 1, handlers:, loggers:, root:)",
    );
  }
  return doc;
}

/**
 * Parses with the npm `yaml` package, loaded only for files outside the subset that
 * {@linkcode parseYamlSubset} reads, because loading it costs about 10 MB of memory.
 * YAML 1.1 as in PyYAML, so `propagate: no` means false as it did for the original.
 */
async function parseFullYaml(source: string, file: string): Promise<unknown> {
  try {
    const { parse } = await import("yaml");
    return parse(source, { version: "1.1" });
  } catch (err) {
    throw new ConfigError(
      `the logging configuration ${file} is not valid YAML: ${(err as Error).message}; ` +
        "fix the file or point [logging] configfile in agent.conf to a valid one",
    );
  }
}

/** Without a file: INFO and above to stderr (added by the `stderr` option), console events to the manager. */
function defaultConfig(): Doc {
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
const FORMATTER_KEYS = new Set([
  "format",
  "datefmt",
  "style",
  "class",
  "()",
  "validate",
  "defaults",
]);
const HANDLER_KEYS = new Set([
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

function isMap(value: unknown): value is Record<string, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value);
}

function section(
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

function warnUnknownKeys(
  spec: Record<string, unknown>,
  known: Set<string>,
  what: string,
  warnings: string[],
): void {
  for (const key of Object.keys(spec)) {
    if (!known.has(key)) warnings.push(`${what}: unknown key "${key}" is ignored`);
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
const PYTHON_NAMES: Record<Severity, LogLevel> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};
const PYTHON_NUMBERS: Record<Severity, number> = {
  trace: 5,
  debug: 10,
  info: 20,
  warning: 30,
  error: 40,
  fatal: 50,
};

/** A level from the file; `undefined` when not set. Bad values fall back to INFO with a warning. */
function parseLevel(value: unknown, what: string, warnings: string[]): Severity | undefined {
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

function maxLevel(a: Severity, b: Severity): Severity {
  return compareLogLevel(a, b) >= 0 ? a : b;
}

// ---------------------------------------------------------------------------
// Formatting

type Formatter = (record: LogRecord) => string;
type Part = string | Formatter;

/** Python's default `asctime`: local time, `YYYY-MM-DD HH:MM:SS,mmm`. */
function asctime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ` +
    `${p(d.getHours())}:${p(d.getMinutes())}:${p(d.getSeconds())},${
      String(d.getMilliseconds()).padStart(3, "0")
    }`;
}

function renderMessage(record: LogRecord): string {
  const parts = record.message;
  let text = "";
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    // Even slots are template text, odd slots are the interpolated values.
    text += typeof part === "string"
      ? part
      : Deno.inspect(part, { depth: 4, colors: false, breakLength: Infinity, compact: true });
  }
  return text;
}

function requestIdOf(record: LogRecord): string | undefined {
  const id = record.properties.requestId;
  return id === undefined || id === null || id === "" ? undefined : String(id);
}

const FIELDS: Record<string, Formatter> = {
  levelname: (r) => PYTHON_NAMES[r.level],
  levelno: (r) => String(PYTHON_NUMBERS[r.level]),
  asctime: (r) => asctime(r.timestamp),
  name: (r) => r.category.length ? r.category.join(".") : "root",
  message: renderMessage,
  msecs: (r) => String(r.timestamp % 1000),
  created: (r) => String(r.timestamp / 1000),
  process: () => String(Deno.pid),
  dcm_request_id: (r) => requestIdOf(r) ?? "-",
};

/**
 * Compiles a Python `%`-style format once. The request-id group is printed only with a
 * request id, and `%(filename)s:%(lineno)d` is dropped: capturing call sites would cost
 * a stack trace per record.
 */
function compileFormat(format: string, what: string, warnings: string[]): Formatter {
  const token =
    /\[\(REQUEST=%\(dcm_request_id\)s\)\] ?|%\((\w+)\)([-#0 +]*)(\d*)(?:\.\d+)?[sdifrx]|%%/g;
  const source = format.replace(/\s*%\(filename\)s:%\(lineno\)d/g, "");
  const parts: Part[] = [];
  let last = 0;
  for (const m of source.matchAll(token)) {
    if (m.index > last) parts.push(source.slice(last, m.index));
    last = m.index + m[0].length;
    if (m[0] === "%%") parts.push("%");
    else if (m[0].startsWith("[(REQUEST=")) {
      const tail = m[0].endsWith(" ") ? " " : "";
      parts.push((r) => {
        const id = requestIdOf(r);
        return id === undefined ? "" : `[(REQUEST=${id})]${tail}`;
      });
    } else {
      const field = FIELDS[m[1]];
      if (!field) warnings.push(`${what}: %(${m[1]})s is not available and prints as "-"`);
      parts.push(padded(field ?? (() => "-"), m[2].includes("-"), Number(m[3] || 0)));
    }
  }
  if (last < source.length) parts.push(source.slice(last));
  return (record) => {
    let line = "";
    for (const part of parts) line += typeof part === "string" ? part : part(record);
    return scrubSecrets(line);
  };
}

function padded(field: Formatter, left: boolean, width: number): Formatter {
  if (width === 0) return field;
  return (r) => left ? field(r).padEnd(width) : field(r).padStart(width);
}

function buildFormatters(doc: Doc, where: string, warnings: string[]): Map<string, Formatter> {
  const formatters = new Map<string, Formatter>();
  for (const [name, spec] of Object.entries(section(doc, "formatters", where, warnings))) {
    const what = `${where}: formatter ${name}`;
    if (!isMap(spec)) {
      warnings.push(`${what} is not a mapping; using the default format`);
      formatters.set(name, compileFormat(SIMPLE_FORMAT, what, warnings));
      continue;
    }
    warnUnknownKeys(spec, FORMATTER_KEYS, what, warnings);
    const cls = String(spec.class ?? spec["()"] ?? "logging.Formatter");
    if (cls !== "logging.Formatter") {
      warnings.push(`${what}: class ${cls} is not supported; using its format`);
    }
    if (spec.datefmt !== undefined) {
      warnings.push(`${what}: datefmt is not supported; times print as YYYY-MM-DD HH:MM:SS,mmm`);
    }
    let format = typeof spec.format === "string" ? spec.format : SIMPLE_FORMAT;
    if (spec.style !== undefined && spec.style !== "%") {
      warnings.push(`${what}: style ${spec.style} is not supported; using the default format`);
      format = SIMPLE_FORMAT;
    }
    formatters.set(name, compileFormat(format, what, warnings));
  }
  return formatters;
}

// ---------------------------------------------------------------------------
// Handlers

interface Handler {
  /** Records below it are dropped (applied when the sinks are installed). */
  level: Severity;
  /** `null`: the handler writes nothing (NullHandler, unsupported class, no manager). */
  sink: Sink | null;
  /** The manager sink: only console-category loggers route to it. */
  consoleOnly: boolean;
}

interface HandlerContext {
  where: string;
  baseDir: string;
  managerSink: LoggingOptions["managerSink"];
  /** Names of the filters the file defines. */
  filters: Set<string>;
  /** Collects opened file sinks so that they can be closed. */
  files: Disposable[];
  warnings: string[];
}

function checkTopLevel(doc: Doc, where: string, warnings: string[]): void {
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

function buildHandlers(doc: Doc, ctx: HandlerContext): Map<string, Handler> {
  const { where, warnings } = ctx;
  const formatters = buildFormatters(doc, where, warnings);
  const handlers = new Map<string, Handler>();
  for (const [name, spec] of Object.entries(section(doc, "handlers", where, warnings))) {
    const what = `${where}: handler ${name}`;
    if (!isMap(spec)) {
      warnings.push(`${what} is not a mapping and is ignored`);
      continue;
    }
    warnUnknownKeys(spec, HANDLER_KEYS, what, warnings);
    checkFilterRefs(spec.filters, ctx.filters, what, warnings);
    handlers.set(name, buildHandler(name, spec, formatters, ctx));
  }
  return handlers;
}

function buildHandler(
  name: string,
  spec: Record<string, unknown>,
  formatters: Map<string, Formatter>,
  ctx: HandlerContext,
): Handler {
  const what = `${ctx.where}: handler ${name}`;
  const cls = String(spec.class ?? spec["()"] ?? "");
  const level = parseLevel(spec.level, what, ctx.warnings) ?? "trace";
  const isConsole = spec.filename === undefined && (/dcm/i.test(cls) || name === "dcm_logger");
  const format = pickFormatter(spec.formatter, isConsole, formatters, what, ctx.warnings);
  if (spec.filename !== undefined) {
    const sink = fileSink(spec, format, what, ctx);
    return { level, sink, consoleOnly: false };
  }
  if (isConsole) {
    const manager = ctx.managerSink;
    if (!manager) return { level, sink: null, consoleOnly: true };
    const sink: Sink = (record) => {
      try {
        manager(PYTHON_NAMES[record.level], format(record));
      } catch {
        // A failing manager link must not break logging; the connection reports its own errors.
      }
    };
    return { level, sink, consoleOnly: true };
  }
  if (/StreamHandler$/.test(cls)) {
    const stream = String(spec.stream ?? "").includes("stdout") ? Deno.stdout : Deno.stderr;
    return { level, sink: streamSink(stream, format), consoleOnly: false };
  }
  if (!/NullHandler$/.test(cls)) {
    ctx.warnings.push(
      `${what}: class ${cls || "(none)"} is not supported; the handler writes nothing`,
    );
  }
  return { level, sink: null, consoleOnly: false };
}

function pickFormatter(
  name: unknown,
  isConsole: boolean,
  formatters: Map<string, Formatter>,
  what: string,
  warnings: string[],
): Formatter {
  if (name === undefined || name === null) {
    // The manager always got todcm lines; elsewhere Python's default applies.
    return compileFormat(isConsole ? TODCM_FORMAT : PYTHON_DEFAULT_FORMAT, what, warnings);
  }
  const found = formatters.get(String(name));
  if (found) return found;
  warnings.push(`${what}: formatter ${name} is not defined; using the default format`);
  return compileFormat(SIMPLE_FORMAT, what, warnings);
}

function fileSink(
  spec: Record<string, unknown>,
  format: Formatter,
  what: string,
  ctx: HandlerContext,
): Sink {
  const filename = String(spec.filename);
  const placeholder = filename.match(UNSUBSTITUTED);
  if (placeholder) {
    ctx.warnings.push(
      `${what}: filename still holds the placeholder @${placeholder[1]}@ ` +
        "(run dcm-agent configure); writing this handler to stderr instead",
    );
    return streamSink(Deno.stderr, format);
  }
  if (spec.encoding !== undefined && !/^utf-?8$/i.test(String(spec.encoding))) {
    ctx.warnings.push(`${what}: encoding ${spec.encoding} is not supported; writing UTF-8`);
  }
  if (spec.mode !== undefined && spec.mode !== "a") {
    ctx.warnings.push(`${what}: mode ${spec.mode} is not supported; appending`);
  }
  const path = resolve(ctx.baseDir, filename);
  const maxBytes = count(spec.maxBytes, "maxBytes", what, ctx.warnings);
  const backupCount = count(spec.backupCount, "backupCount", what, ctx.warnings);
  const owner = spec.owner === undefined || spec.owner === null
    ? undefined
    : ownerIds(String(spec.owner), what, ctx.warnings);
  let sink: RotatingFileSink;
  try {
    sink = createRotatingFileSink(path, {
      formatter: (record) => format(record) + "\n",
      maxBytes,
      backupCount,
      owner: owner?.ids,
    });
  } catch (err) {
    throw new ConfigError(
      `${what}: cannot open the log file ${path}: ${(err as Error).message}; ` +
        "fix the filename or the directory's permissions",
    );
  }
  ctx.files.push(sink);
  // The sink gives the files it creates by rotation to the owner; the first one is
  // chowned here so that a failure can be reported.
  if (owner) {
    try {
      Deno.chownSync(path, owner.ids.uid, owner.ids.gid);
    } catch (err) {
      ctx.warnings.push(`${what}: cannot give ${path} to ${owner.name}: ${(err as Error).message}`);
    }
  }
  return sink;
}

function count(value: unknown, key: string, what: string, warnings: string[]): number {
  if (value === undefined || value === null) return 0;
  const n = Number(value);
  if (Number.isInteger(n) && n >= 0) return n;
  warnings.push(`${what}: ${key} ${value} is not a whole number; the file does not rotate`);
  return 0;
}

/** The ids of the user the original gave its log files to; `undefined` (with a warning if useful) when the files keep their owner, e.g. when not running as root. */
function ownerIds(
  owner: string,
  what: string,
  warnings: string[],
): { name: string; ids: { uid: number; gid: number } } | undefined {
  const placeholder = owner.match(UNSUBSTITUTED);
  if (placeholder) {
    warnings.push(
      `${what}: owner still holds the placeholder @${placeholder[1]}@; the file keeps its owner`,
    );
    return undefined;
  }
  if (Deno.uid() !== 0) return undefined;
  let entry: string[] | undefined;
  try {
    entry = Deno.readTextFileSync("/etc/passwd").split("\n").map((l) => l.split(":")).find((f) =>
      f[0] === owner
    );
  } catch {
    entry = undefined;
  }
  if (!entry || entry.length < 4) {
    warnings.push(`${what}: owner ${owner} is not a local user; the file keeps its owner`);
    return undefined;
  }
  return { name: owner, ids: { uid: Number(entry[2]), gid: Number(entry[3]) } };
}

function streamSink(stream: typeof Deno.stderr, format: Formatter): Sink {
  const encoder = new TextEncoder();
  return (record) => {
    const bytes = encoder.encode(format(record) + "\n");
    try {
      for (let done = 0; done < bytes.length;) done += stream.writeSync(bytes.subarray(done));
    } catch {
      // A closed stderr (daemonised agent) must not break the other sinks.
    }
  };
}

function withLevel(sink: Sink, level: Severity): Sink {
  if (level === "trace") return sink;
  return (record) => {
    if (compareLogLevel(record.level, level) >= 0) sink(record);
  };
}

/** Names of the filters defined in the file, warning about all but the original's request filter. */
function knownFilters(doc: Doc, where: string, warnings: string[]): Set<string> {
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

function checkFilterRefs(
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

function disposeAll(files: Disposable[]): void {
  for (const file of files) {
    try {
      file[Symbol.dispose]();
    } catch {
      // One file that fails to close must not keep the others open.
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
function buildLoggers(
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
function planCategories(
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
    if (handlers.has(EXTRA_STDERR)) routed.add(EXTRA_STDERR);
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
