/**
 * What the kernel says about block devices and mounts: /proc/self/mountinfo,
 * /proc/swaps and /sys/class/block (holders, slaves, device-mapper names),
 * read directly, never by parsing `df` or `lsblk` text. Also turns the names
 * a manager uses (xvdf, sdf, nvme1n1, CloudStack slots "1".."9") into the
 * block device that is really there.
 */
import { join } from "node:path";

/** Where the kernel's tables are: "/" in production, a fake tree in tests. */
export interface KernelPaths {
  /** sysfs mount ("/sys"). */
  sys: string;
  /** The device directory ("/dev"). */
  dev: string;
  /** procfs mount ("/proc"). */
  proc: string;
}

/** The live paths. */
export const LIVE_KERNEL: KernelPaths = { sys: "/sys", dev: "/dev", proc: "/proc" };

/** A refused or failed volume operation, with text a person can act on. */
export class VolumeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "VolumeError";
  }
}

/** One mounted file system from /proc/self/mountinfo. */
export interface MountEntry {
  /** "major:minor" of the mounted device. */
  devno: string;
  /** The path inside the file system that is mounted ("/" unless a bind mount of a subtree). */
  root: string;
  mountPoint: string;
  fsType: string;
  /** The mount source, e.g. /dev/xvdf or /dev/mapper/esxvdf. */
  source: string;
}

/** Undoes mountinfo's octal escapes (\040 for a space, ...). */
function unescapeMount(field: string): string {
  return field.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
}

/** Parses /proc/self/mountinfo text. */
export function parseMountInfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const fields = line.split(" ");
    const dash = fields.indexOf("-");
    if (dash < 6 || fields.length < dash + 3) continue;
    out.push({
      devno: fields[2],
      root: unescapeMount(fields[3]),
      mountPoint: unescapeMount(fields[4]),
      fsType: fields[dash + 1],
      source: unescapeMount(fields[dash + 2]),
    });
  }
  return out;
}

/** The current mounts. */
export async function readMounts(kernel: KernelPaths): Promise<MountEntry[]> {
  return parseMountInfo(await Deno.readTextFile(join(kernel.proc, "self/mountinfo")));
}

function readText(path: string): string | null {
  try {
    return Deno.readTextFileSync(path).trim();
  } catch {
    return null;
  }
}

function listDir(path: string): string[] {
  try {
    return [...Deno.readDirSync(path)].map((e) => e.name).sort();
  } catch {
    return [];
  }
}

/** True when the kernel has a block device of this name (a disk, partition, md or dm device). */
export function blockExists(kernel: KernelPaths, name: string): boolean {
  return readText(join(kernel.sys, "class/block", name, "dev")) !== null;
}

/** The kernel name (e.g. dm-3, loop7) of the block device with this "major:minor", or null. */
export function nameOfDevno(kernel: KernelPaths, devno: string): string | null {
  try {
    const target = Deno.realPathSync(join(kernel.sys, "dev/block", devno));
    return target.split("/").pop() ?? null;
  } catch {
    return null;
  }
}

/** The "major:minor" of a block device name, or null. */
export function devnoOf(kernel: KernelPaths, name: string): string | null {
  return readText(join(kernel.sys, "class/block", name, "dev"));
}

/** Devices built on top of this one (dm mappings, md arrays, LVM). */
export function holdersOf(kernel: KernelPaths, name: string): string[] {
  return listDir(join(kernel.sys, "class/block", name, "holders"));
}

/** The devices this one is built from (members of an array, the device under a mapping). */
export function slavesOf(kernel: KernelPaths, name: string): string[] {
  return listDir(join(kernel.sys, "class/block", name, "slaves"));
}

/** The partitions of a disk. */
export function partitionsOf(kernel: KernelPaths, name: string): string[] {
  return listDir(join(kernel.sys, "class/block", name))
    .filter((p) => readText(join(kernel.sys, "class/block", name, p, "partition")) !== null);
}

/** The device-mapper name of a dm-N device, or null. */
export function mapperNameOf(kernel: KernelPaths, name: string): string | null {
  return readText(join(kernel.sys, "class/block", name, "dm/name"));
}

/** The dm-N kernel name of a mapping called `mapper`, or null when it is not open. */
export function mappingDevice(kernel: KernelPaths, mapper: string): string | null {
  for (const name of listDir(join(kernel.sys, "class/block"))) {
    if (name.startsWith("dm-") && mapperNameOf(kernel, name) === mapper) return name;
  }
  return null;
}

/** The bottom devices under a device: itself when it is built on nothing. */
export function leavesOf(kernel: KernelPaths, name: string, depth = 0): string[] {
  const below = slavesOf(kernel, name);
  if (below.length === 0 || depth > 8) return [name];
  return below.flatMap((s) => leavesOf(kernel, s, depth + 1)).sort();
}

