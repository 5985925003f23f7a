/** Where `dcm-agent reconfigure` finds the agent.conf of the installed agent. */
import { join } from "node:path";
import { isFile, readTextIfPresent } from "../os/mod.ts";
import { SERVICE_NAME } from "./boot.ts";
import { type ConfigureArgs, UsageError } from "./options.ts";

/** The agent.conf of the installed agent: -p, $DCM_AGENT_CONF, the boot files, /dcm. */
export function installedConfFile(parsed: ConfigureArgs): string {
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
