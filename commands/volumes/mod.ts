/** Disk volumes: list, mount (format, LUKS, RAID) and unmount. */
import type { CommandModule } from "../../lib/core/mod.ts";
import listDevices from "./list_devices.ts";
import mountVolume from "./mount_volume.ts";
import unmountVolume from "./unmount_volume.ts";

/** The commands of this family. */
export const COMMANDS: readonly CommandModule[] = [
  listDevices,
  mountVolume,
  unmountVolume,
];
