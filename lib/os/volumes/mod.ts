/**
 * Disk volumes: the system effects of `list_devices`, `mount_volume` and
 * `unmount_volume`, made with mount, blkid, mkfs.*, mdadm and cryptsetup
 * (argv only) on real block devices. Files (/etc/fstab, mdadm.conf) live
 * under a root directory: "/" in production, a throw-away directory in tests.
 * Imported on first use by the volumes commands.
 */
import { basename, dirname, join } from "node:path";
import { getLogger } from "../../logging/mod.ts";
import { ToolRunner } from "../run_tool.ts";
import { pathUnderRoot, type SystemAdapterOptions } from "../system_adapter.ts";
import {
  checkDeviceName,
  type KernelPaths,
  LIVE_KERNEL,
  type MountEntry,
  nameOfDevno,
  type NvmeNameReader,
  readMounts,
  resolveDevice,
  slavesOf,
  VolumeError,
} from "./block_devices.ts";
import type { VolumesContext } from "./context.ts";
import { withoutArray, withoutMountPoint } from "./fstab.ts";
import { type MountRequest, mountVolume } from "./mount.ts";

export { VolumeError } from "./block_devices.ts";
export type { MountRequest } from "./mount.ts";
export type { VolumesContext } from "./context.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

/** One entry of the `list_devices` reply (field names are the wire's). */
export interface DeviceMapping {
  device_id: string;
  encrypted: boolean;
  file_system: string;
  mount_point: string;
  /** KiB. */
  size: number;
  /** KiB. */
  used: number;
  device_type: "ROOT" | "EPHEMERAL" | "CUSTOM";
}

/** Options of a {@linkcode Volumes} adapter. */
export interface VolumesOptions extends SystemAdapterOptions {
  /** Where /sys, /dev and /proc are (tests: a fake tree for name resolution). */
  kernel?: KernelPaths;
  /** Extra `cryptsetup luksFormat` options (tests: a fast PBKDF; production: LUKS2 defaults). */
  luksFormatOptions?: string[];
  /** Install a missing tool with the platform's package manager (default: when root is "/"). */
  installPackages?: boolean;
  /** Reads the name an EBS NVMe controller stores (default: `nvme id-ctrl`). */
  readNvmeName?: NvmeNameReader;
}

/** Lists, mounts and unmounts data volumes. */
export class Volumes {
  readonly #c: VolumesContext;

