/**
 * The agent's logger (`getLogger(category).info("text {prop}", { prop })`, lazy
 * callbacks, `configure`/`reset`), without an npm dependency. Loading an npm package is
 * what makes Deno start its Node compatibility layer, which costs ~5 MB of
 * resident memory in an agent meant to idle in 42 MB.
 *
 * Routing: a record goes to the configured logger with the longest category
 * prefix of its own; that logger's `lowestLevel` filters it and its sinks
 * receive it, then, with `parentSinks: "inherit"`, the next configured
 * ancestor's do too.
 */

/** Severity levels, lowest first. */
export type LogLevel = "trace" | "debug" | "info" | "warning" | "error" | "fatal";

const ORDER: Record<LogLevel, number> = {
  trace: 0,
  debug: 1,
  info: 2,
  warning: 3,
  error: 4,
  fatal: 5,
};

/** One log event as sinks see it. */
export interface LogRecord {
  readonly category: readonly string[];
  readonly level: LogLevel;
  /** Template text at even indexes, interpolated values at odd ones. */
  readonly message: readonly unknown[];
  readonly timestamp: number;
  readonly properties: Record<string, unknown>;
}

/** Receives records. */
export type Sink = (record: LogRecord) => void;

/** How one category is logged. */
export interface LoggerConfig<TSinkId extends string = string> {
  category: string | readonly string[];
  sinks?: TSinkId[];
  /** "override" stops at this logger; "inherit" (default) also feeds the parent's sinks. */
  parentSinks?: "inherit" | "override";
  /** Records below this level are dropped; null drops everything. */
  lowestLevel?: LogLevel | null;
}

/** The whole logging set-up. */
export interface LogConfig<TSinkId extends string = string> {
  sinks: Record<TSinkId, Sink>;
  loggers: LoggerConfig<TSinkId>[];
}

interface Node {
  sinks: Sink[];
  lowest: number;
  inherit: boolean;
}

/** The tag function a lazy message callback receives. */
export type MessageTag = (strings: TemplateStringsArray, ...values: unknown[]) => unknown[];

/** A message: a template with `{property}` placeholders, or a callback that builds one lazily. */
export type Message = string | ((tag: MessageTag) => unknown[]);

/** A category's logger. */
export interface Logger {
  readonly category: readonly string[];
  debug(message: Message, properties?: Record<string, unknown>): void;
  info(message: Message, properties?: Record<string, unknown>): void;
  warn(message: Message, properties?: Record<string, unknown>): void;
  error(message: Message, properties?: Record<string, unknown>): void;
  fatal(message: Message, properties?: Record<string, unknown>): void;
  /** Whether a record of `level` would reach any sink. */
  isEnabledFor(level: LogLevel): boolean;
}

let nodes = new Map<string, Node>();
let generation = 0;
const loggers = new Map<string, CategoryLogger>();

/** Compares two levels: negative when `a` is less severe than `b`. */
export function compareLogLevel(a: LogLevel, b: LogLevel): number {
  return ORDER[a] - ORDER[b];
}

/** Replaces the whole logging set-up; rejects (keeping the old one) when a logger names an unknown sink. */
export function configure<TSinkId extends string>(config: LogConfig<TSinkId>): Promise<void> {
  const next = new Map<string, Node>();
  for (const l of config.loggers) {
    const key = keyOf(l.category);
    const sinks: Sink[] = [];
    for (const id of l.sinks ?? []) {
      const sink = config.sinks[id];
      if (!sink) {
        return Promise.reject(new Error(`logging: logger '${key}' names an unknown sink '${id}'`));
      }
      sinks.push(sink);
    }
    next.set(key, {
      sinks,
      lowest: l.lowestLevel === null ? Infinity : ORDER[l.lowestLevel ?? "trace"],
      inherit: (l.parentSinks ?? "inherit") === "inherit",
    });
  }
  nodes = next;
  generation++;
  return Promise.resolve();
}

