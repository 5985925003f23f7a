/** The VM's life cycle: first-boot initialization. */
import type { CommandModule } from "../../lib/core/mod.ts";
import initialize from "./initialize.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  initialize,
];
