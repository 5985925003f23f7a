/** Scripts the manager sends or points to, run with the agent's script environment. */
import type { CommandModule } from "../../lib/core/mod.ts";
import runScript from "./run_script.ts";
import fetchRun from "./fetch_run.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  runScript,
  fetchRun,
];
