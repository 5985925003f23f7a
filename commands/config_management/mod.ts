/** Configuration management: bootstrapping the server into Puppet, Chef or Ansible. */
import type { CommandModule } from "../../lib/core/mod.ts";
import configureServer from "./configure_server.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  configureServer,
];
