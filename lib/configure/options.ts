/**
 * The `dcm-agent configure` command line (README, Installing on a VM): the original's short and
 * long option names, parsed with node:util parseArgs and checked up front so
 * that a bad value stops the run before anything is written.
 */
import { resolve } from "node:path";
import { parseArgs } from "node:util";
import { SCHEMA } from "../config/mod.ts";
import { normalizeCloud, OFFERED_CLOUDS } from "./clouds.ts";

/** A bad option or value: the message names the option and the fix; exit code 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** Log levels accepted by -L (README, Configuration); WARNING is Python's other name for WARN. */
const LOG_LEVELS: readonly string[] = ["ERROR", "WARN", "WARNING", "INFO", "DEBUG"];

/** The parsed command line; `undefined` means "not given". */
export interface ConfigureArgs {
  cloud?: string;
  url?: string;
  basePath?: string;
  mountPoint?: string;
  tempPath?: string;
  user?: string;
  connectionType?: string;
  logfile?: string;
  loglevel?: string;
  interactive: boolean;
  reloadConf?: string;
  rewriteLoggingPlugin: boolean;
  onBoot: boolean;
  initial: boolean;
  verbose: boolean;
  allowUnknownCerts: boolean;
  cacertFile?: string;
  installExtras: boolean;
  extraPackageLocation?: string;
  packageName?: string;
  chefClientVersion?: string;
  ossec?: boolean;
  idsAlertThreshold?: number;
  /** Hidden: the file-system root that boot files are written under (tests, image builds). */
  root: string;
  help: boolean;
  /** Problems that do not stop the run. */
  warnings: string[];
}

const OPTIONS = {
  cloud: { type: "string", short: "c" },
  url: { type: "string", short: "u" },
  "base-path": { type: "string", short: "p" },
  "mount-point": { type: "string", short: "m" },
  "temp-path": { type: "string", short: "t" },
  user: { type: "string", short: "U" },
  "connection-type": { type: "string", short: "C" },
  logfile: { type: "string", short: "l" },
  loglevel: { type: "string", short: "L" },
  interactive: { type: "boolean", short: "i" },
  "reload-conf": { type: "string", short: "r" },
  "rewrite-logging-plugin": { type: "boolean", short: "R" },
  "on-boot": { type: "boolean", short: "B" },
  initial: { type: "boolean", short: "I" },
  verbose: { type: "boolean", short: "v" },
  "allow-unknown-certs": { type: "boolean", short: "Z" },
  "cacert-file": { type: "string", short: "A" },
  "install-extras": { type: "boolean" },
  "extra-package-location": { type: "string" },
  "package-name": { type: "string" },
  // Accepted and ignored, as in the original: the installer script installs chef-client.
  "chef-client": { type: "boolean", short: "o" },
  "chef-client-version": { type: "string" },
  "intrusion-detection-ossec": { type: "string", short: "d" },
  "ids-alert-threshold": { type: "string", short: "T" },
  root: { type: "string" },
  help: { type: "boolean", short: "h" },
} as const;

/** `configure --help`. -I/--initial and --root are hidden, as -I was in the original. */
export const CONFIGURE_HELP = `Usage: dcm-agent configure [options]
       dcm-agent reconfigure [options]   (= configure -r <installed agent.conf>)

Writes the agent's configuration under the base path: etc/agent.conf,
etc/logging.yaml, etc/plugin.conf and the bin, logs, home and secure
directories. Run it again at any time; -r keeps an existing configuration.

Connection:
  -u, --url URL                  the agent manager, ws://HOST[:PORT]/PATH or
                                 wss://HOST[:PORT]/PATH (required unless -i or -r)
  -c, --cloud NAME               the cloud this server runs on, any case:
                                 ${wrapList(OFFERED_CLOUDS, 33, 46)}
                                 default: detected from the metadata service
  -C, --connection-type TYPE     the connection type; only 'ws' (default)
  -Z, --allow-unknown-certs      do not check the manager's TLS certificate
                                 (insecure; for testing only)
  -A, --cacert-file PATH         PEM file of the CAs that signed the manager's
                                 certificate; default: the system CA bundle

Files and users:
  -p, --base-path DIR            the agent's base directory (default /dcm)
  -m, --mount-point DIR          default mount point for data volumes
                                 (default /mnt/dcmdata)
  -t, --temp-path DIR            directory for temporary files (default /tmp)
  -U, --user NAME                the system user that owns the base directory
                                 (default dcm)
  -l, --logfile PATH             the agent's log file (default BASE/logs/agent.log)
  -L, --loglevel LEVEL           ERROR, WARN, INFO or DEBUG (default INFO)

Re-running:
  -r, --reload-conf FILE         start from an existing agent.conf: every value
                                 not given as an option is kept
  -R, --rewrite-logging-plugin   with -r, also rewrite logging.yaml and
                                 plugin.conf (kept by default)

Start at boot:
  -B, --on-boot                  install and enable the boot service (systemd
                                 unit, or a SysV init script without systemd)

Extras, configuration management and intrusion detection:
  --install-extras               install the agent extras package now
  --extra-package-location URL   where the extras package is downloaded from
                                 (default https://linux-stable-agent.enstratius.com/)
  --package-name NAME            an explicit extras package file name
  -o, --chef-client              accepted for compatibility; the installer
                                 script installs chef-client
  --chef-client-version VERSION  chef-client version for configure_server
                                 (default 11.16.4)
  -d, --intrusion-detection-ossec VALUE
                                 y, yes, t or true turn OSSEC intrusion
                                 detection on; n, no, f or false turn it off
  -T, --ids-alert-threshold N    OSSEC alerts at or above this level are sent
                                 to the manager (default 10)

Other:
  -i, --interactive              ask for the cloud, the manager URL, the
                                 certificate settings (wss:// only) and, after
                                 showing what will be written, (without -B)
                                 whether to start at boot; Enter keeps the
                                 value shown (needs a terminal)
  -v, --verbose                  say what is written; show details of errors
  -h, --help                     print this help

Exit status: 0 done, 2 bad usage or an invalid value, 1 any other error.
Nothing is changed when the run fails.`;

