/** Users and host identity: login users with SSH keys and sudo, and the hostname. */
import type { CommandModule } from "../../lib/core/mod.ts";
import addUser from "./add_user.ts";
import removeUser from "./remove_user.ts";
import rename from "./rename.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  addUser,
  removeUser,
  rename,
];
