/**
 * The plan of a configure run: the agent.conf values built from the defaults,
 * the -r file, the options, cloud detection and the interactive answers, all
 * checked before anything is written.
 */
import { join } from "node:path";
import { agentConfWarnings } from "../config/mod.ts";
import { isDirectory } from "../os/mod.ts";
import { CA_BUNDLE_CANDIDATES, findCaBundle } from "./ca_bundle.ts";
import { checkAgentConf, checkCa, checkManagerUrl } from "./checks.ts";
import { metadataUrlFor, normalizeCloud } from "./clouds.ts";
import { detectCloud } from "./detect_cloud.ts";
import { askSetup, type PromptIo } from "./interactive.ts";
import { type ConfigureArgs, managerUrlProblem, UsageError } from "./options.ts";
import { otherFiles } from "./other_files.ts";
import { ConfValues } from "./settings.ts";

/** The hooks of {@linkcode buildPlan} that tests replace. */
export interface PlanOptions {
  /** Cloud detection given the configured metadata_url; default {@linkcode detectCloud}. */
  detectCloud?: (metadataUrl: string | null) => Promise<string>;
  /** CA bundles looked for when none is given; default CA_BUNDLE_CANDIDATES. */
  caBundles?: readonly string[];
}

/** Everything decided before the disk is touched. */
export interface Plan {
  values: ConfValues;
  base: string;
  confFile: string;
  user: string;
  /** logging.yaml and plugin.conf contents to write, keyed by path. */
  extraFiles: Map<string, string>;
  logfile: string;
}

/** Where a plan reports, and the questions of -i. */
export interface PlanHooks {
  note: (line: string) => void;
  warn: (line: string) => void;
  io?: PromptIo;
}

/** The original configure's processing steps 1-9, plus the checks that must pass before writing. */
export async function buildPlan(
  parsed: ConfigureArgs,
  options: PlanOptions,
  hooks: PlanHooks,
): Promise<Plan> {
  // Steps 1-3: defaults, the -r file, the options.
  const values = ConfValues.defaults();
  if (parsed.reloadConf) {
    values.overlayFile(parsed.reloadConf);
    const text = Deno.readTextFileSync(parsed.reloadConf);
    for (const w of agentConfWarnings(text, parsed.reloadConf)) hooks.warn(w);
  }
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

/** What a run will write, shown by -i before its last question. */
export function planSummary(plan: Plan, parsed: ConfigureArgs): string[] {
  const v = plan.values;
  const url = v.get("connection.agentmanager_url") ?? "(none)";
  const tls = !/^wss:/i.test(url)
    ? "no TLS"
    : v.isTrue("connection.allow_unknown_certs")
    ? "certificates NOT checked"
    : `certificates checked with ${v.get("connection.ca_cert")}`;
  const scriptDir = v.get("storage.script_dir") ?? join(plan.base, "bin");
  return [
    "This will write:",
    `  ${plan.confFile}: cloud ${v.get("cloud.type")}, manager ${url} (${tls})`,
    ...[...plan.extraFiles.keys()].map((f) => `  ${f}`),
    `  ${join(scriptDir, "variables.sh")}`,
    `  owned by ${plan.user}, logging to ${plan.logfile}${
      parsed.onBoot ? "; and the boot service (-B)" : ""
    }`,
  ];
}