/** The kernel name a mount source stands for (/dev/mapper/x -> dm-N). */
export function kernelNameOfMount(kernel: KernelPaths, entry: MountEntry): string | null {
  return nameOfDevno(kernel, entry.devno);
}

/** Device names the manager may send: a kernel disk name, an EBS volume id, or a CloudStack slot. */
const DEVICE_NAME_RE = /^(?:[a-z][a-z0-9]{1,31}|[1-9]|vol-?[0-9a-f]{8,17})$/;

/** Throws unless `name` is a device name as the manager sends it (no paths, no dots). */
export function checkDeviceName(name: string): string {
  if (!DEVICE_NAME_RE.test(name)) {
    throw new VolumeError(
      `device name ${JSON.stringify(name.slice(0, 64))} is not valid: give the kernel name ` +
        `without /dev/, e.g. xvdf, sdf or nvme1n1`,
    );
  }
  return name;
}

/** Reads the block device name an AWS Nitro NVMe controller stores in its vendor data. */
export type NvmeNameReader = (controller: string) => Promise<string | null>;

/** Names a requested device may have on this machine, most likely first. */
function candidates(name: string): string[] {
  if (/^[1-9]$/.test(name)) {
    // CloudStack numbers the data disk slots: 1 is xvdb ... 9 is xvdj.
    const xvd = `xvd${String.fromCharCode(97 + Number(name))}`;
    return [xvd, `sd${xvd.slice(3)}`, `vd${xvd.slice(3)}`];
  }
  const m = /^(sd|xvd)([a-z]{1,2})$/.exec(name);
  if (!m) return [name];
  const other = m[1] === "sd" ? "xvd" : "sd";
  const out = [name, `${other}${m[2]}`];
  // Red Hat kernels since EL 6 shift the letter by four (sdh is xvdl).
  if (m[1] === "sd" && m[2].length === 1 && m[2] <= "v") {
    out.push(`xvd${String.fromCharCode(m[2].charCodeAt(0) + 4)}`);
  }
  return out;
}

/** NVMe namespaces (nvme1n1) with their controller (nvme1). */
function nvmeNamespaces(kernel: KernelPaths): { name: string; controller: string }[] {
  return listDir(join(kernel.sys, "class/block"))
    .map((name) => ({ name, m: /^(nvme\d+)n\d+$/.exec(name) }))
    .filter((e) => e.m !== null)
    .map((e) => ({ name: e.name, controller: e.m![1] }));
}

/**
 * Finds the block device a requested name stands for: the name itself,
 * sdX/xvdX either way, a /dev link (udev's EBS rules), an EBS NVMe device by
 * the name in its vendor data or by its serial (the volume id). Throws a
 * VolumeError when nothing matches.
 */
export async function resolveDevice(
  kernel: KernelPaths,
  requested: string,
  readNvmeName: NvmeNameReader,
): Promise<string> {
  checkDeviceName(requested);
  const names = candidates(requested);
  for (const name of names) if (blockExists(kernel, name)) return name;
  for (const name of names) {
    // A link such as /dev/sdf -> nvme1n1 made by the cloud image's udev rules.
    try {
      const target = Deno.realPathSync(join(kernel.dev, name)).split("/").pop()!;
      if (blockExists(kernel, target)) return target;
    } catch { /* no such link */ }
  }
  const volumeId = /^vol-?([0-9a-f]+)$/.exec(requested)?.[1];
  for (const ns of nvmeNamespaces(kernel)) {
    const serial = readText(join(kernel.sys, "class/nvme", ns.controller, "serial"));
    if (volumeId && serial?.replace(/^vol-?/, "") === volumeId) return ns.name;
    if (volumeId) continue;
    const model = readText(join(kernel.sys, "class/nvme", ns.controller, "model")) ?? "";
    if (!/Elastic Block Store/i.test(model)) continue;
    const stored = (await readNvmeName(ns.controller))?.replace(/^\/dev\//, "");
    if (stored && names.some((n) => candidates(stored).includes(n))) return ns.name;
  }
  throw new VolumeError(
    `no block device ${requested} on this server` +
      (names.length > 1 ? ` (also looked for ${names.slice(1).join(", ")})` : "") +
      `; check that the volume is attached and the device name is right`,
  );
}

/** Block devices listed in /proc/swaps, by kernel name. */
export function swapDevices(kernel: KernelPaths): string[] {
  const text = readText(join(kernel.proc, "swaps")) ?? "";
  return text.split("\n").slice(1).map((l) => l.split(/\s+/)[0]).filter((p) =>
    p.startsWith("/dev/")
  ).map((p) => {
    try {
      return Deno.realPathSync(p).split("/").pop()!;
    } catch {
      return p.split("/").pop()!;
    }
  });
}
