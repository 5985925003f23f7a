/** The agent's own state: liveness, facts about the VM and long-running jobs. */
import type { CommandModule } from "../../lib/core/mod.ts";
import heartbeat from "./heartbeat.ts";
import getAgentData from "./get_agent_data.ts";
import getJobDescription from "./get_job_description.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  heartbeat,
  getAgentData,
  getJobDescription,
];
