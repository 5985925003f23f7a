/** System statistics: collectors started, sampled and stopped by the manager. */
import type { CommandModule } from "../../lib/core/mod.ts";
import initSystemStat from "./init_system_stat.ts";
import getSystemStat from "./get_system_stat.ts";
import deleteSystemStat from "./delete_system_stat.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  initSystemStat,
  getSystemStat,
  deleteSystemStat,
];
export { StatRegistry } from "./registry.ts";