  constructor(options: VolumesOptions) {
    const runner = new ToolRunner({ sudo: options.sudo, tempDir: options.tempDir });
    const root = options.root;
    const mdadmDir = pathUnderRoot(root, "/etc/mdadm");
    let debianStyle = false;
    try {
      debianStyle = Deno.statSync(mdadmDir).isDirectory;
    } catch { /* Red Hat style: /etc/mdadm.conf */ }
    this.#c = {
      runner,
      root,
      kernel: options.kernel ?? LIVE_KERNEL,
      luksFormatOptions: options.luksFormatOptions ?? [],
      installPackages: options.installPackages ?? root === "/",
      readNvmeName: options.readNvmeName ?? ((c) => readNvmeVendorName(runner, c)),
      fstabPath: pathUnderRoot(root, "/etc/fstab"),
      mdadmConfPath: debianStyle
        ? join(mdadmDir, "mdadm.conf")
        : pathUnderRoot(root, "/etc/mdadm.conf"),
      async writeFile(path: string, content: string): Promise<void> {
        const old = await Deno.readTextFile(path).catch(() => null);
        if (old === content) return;
        const install = options.sudo
          ? (to: string, text: string) => runner.installFile(to, text, { mode: 0o644 })
          : writeAtomically;
        if (old !== null) await install(`${path}.dcm-agent.bak`, old);
        await install(path, content);
      },
    };
  }

  /** Mounted block-device file systems, from the kernel's mount table and statfs. */
  async listDevices(ephemeralMountPoint: string): Promise<DeviceMapping[]> {
    const mounts = (await readMounts(this.#c.kernel)).filter((m) =>
      m.mountPoint === "/" || (m.source.startsWith("/dev/") && m.root === "/")
    );
    if (mounts.length === 0) return [];
    // `stat -f` is statfs(2), the same numbers df shows, one line per path.
    const res = await this.#c.runner.run([
      "stat",
      "-f",
      "-c",
      "%S %b %f %n",
      "--",
      ...mounts.map((m) => m.mountPoint),
    ]);
    const sizes = new Map<string, { size: number; used: number }>();
    for (const line of res.stdout.split("\n")) {
      const m = /^(\d+) (\d+) (\d+) (.*)$/.exec(line);
      if (!m) continue;
      const [bsize, blocks, free] = [Number(m[1]), Number(m[2]), Number(m[3])];
      sizes.set(m[4], {
        size: Math.floor((blocks * bsize) / 1024),
        used: Math.floor(((blocks - free) * bsize) / 1024),
      });
    }
    const out: DeviceMapping[] = [];
    for (const m of mounts) {
      const size = sizes.get(m.mountPoint);
      if (!size) continue;
      out.push({
        device_id: m.source.split("/").pop() ?? m.source,
        encrypted: m.source.startsWith("/dev/mapper/"),
        file_system: m.fsType,
        mount_point: m.mountPoint,
        size: size.size,
        used: size.used,
        device_type: m.mountPoint === "/"
          ? "ROOT"
          : m.mountPoint === ephemeralMountPoint
          ? "EPHEMERAL"
          : "CUSTOM",
      });
    }
    return out;
  }

  /** Formats, encrypts, assembles and mounts as asked; returns the steps taken. */
  mountVolume(request: MountRequest): Promise<string[]> {
    return mountVolume(this.#c, request);
  }

  /**
   * Unmounts the volume with exactly this device id, removes its fstab line,
   * closes its encryption mapping and stops its array. Returns null when no
   * such volume is mounted.
   */
  async unmountVolume(
    deviceId: string,
    options: { progress?: (line: string) => void } = {},
  ): Promise<string[] | null> {
    checkDeviceName(deviceId);
    const say = (line: string) => {
      done.push(line);
      options.progress?.(line);
    };
    const done: string[] = [];
    const mounts = await readMounts(this.#c.kernel);
    const byId = (id: string) =>
      mounts.find((m) =>
        m.source.startsWith("/dev/") && m.root === "/" && m.source.split("/").pop() === id
      );
    let entry: MountEntry | undefined = byId(deviceId) ?? byId(`es${deviceId}`);
    if (!entry) {
      // The manager may name the device sdX while the kernel calls it xvdX (or NVMe).
      const name = await resolveDevice(this.#c.kernel, deviceId, this.#c.readNvmeName).catch(() =>
        null
      );
      entry = name ? (byId(name) ?? byId(`es${name}`)) : undefined;
    }
    if (!entry) return null;
    if (entry.mountPoint === "/") {
      throw new VolumeError(
        `device ${deviceId} holds the root file system; it cannot be unmounted`,
      );
    }
    const kernelName = nameOfDevno(this.#c.kernel, entry.devno);
    const r = this.#c.runner;
    await r.check(["umount", "--", entry.mountPoint], { privileged: true });
    say(`unmounted ${entry.source} from ${entry.mountPoint}`);
    const fstab = await Deno.readTextFile(this.#c.fstabPath).catch(() => "");
    const without = withoutMountPoint(fstab, entry.mountPoint);
    if (without !== fstab) {
      await this.#c.writeFile(this.#c.fstabPath, without);
      say(`removed ${entry.mountPoint} from /etc/fstab`);
    }
    let below = kernelName ? [kernelName] : [];
    if (entry.source.startsWith("/dev/mapper/")) {
      const mapper = entry.source.slice("/dev/mapper/".length);
      below = kernelName ? slavesOf(this.#c.kernel, kernelName) : [];
      await r.check(["cryptsetup", "close", mapper], { privileged: true });
      say(`closed the encryption mapping ${mapper}`);
    }
    for (const md of below.filter((n) => /^md\d+$/.test(n))) {
      const detail = await r.run(["mdadm", "--detail", "--export", `/dev/${md}`], {
        privileged: true,
      });
      const uuid = /^MD_UUID=(.+)$/m.exec(detail.stdout)?.[1];
      await r.check(["mdadm", "--stop", `/dev/${md}`], { privileged: true });
      say(`stopped the RAID array ${md}`);
      if (uuid) {
        const conf = await Deno.readTextFile(this.#c.mdadmConfPath).catch(() => null);
        if (conf !== null && withoutArray(conf, uuid) !== conf) {
          await this.#c.writeFile(this.#c.mdadmConfPath, withoutArray(conf, uuid));
          say(`removed ${md} from mdadm.conf`);
        }
      }
    }
    return done;
  }
}

/** As root: a temp file beside the target, flushed, then renamed over it. */
async function writeAtomically(path: string, content: string): Promise<void> {
  const tmp = join(dirname(path), `.${basename(path)}.dcm-${crypto.randomUUID().slice(0, 8)}`);
  try {
    const file = await Deno.open(tmp, { write: true, createNew: true, mode: 0o644 });
    try {
      await file.write(new TextEncoder().encode(content));
      await file.sync();
    } finally {
      file.close();
    }
    await Deno.rename(tmp, path);
  } catch (err) {
    await Deno.remove(tmp).catch(() => {});
    throw err;
  }
}

/**
 * The block device name (e.g. "sdf") an EBS NVMe controller keeps in the
 * first 32 bytes of its vendor-specific identify data, read from the hex dump
 * `nvme id-ctrl --vendor-specific` prints (nvme-cli).
 */
async function readNvmeVendorName(runner: ToolRunner, controller: string): Promise<string | null> {
  try {
    const res = await runner.run(["nvme", "id-ctrl", "--vendor-specific", `/dev/${controller}`], {
      privileged: true,
    });
    if (res.code !== 0) return null;
    const dump = res.stdout.slice(res.stdout.indexOf("vs[]:"));
    const bytes: number[] = [];
    for (const m of dump.matchAll(/^\s*[0-9a-f]{4}:((?: [0-9a-f]{2})+)/gm)) {
      bytes.push(...m[1].trim().split(" ").map((h) => parseInt(h, 16)));
      if (bytes.length >= 32) break;
    }
    const name = String.fromCharCode(...bytes.slice(0, 32)).replace(/[\0 ].*$/s, "");
    return name || null;
  } catch (err) {
    log.debug("nvme id-ctrl failed: {error}", { error: String(err) });
    return null;
  }
}