/** Joins names into lines of at most `width` characters, indented by `indent` after the first. */
function wrapList(names: readonly string[], indent: number, width: number): string {
  const lines: string[] = [];
  let line = "";
  for (const name of names) {
    const next = line === "" ? name : `${line}, ${name}`;
    if (next.length > width && line !== "") {
      lines.push(`${line},`);
      line = name;
    } else {
      line = next;
    }
  }
  lines.push(line);
  return lines.join(`\n${" ".repeat(indent)}`);
}

/** Parses and checks the configure arguments; throws UsageError. */
export function parseConfigureArgs(args: readonly string[]): ConfigureArgs {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: [...args],
      options: OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    throw new UsageError(describeParseError(err as Error & { code?: string }));
  }
  const str = (name: keyof typeof OPTIONS) => values[name] as string | undefined;
  const flag = (name: keyof typeof OPTIONS) => values[name] === true;
  const warnings: string[] = [];
  const parsed: ConfigureArgs = {
    cloud: checkCloud(str("cloud")),
    url: checkUrl(str("url")),
    basePath: absolutePath(str("base-path"), "-p/--base-path"),
    mountPoint: absolutePath(str("mount-point"), "-m/--mount-point"),
    tempPath: absolutePath(str("temp-path"), "-t/--temp-path"),
    user: checkUser(str("user")),
    connectionType: checkConnectionType(str("connection-type")),
    logfile: absolutePath(str("logfile"), "-l/--logfile"),
    loglevel: checkLogLevel(str("loglevel")),
    interactive: flag("interactive"),
    reloadConf: absolutePath(str("reload-conf"), "-r/--reload-conf"),
    rewriteLoggingPlugin: flag("rewrite-logging-plugin"),
    onBoot: flag("on-boot"),
    initial: flag("initial"),
    verbose: flag("verbose"),
    allowUnknownCerts: flag("allow-unknown-certs"),
    cacertFile: absolutePath(str("cacert-file"), "-A/--cacert-file"),
    installExtras: flag("install-extras"),
    extraPackageLocation: checkHttpUrl(str("extra-package-location")),
    packageName: nonEmpty(str("package-name"), "--package-name"),
    chefClientVersion: nonEmpty(str("chef-client-version"), "--chef-client-version"),
    ossec: checkYesNo(str("intrusion-detection-ossec")),
    idsAlertThreshold: checkThreshold(str("ids-alert-threshold")),
    root: absolutePath(str("root"), "--root") ?? "/",
    help: flag("help"),
    warnings,
  };
  if (parsed.basePath === "/") {
    throw new UsageError(
      "-p/--base-path: '/' cannot be the agent's base directory; use e.g. -p /dcm",
    );
  }
  if (parsed.rewriteLoggingPlugin && !parsed.reloadConf) {
    warnings.push(
      "-R/--rewrite-logging-plugin only matters with -r; without -r every file is written anyway",
    );
  }
  return parsed;
}