/** Removes every logger and sink: nothing is logged until the next configure. */
export function reset(): Promise<void> {
  nodes = new Map();
  generation++;
  return Promise.resolve();
}

/** The logger of a category (a dotted name or a list of parts). */
export function getLogger(category: string | readonly string[]): Logger {
  const key = keyOf(category);
  let logger = loggers.get(key);
  if (!logger) {
    logger = new CategoryLogger(key === "" ? [] : key.split("."));
    loggers.set(key, logger);
  }
  return logger;
}

function keyOf(category: string | readonly string[]): string {
  return typeof category === "string" ? category : category.join(".");
}

/** The configured loggers with sinks that a category's records pass through, nearest first. */
function route(category: readonly string[]): Node[] {
  const out: Node[] = [];
  for (let n = category.length; n >= 0; n--) {
    const node = nodes.get(category.slice(0, n).join("."));
    if (!node) continue;
    if (node.sinks.length > 0) out.push(node);
    if (!node.inherit) break;
  }
  return out;
}

class CategoryLogger implements Logger {
  readonly category: readonly string[];
  #route: Node[] = [];
  /** The lowest level any node of `#route` accepts, so a disabled call costs one comparison. */
  #lowest = Infinity;
  #generation = -1;

  constructor(category: readonly string[]) {
    this.category = category;
  }

  debug(message: Message, properties?: Record<string, unknown>): void {
    this.#log("debug", message, properties);
  }

  info(message: Message, properties?: Record<string, unknown>): void {
    this.#log("info", message, properties);
  }

  warn(message: Message, properties?: Record<string, unknown>): void {
    this.#log("warning", message, properties);
  }

  error(message: Message, properties?: Record<string, unknown>): void {
    this.#log("error", message, properties);
  }

  fatal(message: Message, properties?: Record<string, unknown>): void {
    this.#log("fatal", message, properties);
  }

  isEnabledFor(level: LogLevel): boolean {
    if (this.#generation !== generation) {
      this.#route = route(this.category);
      this.#lowest = Math.min(...this.#route.map((n) => n.lowest));
      this.#generation = generation;
    }
    return ORDER[level] >= this.#lowest;
  }

  #log(level: LogLevel, message: Message, properties: Record<string, unknown> = {}): void {
    if (!this.isEnabledFor(level)) return; // Nothing is built for a record nobody wants.
    const order = ORDER[level];
    const record: LogRecord = {
      category: this.category,
      level,
      message: typeof message === "function"
        ? lazyMessage(message)
        : interpolate(message, properties),
      timestamp: Date.now(),
      properties,
    };
    for (const node of this.#route) {
      if (order < node.lowest) continue;
      for (const sink of node.sinks) {
        try {
          sink(record);
        } catch {
          // A failing sink (a full disk, a closed stderr) must not break the caller.
        }
      }
    }
  }
}

function lazyMessage(build: (tag: MessageTag) => unknown[]): unknown[] {
  return build((strings, ...values) => {
    const out: unknown[] = [];
    strings.forEach((s, i) => {
      out.push(s);
      if (i < values.length) out.push(values[i]);
    });
    return out;
  });
}

/** Splits "text {name} text" into text and values; `{{` and `}}` are literal braces. */
function interpolate(template: string, properties: Record<string, unknown>): unknown[] {
  const parts: unknown[] = [];
  let text = "";
  for (let i = 0; i < template.length; i++) {
    const c = template[i];
    if ((c === "{" || c === "}") && template[i + 1] === c) {
      text += c;
      i++;
      continue;
    }
    if (c === "{") {
      const end = template.indexOf("}", i);
      if (end > i) {
        parts.push(text, properties[template.slice(i + 1, end).trim()]);
        text = "";
        i = end;
        continue;
      }
    }
    text += c;
  }
  parts.push(text);
  return parts;
}
