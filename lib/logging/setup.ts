/**
 * Agent logging set-up. Reads a logging.yaml in the Python `dictConfig` format of the
 * original agent (dict_config.ts) and builds sinks from it (handlers.ts), so files
 * written for the original keep working. Modules log with
 * `getLogger(["dcm", "agent", area])`, frames go to `WIRE_CATEGORY` and
 * console events for the manager to `CONSOLE_CATEGORY` (property
 * `requestId` optional).
 *
 * Python's routing is kept: a record must pass its logger's effective level, then
 * goes to the handlers of that logger and of its ancestors up to the first one with
 * `propagate: false`; each handler applies its own level. Every line is passed
 * through `scrubSecrets` just before it is written anywhere.
 */
import { dirname, resolve } from "node:path";
import { configure, getLogger, reset, type Sink } from "./logger.ts";
import type { LogLevel } from "../protocol/mod.ts";
import { compileFormat, SIMPLE_FORMAT } from "./format.ts";
import {
  buildLoggers,
  checkTopLevel,
  defaultConfig,
  EXTRA_STDERR,
  knownFilters,
  mainLogLevel,
  planCategories,
  readConfig,
} from "./dict_config.ts";
import { buildHandlers, disposeAll, streamSink, type UserResolver, withLevel } from "./handlers.ts";

/** Options for {@linkcode configureLogging}. */
export interface LoggingOptions {
  /** Receives console events at or above the `dcm_logger` handler's level, formatted as one line. */
  managerSink?: (level: LogLevel, line: string) => void;
  /**
   * Also write every category but the wire log to stderr, at the level of the main log
   * file (`mainLogLevel`); always on (at INFO) without a file.
   */
  stderr?: boolean;
  /**
   * Finds the user a handler's `owner` names (the log files are given to it when the
   * agent runs as root). Without it, or when it finds nobody, the files keep their
   * owner and a warning is logged.
   */
  resolveUser?: UserResolver;
}

const log = getLogger(["dcm", "agent", "logging"]);

/** The file sinks of the active configuration, closed when it is replaced. */
let activeFiles: Disposable[] = [];

/** Applies a logging.yaml (`null`: INFO and above to stderr); call again on SIGHUP; throws `ConfigError`, keeping the old setup, for an unusable file. */
export async function configureLogging(
  file: string | null,
  options: LoggingOptions = {},
): Promise<void> {
  const warnings: string[] = [];
  const doc = file === null ? defaultConfig() : readConfig(file);
  const where = file ?? "default logging";
  const files: Disposable[] = [];
  try {
    checkTopLevel(doc, where, warnings);
    const filters = knownFilters(doc, where, warnings);
    const handlers = buildHandlers(doc, {
      where,
      baseDir: file === null ? Deno.cwd() : dirname(resolve(file)),
      managerSink: options.managerSink,
      resolveUser: options.resolveUser,
      filters,
      files,
      warnings,
    });
    const loggers = buildLoggers(doc, handlers, { where, filters, warnings });
    if (options.stderr || file === null) {
      handlers.set(EXTRA_STDERR, {
        level: file === null ? "info" : mainLogLevel(loggers, handlers),
        sink: streamSink(Deno.stderr, compileFormat(SIMPLE_FORMAT, where, warnings)),
        consoleOnly: false,
      });
    }
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
