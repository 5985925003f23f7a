/** logging.yaml and plugin.conf: which of them configure writes, and their contents. */
import { parseYamlSubset } from "../config/mod.ts";
import loggingTemplate from "../../config/logging.yaml" with { type: "text" };
import { defaultPluginConfText } from "../core/mod.ts";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";
import { isFile } from "../os/mod.ts";
import { type ConfigureArgs, UsageError } from "./options.ts";
import type { ConfValues } from "./settings.ts";

/** logging.yaml and plugin.conf: always without -r; with -r only when missing or with -R. */
export function otherFiles(
  values: ConfValues,
  parsed: ConfigureArgs,
  logging: { user: string; logfile: string },
  warn: (w: string) => void,
): Map<string, string> {
  const files = new Map<string, string>();
  const rewrite = (file: string) =>
    !parsed.reloadConf || parsed.rewriteLoggingPlugin || !isFile(file);
  const loggingFile = values.get("logging.configfile") as string;
  const pluginFile = values.get("plugin.configfile") as string;
  if (rewrite(loggingFile)) {
    files.set(
      loggingFile,
      renderLoggingYaml(logging.logfile, parsed.loglevel ?? "INFO", logging.user),
    );
  } else if (parsed.logfile || parsed.loglevel) {
    warn(
      `-l/-L: ${loggingFile} is kept because of -r; add -R to rewrite it with the new log settings`,
    );
  }
  if (rewrite(pluginFile)) files.set(pluginFile, defaultPluginConfText(BUILTIN_COMMANDS));
  return files;
}

/** The logging.yaml template with its placeholders filled in (README, Configuration). */
function renderLoggingYaml(logfile: string, level: string, user: string): string {
  // The header names the placeholders: it is reworded, and only the document below is filled in.
  const start = loggingTemplate.indexOf("\n---\n") + 1;
  const header = loggingTemplate.slice(0, start).replace(
    /`dcm-agent configure` fills in the @LOGFILE_PATH@, @LOG_LEVEL@ and @DCM_USER@\n# placeholders\. /,
    "Written by `dcm-agent configure`: the log file, level and owner below come\n# from its -l, -L and -U options.\n# ",
  );
  const text = header + loggingTemplate.slice(start)
    .replaceAll("@LOGFILE_PATH@", logfile)
    .replaceAll("@LOG_LEVEL@", level)
    .replaceAll("@DCM_USER@", user);
  // Read back as the agent reads it (YAML 1.1): a path can parse and still change,
  // e.g. ' #' starts a comment, so the file handler must come back with the same path.
  let problem: string;
  try {
    const doc = parseYamlSubset(text) as { handlers?: { file_handler?: { filename?: unknown } } };
    const filename = doc?.handlers?.file_handler?.filename;
    if (filename === logfile) return text;
    problem = `it would be read back as '${filename}'`;
  } catch (error) {
    problem = (error as Error).message.split("\n")[0];
  }
  throw new UsageError(
    `-l/--logfile: '${logfile}' cannot be written into logging.yaml (${problem}); use a plain path`,
  );
}
