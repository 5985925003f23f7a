/** The VM's life cycle: first-boot initialization, upgrade, image cleaning, termination. */
import type { CommandModule } from "../../lib/core/mod.ts";
import cleanImage from "./clean_image.ts";
import initialize from "./initialize.ts";
import terminate from "./terminate.ts";
import upgrade from "./upgrade.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  initialize,
  cleanImage,
  terminate,
  upgrade,
];
