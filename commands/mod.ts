/**
 * Every built-in command, joined from the command families (one folder each).
 * This is the list advertised when no plugin.conf is set, in the original
 * agent's order: sorted by name, as its plugin.conf lists them.
 *
 * Command modules declare their arguments at start-up but import the code that
 * changes the system (accounts, hostname, scripts) on first use, so an idle
 * agent does not hold code it may never run.
 */
import type { CommandModule } from "../lib/core/mod.ts";
import { COMMANDS as AGENT } from "./agent/mod.ts";
import { COMMANDS as CONFIG_MANAGEMENT } from "./config_management/mod.ts";
import { COMMANDS as DOCKER } from "./docker/mod.ts";
import { COMMANDS as LIFECYCLE } from "./lifecycle/mod.ts";
import { COMMANDS as SCRIPTS } from "./scripts/mod.ts";
import { COMMANDS as STATS } from "./stats/mod.ts";

/** The stat collectors behind the stats family, a service the agent holds for it. */
export { StatRegistry } from "./stats/mod.ts";
import { COMMANDS as USERS } from "./users/mod.ts";
import { COMMANDS as VOLUMES } from "./volumes/mod.ts";

/** Every command this agent implements, in advertised order. */
export const BUILTIN_COMMANDS: readonly CommandModule[] = [
  ...AGENT,
  ...CONFIG_MANAGEMENT,
  ...DOCKER,
  ...LIFECYCLE,
  ...SCRIPTS,
  ...STATS,
  ...USERS,
  ...VOLUMES,
].sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
