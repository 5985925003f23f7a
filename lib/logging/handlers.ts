/**
 * The handlers and formatters of a logging.yaml turned into sinks: rotating files
 * (given to their `owner` when the agent runs as root), stderr/stdout, and the
 * manager link for console events.
 */
import { resolve } from "node:path";
import { compareLogLevel, type LogLevel as Severity, type Sink } from "./logger.ts";
import type { LogLevel } from "../protocol/mod.ts";
import { ConfigError } from "../config/mod.ts";
import { createRotatingFileSink, type RotatingFileSink } from "./rotating_file_sink.ts";
import {
  compileFormat,
  type Formatter,
  PYTHON_DEFAULT_FORMAT,
  PYTHON_NAMES,
  SIMPLE_FORMAT,
  TODCM_FORMAT,
} from "./format.ts";
import {
  checkFilterRefs,
  type Doc,
  FORMATTER_KEYS,
  type Handler,
  HANDLER_KEYS,
  isMap,
  parseLevel,
  section,
  UNSUBSTITUTED,
  warnUnknownKeys,
} from "./dict_config.ts";

/** User and group ids that log files are given to. */
export interface OwnerIds {
  uid: number;
  gid: number;
}

/** Finds a user's ids by name; `undefined` when there is no such user. */
export type UserResolver = (name: string) => OwnerIds | undefined;

/** What building the handlers needs besides the file. */
export interface HandlerContext {
  /** Names the file in warnings. */
  where: string;
  /** Relative file names are read from here. */
  baseDir: string;
  managerSink: ((level: LogLevel, line: string) => void) | undefined;
  /** Finds the ids of a handler's `owner`; without it every owner counts as unknown. */
  resolveUser: UserResolver | undefined;
  /** Names of the filters the file defines. */
  filters: Set<string>;
  /** Collects opened file sinks so that they can be closed. */
  files: Disposable[];
  warnings: string[];
}

/** The formatters of the file, compiled. */
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

/** The handlers of the file by name. */
export function buildHandlers(doc: Doc, ctx: HandlerContext): Map<string, Handler> {
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
    : ownerIds(String(spec.owner), what, ctx);
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
  ctx: HandlerContext,
): { name: string; ids: OwnerIds } | undefined {
  const placeholder = owner.match(UNSUBSTITUTED);
  if (placeholder) {
    ctx.warnings.push(
      `${what}: owner still holds the placeholder @${placeholder[1]}@; the file keeps its owner`,
    );
    return undefined;
  }
  if (Deno.uid() !== 0) return undefined;
  let ids: OwnerIds | undefined;
  try {
    ids = ctx.resolveUser?.(owner);
  } catch {
    ids = undefined;
  }
  if (!ids) {
    ctx.warnings.push(`${what}: owner ${owner} is not a local user; the file keeps its owner`);
    return undefined;
  }
  return { name: owner, ids: { uid: ids.uid, gid: ids.gid } };
}

/** Writes each formatted record as one line to a standard stream. */
export function streamSink(stream: typeof Deno.stderr, format: Formatter): Sink {
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

/** Drops records below the level. */
export function withLevel(sink: Sink, level: Severity): Sink {
  if (level === "trace") return sink;
  return (record) => {
    if (compareLogLevel(record.level, level) >= 0) sink(record);
  };
}

/** Closes every file, even when one fails. */
export function disposeAll(files: Disposable[]): void {
  for (const file of files) {
    try {
      file[Symbol.dispose]();
    } catch {
      // One file that fails to close must not keep the others open.
    }
  }
}