/** Turns parseArgs' error into a message naming the option and pointing at --help. */
function describeParseError(err: Error & { code?: string }): string {
  const option = /'([^']+)'/.exec(err.message)?.[1];
  const help = "see 'dcm-agent configure --help'";
  switch (err.code) {
    case "ERR_PARSE_ARGS_UNKNOWN_OPTION":
      return `unknown option '${option}'; ${help}`;
    case "ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL":
      return `unexpected argument '${option}': configure takes only options; ${help}`;
    case "ERR_PARSE_ARGS_INVALID_OPTION_VALUE":
      return /argument missing|ambiguous/.test(err.message)
        ? `option ${option?.replace(" <value>", "")} needs a value; ${help}`
        : `option ${option} does not take a value; ${help}`;
    default:
      return `${err.message}; ${help}`;
  }
}

function checkCloud(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const cloud = normalizeCloud(value);
  if (!cloud) {
    throw new UsageError(
      `-c/--cloud: '${value}' is not a known cloud; use one of ${OFFERED_CLOUDS.join(", ")}`,
    );
  }
  return cloud;
}

/** Why `value` is not an acceptable manager URL, or undefined when it is. */
export function managerUrlProblem(value: string): string | undefined {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    // URL() rejects a non-numeric or out-of-range port too; say which part is wrong.
    const port = /^[a-z]+:\/\/[^/:]*:([^/]*)/i.exec(value)?.[1];
    if (port !== undefined && !/^\d{1,5}$/.test(port)) return `the port '${port}' is not a number`;
    return "it is not a URL";
  }
  if (url.protocol !== "ws:" && url.protocol !== "wss:") {
    return `the scheme '${url.protocol.slice(0, -1)}' is not ws or wss`;
  }
  if (url.hostname === "") return "it has no host name";
  // The manager serves agents on a path (e.g. /agentManager); the bare host answers nothing.
  if (url.pathname === "/" || url.pathname === "") {
    return "it has no path; the manager's agent URL ends with a path such as /agentManager";
  }
  return undefined;
}

/** Checks the manager URL given with -u; throws UsageError. */
function checkUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const problem = managerUrlProblem(value);
  if (problem) {
    throw new UsageError(
      `-u/--url: '${value}' is not a manager URL (${problem}); use ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH, e.g. wss://dcm.example.com/agentManager`,
    );
  }
  return value;
}

function absolutePath(value: string | undefined, option: string): string | undefined {
  if (value === undefined) return undefined;
  if (value.trim() === "") {
    throw new UsageError(`${option}: the path is empty; give a directory or file name`);
  }
  return resolve(value);
}

function nonEmpty(value: string | undefined, option: string): string | undefined {
  if (value !== undefined && value.trim() === "") {
    throw new UsageError(`${option}: the value is empty; give a value or leave the option out`);
  }
  return value?.trim();
}

function checkUser(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  if (!/^[A-Za-z_][A-Za-z0-9_.-]*\$?$/.test(value)) {
    throw new UsageError(`-U/--user: '${value}' is not a valid user name; use e.g. -U dcm`);
  }
  return value;
}

function checkConnectionType(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const choices = SCHEMA.connection.type.choices ?? [];
  const found = choices.find((c) => c.toLowerCase() === value.toLowerCase());
  if (!found) {
    throw new UsageError(
      `-C/--connection-type: '${value}' is not supported; use ${choices.join(" or ")}`,
    );
  }
  return found;
}

function checkLogLevel(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const level = value.toUpperCase();
  if (LOG_LEVELS.includes(level)) return level;
  // The original fell back to INFO; a typo is refused instead, as for every other value.
  throw new UsageError(
    `-L/--loglevel: '${value}' is not a log level; use ERROR, WARN, INFO or DEBUG`,
  );
}

function checkHttpUrl(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  try {
    const url = new URL(value);
    if (url.protocol === "http:" || url.protocol === "https:") return value;
  } catch { /* reported below */ }
  throw new UsageError(
    `--extra-package-location: '${value}' is not an http:// or https:// URL; use e.g. https://linux-stable-agent.enstratius.com/`,
  );
}

function checkYesNo(value: string | undefined): boolean | undefined {
  if (value === undefined) return undefined;
  const v = value.trim().toLowerCase();
  if (["y", "yes", "t", "true"].includes(v)) return true;
  if (["n", "no", "f", "false"].includes(v)) return false;
  throw new UsageError(
    `-d/--intrusion-detection-ossec: '${value}' is neither yes nor no; use -d yes or -d no`,
  );
}

function checkThreshold(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  if (!/^\d+$/.test(value.trim())) {
    throw new UsageError(
      `-T/--ids-alert-threshold: '${value}' is not a whole number; use e.g. -T 10`,
    );
  }
  return Number(value.trim());
}
