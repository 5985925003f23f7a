/**
 * The built-in commands, in the order the original agent's plugin.conf lists
 * them (spec 4.1). This is the list advertised when no plugin.conf is set.
 *
 * Command modules declare their arguments here at start-up but import the code
 * that changes the system (accounts, hostname, scripts) on first use, so an idle
 * agent does not hold code it may never run.
 */
import type { CommandModule } from "../lib/command.ts";
import addUser from "./add_user.ts";
import deleteSystemStat from "./delete_system_stat.ts";
import fetchRun from "./fetch_run.ts";
import getAgentData from "./get_agent_data.ts";
import getJobDescription from "./get_job_description.ts";
import getSystemStat from "./get_system_stat.ts";
import heartbeat from "./heartbeat.ts";
import initialize from "./initialize.ts";
import initSystemStat from "./init_system_stat.ts";
import removeUser from "./remove_user.ts";
import rename from "./rename.ts";
import runScript from "./run_script.ts";

/** Every command this agent implements, in advertised order. */
export const BUILTIN_COMMANDS: readonly CommandModule[] = [
  addUser,
  deleteSystemStat,
  fetchRun,
  getAgentData,
  getJobDescription,
  getSystemStat,
  heartbeat,
  initialize,
  initSystemStat,
  removeUser,
  rename,
  runScript,
];
