/**
 * The built-in commands, in the order the original agent's plugin.conf lists
 * them (spec 4.1). This is the list advertised when no plugin.conf is set.
 */
import type { CommandModule } from "../lib/command.ts";
import heartbeat from "./heartbeat.ts";
import getJobDescription from "./get_job_description.ts";

/** Every command this agent implements, in advertised order. */
export const BUILTIN_COMMANDS: readonly CommandModule[] = [
  getJobDescription,
  heartbeat,
];
