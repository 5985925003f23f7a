/** The checks of the agent.conf values that must pass before configure writes anything. */
import { ConfigError, parseConfigText } from "../config/mod.ts";
import { caFileProblem, findCaBundle, HAND_MAINTAINED_BUNDLE } from "./ca_bundle.ts";
import { type ConfigureArgs, managerUrlProblem, UsageError } from "./options.ts";
import type { ConfValues } from "./settings.ts";
import { renderAgentConf } from "./writer.ts";

/** The manager URL is required (except for the package's -I run) and must be ws/wss. */
export function checkManagerUrl(values: ConfValues, parsed: ConfigureArgs): void {
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

/** the original configure step 9: with certificate checking on, a usable CA file is required. */
export function checkCa(
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
  // A ws:// manager is reached without TLS: no CA is needed until the URL becomes wss://.
  if (!found && /^ws:/i.test(values.get("connection.agentmanager_url") ?? "")) return;
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
export function checkAgentConf(values: ConfValues, confFile: string): void {
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
