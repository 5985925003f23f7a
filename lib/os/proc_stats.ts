/**
 * Readers of Linux system counters under /proc, the data
 * psutil gave the original agent. Every reader takes `{ procRoot }` so tests
 * can point it at a directory of crafted files. Reads are synchronous: /proc
 * files are generated in memory by the kernel, and a synchronous read cannot
 * be left half-done when a stat collector is stopped.
 */
import { readTextIfPresent } from "./fs_stat.ts";
import { parseAssignments } from "./platform.ts";

/** Where to find the proc filesystem. */
export interface ProcOptions {
  /** Root of the proc filesystem; "/proc" unless a test supplies a fake one. */
  procRoot?: string;
}

/** Aggregate CPU time of all CPUs, in clock ticks since boot. */
export interface CpuTimes {
  /** All accounted time. */
  total: number;
  /** Time spent idle or waiting for I/O. */
  idle: number;
}

/** Physical memory, in bytes. */
export interface MemoryInfo {
  total: number;
  /** MemTotal − MemAvailable: memory that cannot be handed out without swapping. */
  used: number;
}

/** Cumulative I/O of the whole disks since boot. */
export interface DiskCounters {
  readOps: number;
  writeOps: number;
  readBytes: number;
  writeBytes: number;
}

/** Cumulative network traffic of all interfaces except loopback since boot. */
export interface NetCounters {
  bytesIn: number;
  bytesOut: number;
}

/** Options for {@linkcode platformString}. */
export interface PlatformOptions extends ProcOptions {
  /** The distribution's os-release file; "/etc/os-release" by default. */
  osReleasePath?: string;
}

/** /proc/diskstats reports sizes in 512-byte sectors whatever the device's block size. */
const SECTOR_BYTES = 512;

/**
 * Devices whose I/O is already counted on the physical disks beneath them
 * (device-mapper, md RAID), or that are not disks at all (loop, RAM disks, zram).
 */
const VIRTUAL_DISK_RE = /^(loop|ram|zram|dm-|md)\d/;

function procPath(options: ProcOptions, name: string): string {
  return `${options.procRoot ?? "/proc"}/${name}`;
}

function readProcFile(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    throw new Error(
      `cannot read ${path}: ${(err as Error).message}; the agent needs a Linux /proc ` +
        "and must run with --allow-all",
    );
  }
}

/** Reads the aggregate CPU times from the first line of /proc/stat. */
export function readCpuTimes(options: ProcOptions = {}): CpuTimes {
  const path = procPath(options, "stat");
  const line = readProcFile(path).split("\n").find((l) => l.startsWith("cpu "));
  if (line === undefined) throw new Error(`${path} has no aggregate "cpu" line`);
  // Only user, nice, system, idle, iowait, irq, softirq and steal: the guest
  // columns that follow are already included in user and nice.
  const ticks = line.trim().split(/\s+/).slice(1, 9).map(Number);
  if (ticks.length < 4 || ticks.some((n) => !Number.isFinite(n))) {
    throw new Error(`${path} has a malformed "cpu" line: ${line}`);
  }
  // iowait is idle time: the CPU had nothing to run while it waited.
  return { total: ticks.reduce((a, b) => a + b, 0), idle: ticks[3] + (ticks[4] ?? 0) };
}

/** The fraction 0..1 of CPU time spent busy between two snapshots (0 if no time passed). */
export function cpuBusyFraction(before: CpuTimes, after: CpuTimes): number {
  const total = after.total - before.total;
  if (total <= 0) return 0;
  const busy = total - (after.idle - before.idle);
  return Math.min(1, Math.max(0, busy / total));
}

/** Reads total and used physical memory from /proc/meminfo. */
export function readMemory(options: ProcOptions = {}): MemoryInfo {
  const path = procPath(options, "meminfo");
  const kib = new Map<string, number>();
  for (const line of readProcFile(path).split("\n")) {
    const m = /^(\w+):\s+(\d+)/.exec(line);
    if (m) kib.set(m[1], Number(m[2]));
  }
  const total = kib.get("MemTotal");
  if (total === undefined) throw new Error(`${path} has no MemTotal line`);
  // Kernels before 3.14 lack MemAvailable; free plus page cache approximates it.
  const available = kib.get("MemAvailable") ??
    (kib.get("MemFree") ?? 0) + (kib.get("Buffers") ?? 0) + (kib.get("Cached") ?? 0);
  return { total: total * 1024, used: Math.max(0, total - available) * 1024 };
}

