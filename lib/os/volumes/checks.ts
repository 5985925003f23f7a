/**
 * Safety rules a volume request must pass before anything is written:
 * mount points, file system and RAID names, and "is this device in use?".
 */
import { normalize } from "node:path";
import {
  holdersOf,
  type KernelPaths,
  leavesOf,
  type MountEntry,
  nameOfDevno,
  partitionsOf,
  swapDevices,
  VolumeError,
} from "./block_devices.ts";

/** Directories that are never a data mount point, and trees nothing is mounted under. */
const SYSTEM_DIRS = new Set([
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/home",
  "/lib",
  "/lib32",
  "/lib64",
  "/libx32",
  "/media",
  "/mnt",
  "/opt",
  "/proc",
  "/root",
  "/run",
  "/sbin",
  "/srv",
  "/sys",
  "/tmp",
  "/usr",
  "/var",
  "/var/lib",
  "/var/log",
  "/var/tmp",
]);
const SYSTEM_TREES = [
  "/bin",
  "/boot",
  "/dev",
  "/etc",
  "/lib",
  "/lib64",
  "/proc",
  "/run",
  "/sbin",
  "/sys",
  "/usr",
];

/** Checks a requested mount point's spelling; returns it without a trailing slash. */
export function checkMountPoint(path: string): string {
  const shown = JSON.stringify(path.slice(0, 80));
  if (!path.startsWith("/")) {
    throw new VolumeError(`mount point ${shown} is not an absolute path; give one like /mnt/data`);
  }
  if (path.length > 512 || !/^[A-Za-z0-9._@+=,:/-]+$/.test(path)) {
    throw new VolumeError(
      `mount point ${shown} may contain only letters, digits and . _ @ + = , : - /, at most 512 characters`,
    );
  }
  const parts = path.split("/").slice(1);
  if (parts.some((p) => p === "." || p === "..")) {
    throw new VolumeError(`mount point ${shown} contains '.' or '..'; give the plain path`);
  }
  const clean = normalize(path).replace(/(.)\/+$/, "$1");
  if (clean === "/" || SYSTEM_DIRS.has(clean)) {
    throw new VolumeError(`mount point ${clean} is a system directory; choose one like /mnt/data`);
  }
  const tree = SYSTEM_TREES.find((t) => clean.startsWith(t + "/"));
  if (tree) {
    throw new VolumeError(
      `mount point ${clean} is inside the system directory ${tree}; choose one like /mnt/data`,
    );
  }
  return clean;
}

/** File systems that can be made, by name (ext4, xfs, btrfs, ...). */
export function checkFileSystem(name: string): string {
  if (!/^[a-z][a-z0-9]{1,15}$/.test(name) || name === "swap") {
    throw new VolumeError(
      `file system ${
        JSON.stringify(name.slice(0, 40))
      } is not valid; give a name such as ext4 or xfs`,
    );
  }
  return name;
}

/** A RAID level as the manager sends it ("NONE", "RAID0", "RAID1", "RAID5", "RAID10"). */
export function parseRaidLevel(value: string): number | null {
  const text = value.trim().toUpperCase();
  if (text === "NONE" || text === "") return null;
  const m = /^RAID(0|1|4|5|6|10)$/.exec(text);
  if (!m) {
    throw new VolumeError(
      `raidLevel ${
        JSON.stringify(value.slice(0, 20))
      } is not valid; use NONE, RAID0, RAID1, RAID5 or RAID10`,
    );
  }
  return Number(m[1]);
}

/** The fewest devices an array of this level takes. */
export function minimumDevices(level: number): number {
  return level === 5 || level === 4 ? 3 : level === 6 ? 4 : 2;
}

/**
 * Throws unless nothing uses `name`: not mounted (itself, a partition or
 * anything built on it), not under the root file system, not swap, not held
 * by a mapping, an array or LVM. `allowHolder` is a holder the caller reuses.
 */
export function checkDeviceFree(
  kernel: KernelPaths,
  name: string,
  options: { mounts: MountEntry[]; allowHolder?: string | null },
): void {
  const related = new Set([name, ...partitionsOf(kernel, name)]);
  for (const m of options.mounts) {
    const dev = nameOfDevno(kernel, m.devno);
    if (!dev) continue;
    const leaves = leavesOf(kernel, dev);
    if (leaves.some((l) => related.has(l)) || related.has(dev)) {
      const what = m.mountPoint === "/"
        ? "holds the root file system"
        : `is mounted at ${m.mountPoint}`;
      throw new VolumeError(`device ${name} is in use: it ${what}; unmount it first`);
    }
  }
  const swaps = swapDevices(kernel);
  if ([...related].some((r) => swaps.includes(r))) {
    throw new VolumeError(`device ${name} is in use as swap; run swapoff on it first`);
  }
  for (const r of related) {
    const holders = holdersOf(kernel, r).filter((h) => h !== options.allowHolder);
    if (holders.length) {
      throw new VolumeError(
        `device ${name} is in use by ${holders.join(", ")} (an open encryption mapping, a RAID ` +
          `array or LVM); stop that first`,
      );
    }
  }
}
