/**
 * `dcm-agent configure` and `dcm-agent reconfigure` (spec 5.4): builds the
 * agent.conf values (defaults, then -r, then options, then detection and the
 * interactive answers), checks everything before touching the disk, then
 * writes the tree and registers the boot service.
 */
import { dirname, join } from "node:path";
import { parseYamlSubset } from "../config/mod.ts";
import loggingTemplate from "../../config/logging.yaml" with { type: "text" };
import { ConfigError, parseConfigText } from "../config/mod.ts";
import { defaultPluginConfText } from "../core/mod.ts";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";
import { agentProgram, type InitSystem, installBoot, SERVICE_NAME } from "./boot.ts";
import {
  CA_BUNDLE_CANDIDATES,
  caFileProblem,
  findCaBundle,
  HAND_MAINTAINED_BUNDLE,
} from "./ca_bundle.ts";
import { metadataUrlFor, normalizeCloud } from "./clouds.ts";
import { detectCloud } from "./detect_cloud.ts";
import { installExtras } from "./extras.ts";
import {
  askOnBoot,
  askSetup,
  InputEndedError,
  type PromptIo,
  terminalPromptIo,
} from "./interactive.ts";
import {
  CONFIGURE_HELP,
  type ConfigureArgs,
  managerUrlProblem,
  parseConfigureArgs,
  UsageError,
} from "./options.ts";
import { ConfValues } from "./settings.ts";
import {
  chownTree,
  isInside,
  lookupUser,
  makeDirectories,
  plannedDirectories,
  StagedFiles,
} from "./tree.ts";
import { renderAgentConf } from "./writer.ts";
import { isDirectory, isFile, pathExists, readTextIfPresent } from "../os/mod.ts";

/** Hooks for tests and embedding; every field has a sensible default. */
export interface ConfigureOptions {
  /** Questions and answers for -i; default the terminal (refused when stdin is not one). */
  prompt?: PromptIo;
  /** Standard output lines; default console.log. */
  out?: (line: string) => void;
  /** Warning and error lines; default console.error. */
  err?: (line: string) => void;
  /** Cloud detection given the configured metadata_url; default {@linkcode detectCloud}. */
  detectCloud?: (metadataUrl: string | null) => Promise<string>;
  /** CA bundles looked for when none is given; default CA_BUNDLE_CANDIDATES. */
  caBundles?: readonly string[];
  /** The command that runs the agent, for the boot files; default this program. */
  agentProgram?: readonly string[];
  /** The init system for -B; default detected under --root. */
  initSystem?: InitSystem;
}

const PREFIX = "dcm-agent configure";

/** Runs `dcm-agent configure ARGS`; returns the exit code (0 done, 2 usage, 1 other). */
export async function configureMain(
  args: string[],
  options: ConfigureOptions = {},
): Promise<number> {
  const err = options.err ?? ((line: string) => console.error(line));
  let verbose = args.includes("-v") || args.includes("--verbose");
  try {
    const parsed = parseConfigureArgs(args);
    verbose = parsed.verbose;
    if (parsed.help) {
      (options.out ?? console.log)(CONFIGURE_HELP);
      return 0;
    }
    await runConfigure(parsed, options);
    return 0;
  } catch (error) {
    return reportError(error, err, { verbose, prefix: PREFIX });
  }
}

/** Runs `dcm-agent reconfigure ARGS`: configure -r with the installed agent.conf. */
export async function reconfigureMain(
  args: string[],
  options: ConfigureOptions = {},
): Promise<number> {
  const err = options.err ?? ((line: string) => console.error(line));
  try {
    const parsed = parseConfigureArgs(args);
    if (parsed.help) return await configureMain(["--help"], options);
    if (parsed.reloadConf) {
      throw new UsageError(
        "reconfigure finds the installed agent.conf itself; to name one, use 'dcm-agent configure -r FILE'",
      );
    }
    const conf = installedConfFile(parsed);
    return await configureMain(["-r", conf, ...args], options);
  } catch (error) {
    return reportError(error, err, {
      verbose: args.includes("-v") || args.includes("--verbose"),
      prefix: "dcm-agent reconfigure",
    });
  }
}