/** Counts the running processes (the numeric directories of /proc). */
export function countProcesses(options: ProcOptions = {}): number {
  const root = options.procRoot ?? "/proc";
  let count = 0;
  try {
    for (const entry of Deno.readDirSync(root)) {
      if (entry.isDirectory && /^\d+$/.test(entry.name)) count++;
    }
  } catch (err) {
    throw new Error(`cannot list ${root}: ${(err as Error).message}`);
  }
  return count;
}

/**
 * Whether a /proc/diskstats device is a whole physical disk. Virtual devices
 * (see VIRTUAL_DISK_RE) are skipped, and so are partitions, whose I/O is also
 * counted on their disk. A partition is recognised by the kernel's naming
 * rule: the disk's name plus a number ("sda1"), with a "p" between when the
 * disk's name ends in a digit ("nvme0n1p1", "mmcblk0p2"), where that disk is
 * also listed. So "nvme0n10" is a disk of its own, not a partition of "nvme0n1".
 */
export function isWholeDisk(name: string, allNames: ReadonlySet<string>): boolean {
  if (VIRTUAL_DISK_RE.test(name)) return false;
  const plain = /^(.*\D)\d+$/.exec(name);
  const withP = /^(.*\d)p\d+$/.exec(name);
  return ![plain, withP].some((m) => m !== null && allNames.has(m[1]));
}

/** Sums reads, writes and bytes of the whole disks in /proc/diskstats (see isWholeDisk). */
export function readDiskCounters(options: ProcOptions = {}): DiskCounters {
  const path = procPath(options, "diskstats");
  const rows = readProcFile(path).split("\n")
    .map((line) => line.trim().split(/\s+/))
    .filter((fields) => fields.length >= 14);
  const names = new Set(rows.map((fields) => fields[2]));
  const sum: DiskCounters = { readOps: 0, writeOps: 0, readBytes: 0, writeBytes: 0 };
  for (const fields of rows) {
    if (!isWholeDisk(fields[2], names)) continue;
    // Columns after the name: reads completed, reads merged, sectors read,
    // ms reading, writes completed, writes merged, sectors written, ...
    sum.readOps += Number(fields[3]);
    sum.readBytes += Number(fields[5]) * SECTOR_BYTES;
    sum.writeOps += Number(fields[7]);
    sum.writeBytes += Number(fields[9]) * SECTOR_BYTES;
  }
  return sum;
}

/** Sums received and sent bytes of every interface in /proc/net/dev except "lo". */
export function readNetCounters(options: ProcOptions = {}): NetCounters {
  const path = procPath(options, "net/dev");
  const sum: NetCounters = { bytesIn: 0, bytesOut: 0 };
  for (const line of readProcFile(path).split("\n")) {
    // The two header lines have "|" where interface lines have "name:".
    const colon = line.indexOf(":");
    if (colon < 0 || line.includes("|")) continue;
    if (line.slice(0, colon).trim() === "lo") continue;
    const fields = line.slice(colon + 1).trim().split(/\s+/).map(Number);
    if (fields.length < 9) continue;
    sum.bytesIn += fields[0];
    sum.bytesOut += fields[8];
  }
  return sum;
}

/** The number of online CPUs (the "cpuN" lines of /proc/stat). */
export function cpuCount(options: ProcOptions = {}): number {
  const text = readProcFile(procPath(options, "stat"));
  const count = text.split("\n").filter((l) => /^cpu\d+\s/.test(l)).length;
  return count > 0 ? count : navigator.hardwareConcurrency;
}

/**
 * A string like Python's `platform.platform()` on the Pythons the original
 * shipped with: `Linux-<kernel release>-<machine>-with-<distro>-<version>-<codename>`,
 * e.g. "Linux-6.1.0-18-amd64-x86_64-with-Debian-12-bookworm"; without the
 * "-with-…" part when the distribution does not describe itself in os-release.
 */
export function platformString(options: PlatformOptions = {}): string {
  const release = readProcFile(procPath(options, "sys/kernel/osrelease")).trim();
  const parts = ["Linux", release, Deno.build.arch];
  const os = readOsRelease(options.osReleasePath ?? "/etc/os-release");
  const distro = os.get("NAME")?.split(/\s+/)[0] ?? os.get("ID");
  if (distro) {
    parts.push("with", distro, os.get("VERSION_ID") ?? "", os.get("VERSION_CODENAME") ?? "");
  }
  // Python joins the non-empty parts with "-" and replaces spaces by "_".
  return parts.filter((p) => p !== "").map((p) => p.replace(/\s+/g, "_")).join("-");
}

/** Parses os-release KEY=value lines; an absent file gives an empty map. */
function readOsRelease(path: string): Map<string, string> {
  return parseAssignments(readTextIfPresent(path) ?? "");
}
