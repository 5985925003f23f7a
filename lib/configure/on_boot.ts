/** The last step of configure: registering the agent to start at boot (-B, or asked with -i). */
import { agentProgram, type InitSystem, installBoot, SERVICE_NAME } from "./boot.ts";
import { askOnBoot, InputEndedError, type PromptIo } from "./interactive.ts";
import type { ConfigureArgs } from "./options.ts";
import type { Plan } from "./plan.ts";

/** Where the boot step reports, and what it may replace. */
export interface OnBootHooks {
  out: (line: string) => void;
  detail: (line: string) => void;
  /** The questions of -i; absent for a scripted run. */
  io?: PromptIo;
  /** The command that runs the agent, for the boot files; default this program. */
  agentProgram?: readonly string[];
  /** The init system; default detected under --root. */
  initSystem?: InitSystem;
}

/** Writes and enables the boot files when -B is given or -i's question is answered yes. */
export async function registerOnBoot(
  plan: Plan,
  parsed: ConfigureArgs,
  hooks: OnBootHooks,
): Promise<void> {
  if (parsed.initial) return;
  let onBoot = parsed.onBoot;
  if (!onBoot && hooks.io) {
    // The files are written by now: an ended input only means "no".
    onBoot = await askOnBoot(hooks.io).catch((e) =>
      e instanceof InputEndedError ? false : Promise.reject(e)
    );
  }
  if (!onBoot) return;
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