/** The agent.conf of the installed agent: -p, $DCM_AGENT_CONF, the boot files, /dcm. */
function installedConfFile(parsed: ConfigureArgs): string {
  const candidates: string[] = [];
  if (parsed.basePath) candidates.push(join(parsed.basePath, "etc/agent.conf"));
  const fromEnv = Deno.env.get("DCM_AGENT_CONF");
  if (fromEnv) candidates.push(fromEnv);
  for (const file of [`etc/systemd/system/${SERVICE_NAME}.service`, `etc/init.d/${SERVICE_NAME}`]) {
    const text = readTextIfPresent(join(parsed.root, file)) ?? "";
    const conf = /^(?:ExecStart=|DAEMON_ARGS=).*\s-c\s+([^\s"]+)/m.exec(text)?.[1];
    if (conf) candidates.push(conf);
  }
  candidates.push("/dcm/etc/agent.conf");
  const found = candidates.find((f) => isFile(f));
  if (!found) {
    throw new UsageError(
      `no installed agent.conf found (looked at ${
        candidates.join(", ")
      }); run 'dcm-agent configure' first, or give the base path with -p DIR`,
    );
  }
  return found;
}

/** Prints an error and returns its exit code: 2 for usage, 1 for anything else. */
function reportError(
  error: unknown,
  err: (line: string) => void,
  options: { verbose: boolean; prefix: string },
): number {
  if (error instanceof UsageError) {
    err(`${options.prefix}: ${error.message}`);
    return 2;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  err(`${options.prefix}: error: ${e.message}`);
  if (options.verbose && e.stack && !(e instanceof InputEndedError)) err(e.stack);
  return 1;
}

/** Everything decided before the disk is touched. */
interface Plan {
  values: ConfValues;
  base: string;
  confFile: string;
  user: string;
  /** logging.yaml and plugin.conf contents to write, keyed by path. */
  extraFiles: Map<string, string>;
  logfile: string;
}

async function runConfigure(parsed: ConfigureArgs, options: ConfigureOptions): Promise<void> {
  const out = options.out ?? ((line: string) => console.log(line));
  const err = options.err ?? ((line: string) => console.error(line));
  // Interactive runs talk on stdout; scripted runs keep stdout empty.
  const note = (line: string) => parsed.interactive ? out(line) : err(`${PREFIX}: ${line}`);
  const detail = (line: string) => parsed.verbose && out(line);
  const warn = (line: string) => err(`${PREFIX}: warning: ${line}`);
  for (const w of parsed.warnings) warn(w);
  let io: PromptIo | undefined;
  if (parsed.interactive) {
    if (!options.prompt && !Deno.stdin.isTerminal()) {
      throw new UsageError(
        "-i/--interactive needs a terminal on standard input; run it from a shell, or give the values as options (see --help)",
      );
    }
    io = options.prompt ?? terminalPromptIo();
  }
  const plan = await buildPlan(parsed, options, { note, warn, io });
  writeTree(plan, parsed, { detail, warn });
  if (parsed.interactive) out(`Wrote ${plan.confFile}.`);

  if (!parsed.initial) {
    let onBoot = parsed.onBoot;
    if (!onBoot && io) {
      // The files are written by now: an ended input only means "no".
      onBoot = await askOnBoot(io).catch((e) =>
        e instanceof InputEndedError ? false : Promise.reject(e)
      );
    }
    if (onBoot) {
      const result = installBoot(
        {
          program: options.agentProgram ?? agentProgram(),
          confFile: plan.confFile,
          base: plan.base,
        },
        { root: parsed.root, initSystem: options.initSystem },
      );
      detail(`boot: wrote ${result.file} and enabled it (${result.method})`);
      if (parsed.interactive) {
        out(
          result.initSystem === "systemd"
            ? `The agent starts at boot. Start it now with: systemctl start ${SERVICE_NAME}`
            : `The agent starts at boot. Start it now with: /etc/init.d/${SERVICE_NAME} start`,
        );
      }
    }
  }
  if (parsed.installExtras) {
    note(
      await installExtras({
        location: plan.values.get("extra.location") ?? "",
        packageName: plan.values.get("extra.package_name"),
        basePath: plan.values.get("extra.base_path") ?? "/opt/dcm-agent-extras",
      }),
    );
  }
}

interface PlanHooks {
  note: (line: string) => void;
  warn: (line: string) => void;
  io?: PromptIo;
}

/** Spec 5.4 processing steps 1-9, plus the checks that must pass before writing. */
async function buildPlan(
  parsed: ConfigureArgs,
  options: ConfigureOptions,
  hooks: PlanHooks,
): Promise<Plan> {
  // Steps 1-3: defaults, the -r file, the options.
  const values = ConfValues.defaults();
  if (parsed.reloadConf) values.overlayFile(parsed.reloadConf);
  const oldBase = values.get("storage.base_dir") ?? "/dcm";
  applyOptions(values, parsed);
  const base = values.get("storage.base_dir") ?? "/dcm";
  if (base === "/") {
    throw new UsageError(
      "[storage] base_dir is '/'; give the agent its own directory with -p, e.g. -p /dcm",
    );
  }
  values.rebase({ from: oldBase, to: base });

  // Step 4: the files under the base path.
  fillIn(values, "logging.configfile", join(base, "etc/logging.yaml"));
  fillIn(values, "plugin.configfile", join(base, "etc/plugin.conf"));
  fillIn(values, "storage.script_dir", join(base, "bin"));

  // Step 5: detection, only when nothing names the cloud.
  if (values.get("cloud.type")?.toLowerCase() === "unknown" && !parsed.initial) {
    const detect = options.detectCloud ?? ((url) => detectCloud({ metadataUrl: url }));
    const cloud = await detect(values.get("cloud.metadata_url"));
    if (cloud !== "UNKNOWN") {
      values.set("cloud.type", cloud);
      hooks.note(`detected cloud: ${cloud}`);
    }
  }

  // Step 6: the questions.
  const caBundles = options.caBundles ?? CA_BUNDLE_CANDIDATES;
  if (hooks.io) {
    const answers = await askSetup(
      {
        cloud: normalizeCloud(values.get("cloud.type") ?? "") ?? "UNKNOWN",
        url: validUrlOrNull(values.get("connection.agentmanager_url")),
        allowUnknownCerts: values.isTrue("connection.allow_unknown_certs"),
        caCert: values.get("connection.ca_cert"),
      },
      hooks.io,
      { caGuess: findCaBundle(caBundles) },
    );
    values.set("cloud.type", answers.cloud);
    values.set("connection.agentmanager_url", answers.url);
    values.set("connection.allow_unknown_certs", answers.allowUnknownCerts ? "True" : "False");
    values.set("connection.ca_cert", answers.caCert);
  }

  // Steps 7-8: the cloud and its metadata URL.
  const given = values.get("cloud.type") ?? "UNKNOWN";
  const cloud = normalizeCloud(given);
  if (!cloud) {
    throw new UsageError(
      `[cloud] type '${given}' in ${
        parsed.reloadConf ?? "agent.conf"
      } is not a known cloud; give one with -c/--cloud NAME`,
    );
  }
  values.set("cloud.type", cloud);
  values.set("cloud.metadata_url", metadataUrlFor(cloud, values.get("cloud.metadata_url")));

  checkManagerUrl(values, parsed);
  checkCa(values, parsed, caBundles, hooks.warn);

  if (values.isTrue("intrusion_detection.ossec") && !isDirectory("/var/ossec")) {
    hooks.warn(
      "OSSEC intrusion detection is on but /var/ossec does not exist; install OSSEC before starting the agent",
    );
  }

  const confFile = join(base, "etc/agent.conf");
  checkAgentConf(values, confFile);
  const user = values.get("system.user") ?? "dcm";
  const logfile = parsed.logfile ?? join(base, "logs/agent.log");
  return {
    values,
    base,
    confFile,
    user,
    logfile,
    extraFiles: otherFiles(values, parsed, { user, logfile }, hooks.warn),
  };
}

/** Step 3: what the options set in agent.conf (-l and -L go to logging.yaml). */
function applyOptions(values: ConfValues, parsed: ConfigureArgs): void {
  const set = (path: string, value: string | undefined) => {
    if (value !== undefined) values.set(path, value);
  };
  set("cloud.type", parsed.cloud);
  set("connection.agentmanager_url", parsed.url);
  set("connection.type", parsed.connectionType);
  set("connection.ca_cert", parsed.cacertFile);
  if (parsed.allowUnknownCerts) set("connection.allow_unknown_certs", "True");
  set("storage.base_dir", parsed.basePath);
  set("storage.mountpoint", parsed.mountPoint);
  set("storage.temppath", parsed.tempPath);
  set("system.user", parsed.user);
  set("extra.location", parsed.extraPackageLocation);
  set("extra.package_name", parsed.packageName);
  set("configuration_management.chef_client_version", parsed.chefClientVersion);
  if (parsed.ossec !== undefined) {
    set("intrusion_detection.ossec", parsed.ossec ? "True" : "False");
  }
  if (parsed.idsAlertThreshold !== undefined) {
    set("intrusion_detection.alert_threshold", String(parsed.idsAlertThreshold));
  }
}

function fillIn(values: ConfValues, path: string, value: string): void {
  if (values.get(path) === null) values.set(path, value);
}

function validUrlOrNull(url: string | null): string | null {
  return url !== null && managerUrlProblem(url) === undefined ? url : null;
}

/** The manager URL is required (except for the package's -I run) and must be ws/wss. */
function checkManagerUrl(values: ConfValues, parsed: ConfigureArgs): void {
  const url = values.get("connection.agentmanager_url");
  if (url === null) {
    if (parsed.initial) return;
    throw new UsageError(
      "no agent manager URL: give one with -u/--url, e.g. -u wss://dcm.example.com/agentManager, or run with -i to be asked",
    );
  }
  const problem = managerUrlProblem(url);
  if (problem) {
    throw new UsageError(
      `[connection] agentmanager_url '${url}' in ${
        parsed.reloadConf ?? "agent.conf"
      } is not a manager URL (${problem}); give a new one with -u/--url`,
    );
  }
}

/** Spec 5.4 step 9: with certificate checking on, a usable CA file is required. */
function checkCa(
  values: ConfValues,
  parsed: ConfigureArgs,
  candidates: readonly string[],
  warn: (w: string) => void,
): void {
  if (values.isTrue("connection.allow_unknown_certs")) return;
  const ca = values.get("connection.ca_cert");
  if (ca !== null) {
    const problem = caFileProblem(ca);
    if (problem) {
      const source = parsed.cacertFile === ca ? "-A/--cacert-file" : "[connection] ca_cert";
      throw new UsageError(
        `${source}: ${problem}; give a PEM file of CA certificates with -A/--cacert-file PATH, or turn certificate checking off with -Z/--allow-unknown-certs (insecure)`,
      );
    }
    return;
  }
  const found = findCaBundle(candidates);
  if (!found) {
    throw new UsageError(
      `no CA bundle found (looked for ${
        candidates.join(", ")
      }); give the CA that signed the manager's certificate with -A/--cacert-file PATH, or turn certificate checking off with -Z/--allow-unknown-certs (insecure)`,
    );
  }
  if (found === HAND_MAINTAINED_BUNDLE) {
    warn(
      `using ${found}, a CA bundle maintained by hand that may be out of date; prefer the system bundle or -A`,
    );
  }
  values.set("connection.ca_cert", found);
}

/** Parses the new agent.conf as the agent will, so a value it would refuse stops the run now. */
function checkAgentConf(values: ConfValues, confFile: string): void {
  const check = values.clone();
  // Only the package's -I run leaves the URL unset; the agent refuses that, configure does not.
  if (check.get("connection.agentmanager_url") === null) {
    check.set("connection.agentmanager_url", "wss://unset.invalid/");
  }
  try {
    parseConfigText(renderAgentConf(check), `${confFile} (new)`);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new UsageError(
      `${error.message}; fix the value (from -r or an option); nothing was changed`,
    );
  }
}

/** logging.yaml and plugin.conf: always without -r; with -r only when missing or with -R. */
function otherFiles(
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

/** The logging.yaml template with its placeholders filled in (spec 5.3). */
function renderLoggingYaml(logfile: string, level: string, user: string): string {
  const text = loggingTemplate
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

/** Creates the tree, writes every file at once, and gives the tree to the system user. */
function writeTree(
  plan: Plan,
  parsed: ConfigureArgs,
  hooks: { detail: (line: string) => void; warn: (w: string) => void },
): void {
  const scriptDir = plan.values.get("storage.script_dir") as string;
  const tempPath = plan.values.get("storage.temppath") ?? "/tmp";
  if (pathExists(plan.base) && !isDirectory(plan.base)) {
    throw new UsageError(
      `-p/--base-path: ${plan.base} exists and is not a directory; choose another base path`,
    );
  }
  const parents = [...plan.extraFiles.keys(), plan.logfile].map((f) => dirname(f));
  const dirs = plannedDirectories(plan.base, { scriptDir, tempPath, extraParents: parents });
  for (const dir of makeDirectories(dirs)) hooks.detail(`directory ${dir}`);

  const files = new StagedFiles();
  try {
    files.stage(plan.confFile, renderAgentConf(plan.values), 0o644);
    for (const [file, text] of plan.extraFiles) files.stage(file, text, 0o644);
    files.stage(join(scriptDir, "variables.sh"), variablesSh(plan.user, plan.base), 0o550);
    files.commit();
  } catch (error) {
    files.discard();
    throw new Error(
      `cannot write the configuration: ${
        (error as Error).message
      }; the previous files are unchanged. Run configure as root or check the base path`,
    );
  }
  for (const file of [plan.confFile, ...plan.extraFiles.keys(), join(scriptDir, "variables.sh")]) {
    hooks.detail(`wrote ${file}`);
  }
  giveToUser(plan, dirs.map((d) => d.path), parsed, hooks);
}

/** `chown -R user:user` of the tree (spec 5.4); the base itself only, not whatever else is in it. */
function giveToUser(
  plan: Plan,
  dirs: string[],
  parsed: ConfigureArgs,
  hooks: { detail: (line: string) => void; warn: (w: string) => void },
): void {
  if (plan.user === "root") return;
  const ids = lookupUser(plan.user);
  if (!ids) {
    if (!parsed.initial) {
      hooks.warn(
        `system user '${plan.user}' does not exist, so ${plan.base} stays owned by ${
          Deno.uid() === 0 ? "root" : "you"
        }; create it (useradd --system --home-dir ${
          join(plan.base, "home")
        } --shell /bin/false ${plan.user}) and run configure again, or pass -U root`,
      );
    }
    return;
  }
  if (Deno.uid() !== 0) {
    if (ids.uid !== Deno.uid()) {
      hooks.warn(`cannot give ${plan.base} to '${plan.user}': configure is not running as root`);
    }
    return;
  }
  Deno.chownSync(plan.base, ids.uid, ids.gid);
  // Only the agent's own directories: a base path such as /opt may hold other software.
  for (const dir of dirs) {
    if (dir !== plan.base && isInside(dir, plan.base) && isDirectory(dir)) chownTree(dir, ids);
  }
  hooks.detail(`gave ${plan.base} to ${plan.user}`);
}

/** `bin/variables.sh`, sourced by scripts (spec 5.4). */
function variablesSh(user: string, base: string): string {
  const quote = (v: string) => /^[A-Za-z0-9_./-]+$/.test(v) ? v : `'${v.replaceAll("'", `'\\''`)}'`;
  return `DCM_USER=${quote(user)}\nDCM_BASEDIR=${quote(base)}\n`;
}
