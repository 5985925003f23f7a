/** The last step of configure: registering the agent to start at boot (-B, or asked with -i). */
import { agentProgram, bootInstalled, type InitSystem, installBoot, SERVICE_NAME } from "./boot.ts";
import type { ConfigureArgs } from "./options.ts";
import type { Plan } from "./plan.ts";

/** Where the boot step reports, and what it may replace. */
export interface OnBootHooks {
  /** Whether to install: -B, or the answer of -i's question. */
  onBoot: boolean;
  out: (line: string) => void;
  detail: (line: string) => void;
  /** The command that runs the agent, for the boot files; default this program. */
  agentProgram?: readonly string[];
  /** The init system; default detected under --root. */
  initSystem?: InitSystem;
}

/** Writes and enables the boot files when -B is given or -i's question was answered yes. */
export function registerOnBoot(
  plan: Plan,
  parsed: ConfigureArgs,
  hooks: OnBootHooks,
): void {
  if (parsed.initial) return;
  if (!hooks.onBoot) {
    if (parsed.interactive && bootInstalled(parsed.root)) {
      hooks.out(
        `The boot service installed earlier stays; to stop starting at boot: systemctl disable ${SERVICE_NAME} (or update-rc.d ${SERVICE_NAME} remove)`,
      );
    }
    return;
  }
  const result = installBoot(
    {
      program: hooks.agentProgram ?? agentProgram(),
      confFile: plan.confFile,
      base: plan.base,
    },
    { root: parsed.root, initSystem: hooks.initSystem },
  );
  hooks.detail(`boot: wrote ${result.file} and enabled it (${result.method})`);
  if (parsed.interactive) {
    hooks.out(
      result.initSystem === "systemd"
        ? `The agent starts at boot. Start it now with: systemctl start ${SERVICE_NAME}`
        : `The agent starts at boot. Start it now with: /etc/init.d/${SERVICE_NAME} start`,
    );
  }
}
