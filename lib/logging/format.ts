/**
 * Line formatting: Python `%`-style formats of logging.yaml compiled once into
 * functions of a record. Every line passes through {@linkcode scrubSecrets}.
 */
import type { LogLevel as Severity, LogRecord } from "./logger.ts";
import type { LogLevel } from "../protocol/mod.ts";
import { scrubSecrets } from "./redact.ts";

/** The agent's default log line, and the base of the one sent to the manager. */
export const SIMPLE_FORMAT =
  "%(levelname)s %(asctime)s [%(name)s] [(REQUEST=%(dcm_request_id)s)] %(message)s";
/** The line sent to the manager. */
export const TODCM_FORMAT = "%(asctime)s [%(name)s] [(REQUEST=%(dcm_request_id)s)] %(message)s";
/** Python's format when a handler names no formatter. */
export const PYTHON_DEFAULT_FORMAT = "%(message)s";

/** Python's level name of each severity. */
export const PYTHON_NAMES: Record<Severity, LogLevel> = {
  trace: "DEBUG",
  debug: "DEBUG",
  info: "INFO",
  warning: "WARNING",
  error: "ERROR",
  fatal: "CRITICAL",
};
/** Python's level number of each severity. */
export const PYTHON_NUMBERS: Record<Severity, number> = {
  trace: 5,
  debug: 10,
  info: 20,
  warning: 30,
  error: 40,
  fatal: 50,
};

/** A compiled format: one log line (without newline) for a record. */
export type Formatter = (record: LogRecord) => string;
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
export function compileFormat(format: string, what: string, warnings: string[]): Formatter {
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
