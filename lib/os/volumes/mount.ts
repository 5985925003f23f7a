/**
 * The `mount_volume` flow: check everything, then assemble or create the
 * RAID array, open or create the LUKS mapping, make the file system, mount,
 * write fstab and mdadm.conf. Every step that changes the system registers
 * its undo; a failure half-way runs them backwards.
 */
import {
  holdersOf,
  leavesOf,
  mapperNameOf,
  mappingDevice,
  nameOfDevno,
  readMounts,
  resolveDevice,
  slavesOf,
  VolumeError,
} from "./block_devices.ts";
import {
  checkDeviceFree,
  checkFileSystem,
  checkMountPoint,
  minimumDevices,
  parseRaidLevel,
} from "./checks.ts";
import { withArray, withEntry } from "./fstab.ts";
import { ensureTool } from "./packages.ts";
import type { VolumesContext } from "./context.ts";
import type { RunOptions } from "../run_tool.ts";

/** What `mount_volume` asks for. */
export interface MountRequest {
  /** Device names as the manager sends them. */
  devices: string[];
  formatVolume: boolean;
  fileSystem: string;
  /** "NONE" or RAID0, RAID1, RAID5, RAID10. */
  raidLevel: string;
  /** The LUKS key; null or empty for a plain volume. */
  key: Uint8Array | null;
  mountPoint: string;
  /** Owner of the mount point (the agent's system user). */
  owner: string;
  /** Progress lines for the console log. */
  progress?: (line: string) => void;
  /** Aborts the job (CANCEL): the running tool is killed and what was done is undone. */
  signal?: AbortSignal;
}

/** Formats, encrypts, assembles and mounts as asked; returns the steps taken. */
export async function mountVolume(c: VolumesContext, req: MountRequest): Promise<string[]> {
  const done: string[] = [];
  const say = (line: string) => {
    done.push(line);
    req.progress?.(line);
  };
  const mountPoint = checkMountPoint(req.mountPoint);
  const fileSystem = checkFileSystem(req.fileSystem);
  const level = parseRaidLevel(req.raidLevel);
  const encrypted = req.key !== null && req.key.length > 0;
  if (req.devices.length === 0) {
    say("no devices were given; nothing to do");
    return done;
  }
  if (req.devices.length > 1 && level === null) {
    throw new VolumeError(
      `${req.devices.length} devices were given with raidLevel NONE; give a RAID level to combine them`,
    );
  }
  if (level !== null && req.devices.length < minimumDevices(level)) {
    throw new VolumeError(
      `RAID${level} needs at least ${minimumDevices(level)} devices, ${req.devices.length} given`,
    );
  }
  const devices: string[] = [];
  for (const d of req.devices) {
    const name = await resolveDevice(c.kernel, d, c.readNvmeName);
    if (devices.includes(name)) throw new VolumeError(`device ${d} is given twice (as ${name})`);
    devices.push(name);
  }
  const wanted = [...devices].sort().join(",");
  const mounts = await readMounts(c.kernel);

  // Already mounted where asked: success, nothing is formatted.
  const here = mounts.find((m) => m.mountPoint === mountPoint);
  if (here) {
    const dev = nameOfDevno(c.kernel, here.devno);
    const isMapping = dev !== null && mapperNameOf(c.kernel, dev) !== null;
    if (dev && leavesOf(c.kernel, dev).join(",") === wanted && isMapping === encrypted) {
      say(`${req.devices.join(", ")} is already mounted at ${mountPoint}`);
      return done;
    }
    throw new VolumeError(
      `${mountPoint} already has ${here.source} mounted; unmount it first or choose another mount point`,
    );
  }
  // A link must not lead the mount somewhere the rules refuse.
  const real = await Deno.realPath(mountPoint).catch(() => mountPoint);
  if (real !== mountPoint) checkMountPoint(real);
  await checkEmptyDir(mountPoint);

  // What exists already and is reused when not formatting: an assembled array, an open mapping.
  const commonHolder = (names: string[]) => {
    const sets = names.map((n) => holdersOf(c.kernel, n));
    return sets[0].find((h) => sets.every((s) => s.includes(h))) ?? null;
  };
  let reuseArray = level !== null && !req.formatVolume ? commonHolder(devices) : null;
  if (reuseArray && !/^md\d+$/.test(reuseArray)) reuseArray = null;
  const base = reuseArray ?? (level === null ? devices[0] : null);
  const reuseMapping = encrypted && !req.formatVolume && base ? commonHolder([base]) : null;
  for (const d of devices) {
    checkDeviceFree(c.kernel, d, {
      mounts,
      allowHolder: reuseArray ?? (level === null ? reuseMapping : null),
    });
  }
  if (reuseArray) checkDeviceFree(c.kernel, reuseArray, { mounts, allowHolder: reuseMapping });
  if (req.formatVolume) {
    for (const d of devices) {
      // An LVM physical volume whose group is not active has no holder, but holds data.
      const type = await c.runner.run(["blkid", "-p", "-o", "value", "-s", "TYPE", `/dev/${d}`], {
        privileged: true,
      });
      if (type.stdout.trim() === "LVM2_member") {
        throw new VolumeError(
          `device ${d} is an LVM physical volume; remove it from its volume group first`,
        );
      }
    }
  }

  const undo: { what: string; run: () => Promise<unknown> }[] = [];
  const r = c.runner;
  // Cancelling the job stops the running tool; the undo steps are never cancelled.
  const P: RunOptions = { privileged: true, signal: req.signal };
  const U: RunOptions = { privileged: true };
  try {
    let target = devices[0];
    if (level !== null) {
      await ensureTool(c, "mdadm", say);
      await loadModule(c, level === 5 || level === 6 || level === 4 ? "raid456" : `raid${level}`);
      if (reuseArray) {
        target = reuseArray;
        say(`RAID array ${target} is already assembled from ${devices.join(", ")}`);
      } else {
        target = freeArrayName(c);
        const members = devices.map((d) => `/dev/${d}`);
        if (req.formatVolume) {
          await r.check([
            "mdadm",
            "--create",
            `/dev/${target}`,
            "--run",
            "--metadata=1.2",
            `--level=${level}`,
            `--raid-devices=${devices.length}`,
            ...members,
          ], P);
          say(`created RAID${level} array ${target} from ${devices.join(", ")}`);
        } else {
          await r.check(["mdadm", "--assemble", `/dev/${target}`, ...members], P);
          say(`assembled RAID array ${target} from ${devices.join(", ")}`);
        }
        const md = `/dev/${target}`;
        undo.push({ what: `stop ${target}`, run: () => r.run(["mdadm", "--stop", md], U) });
      }
      const brief = await r.check(["mdadm", "--detail", "--brief", `/dev/${target}`], P);
      const line = brief.stdout.split("\n").find((l) => l.startsWith("ARRAY"));
      if (line) {
        const old = await Deno.readTextFile(c.mdadmConfPath).catch(() => "");
        const next = withArray(old, line);
        if (next !== old) {
          await c.writeFile(c.mdadmConfPath, next);
          undo.push({ what: "restore mdadm.conf", run: () => c.writeFile(c.mdadmConfPath, old) });
          say(`recorded ${target} in ${c.mdadmConfPath.slice(c.root === "/" ? 0 : c.root.length)}`);
        }
      }
    }

    let fsDevice = `/dev/${target}`;
    let mapper: string | null = null;
    if (encrypted) {
      mapper = `es${target}`;
      const open = mappingDevice(c.kernel, mapper);
      if (open && slavesOf(c.kernel, open).join(",") !== target) {
        throw new VolumeError(
          `the encryption mapping ${mapper} is already open on another device; close it first`,
        );
      }
      if (open && req.formatVolume) {
        throw new VolumeError(
          `the encryption mapping ${mapper} is open; it cannot be formatted while open`,
        );
      }
      if (open) {
        say(`encryption mapping ${mapper} is already open`);
      } else {
        await ensureTool(c, "cryptsetup", say);
        await loadModule(c, "dm_crypt");
        const keyed: RunOptions = { ...P, stdin: req.key! };
        if (req.formatVolume) {
          // The key goes through a pipe only: never a file, never argv, never a log.
          await r.check([
            "cryptsetup",
            "luksFormat",
            "--batch-mode",
            "--type",
            "luks2",
            "--cipher",
            "aes-xts-plain64",
            "--key-size",
            "512",
            ...c.luksFormatOptions,
            "--key-file",
            "-",
            fsDevice,
          ], keyed);
          say(`encrypted ${target} with LUKS2 (aes-xts-plain64)`);
        } else if ((await r.run(["cryptsetup", "isLuks", fsDevice], P)).code !== 0) {
          throw new VolumeError(
            `${target} is not a LUKS volume; send formatVolume true to encrypt it`,
          );
        }
        const opened = await r.run([
          "cryptsetup",
          "open",
          "--type",
          "luks",
          "--key-file",
          "-",
          fsDevice,
          mapper,
        ], keyed);
        if (opened.code !== 0) {
          throw new VolumeError(
            opened.code === 2
              ? `the key does not open the encrypted volume ${target}`
              : `cryptsetup could not open ${target}: ${opened.stderr.trim()}`,
          );
        }
        const name = mapper;
        undo.push({ what: `close ${name}`, run: () => r.run(["cryptsetup", "close", name], U) });
        say(`opened the encryption mapping ${mapper}`);
      }
      fsDevice = `/dev/mapper/${mapper}`;
    }

    req.signal?.throwIfAborted();
    if (req.formatVolume) {
      await ensureTool(c, `mkfs.${fileSystem}`, say);
      const force = /^ext[234]$/.test(fileSystem)
        ? ["-F", "-q"]
        : fileSystem === "xfs"
        ? ["-f", "-q"]
        : [];
      await r.check([`mkfs.${fileSystem}`, ...force, fsDevice], P);
      say(`made a ${fileSystem} file system on ${fsDevice}`);
    }
    const probed = (await r.run(["blkid", "-p", "-o", "export", fsDevice], P)).stdout;
    const probe = (tag: string) => new RegExp(`^${tag}=(.*)$`, "m").exec(probed)?.[1] ?? "";
    const fsType = probe("TYPE");
    if (!fsType || fsType === "crypto_LUKS" || fsType === "linux_raid_member") {
      throw new VolumeError(`${fsDevice} has no file system; send formatVolume true to make one`);
    }
    const uuid = probe("UUID");

    const created = !(await exists(mountPoint));
    if (created) {
      await r.check(["mkdir", "-p", "-m", "0775", "--", mountPoint], P);
      undo.push({ what: `remove ${mountPoint}`, run: () => r.run(["rmdir", "--", mountPoint], U) });
    }
    await r.check(["mount", "-t", fsType, "--", fsDevice, mountPoint], P);
    undo.push({ what: `unmount ${mountPoint}`, run: () => r.run(["umount", "--", mountPoint], U) });
    say(`mounted ${fsDevice} (${fsType}) at ${mountPoint}`);

    const oldFstab = await Deno.readTextFile(c.fstabPath).catch(() => "");
    const spec = mapper ? `/dev/mapper/${mapper}` : uuid ? `UUID=${uuid}` : fsDevice;
    await c.writeFile(c.fstabPath, withEntry(oldFstab, { spec, mountPoint, fsType, encrypted }));
    undo.push({ what: "restore /etc/fstab", run: () => c.writeFile(c.fstabPath, oldFstab) });
    say(`wrote ${spec} ${mountPoint} to /etc/fstab`);

    await r.check(["chown", "--", `${req.owner}:`, mountPoint], P);
    await r.check(["chmod", "0775", "--", mountPoint], P);
    say(`${mountPoint} belongs to ${req.owner}, mode 0775`);
    return done;
  } catch (err) {
    for (const step of undo.reverse()) {
      try {
        await step.run();
        req.progress?.(`undone: ${step.what}`);
      } catch (undoErr) {
        req.progress?.(`could not ${step.what}: ${(undoErr as Error).message}`);
      }
    }
    if (req.signal?.aborted) {
      throw new VolumeError("mount_volume was cancelled; the steps it had taken were undone");
    }
    throw err;
  }
}

/** Loads a kernel module unless it is there (or built in); a failure shows in the next step. */
async function loadModule(c: VolumesContext, name: string): Promise<void> {
  if (await exists(`${c.kernel.sys}/module/${name}`)) return;
  await c.runner.run(["modprobe", name], { privileged: true });
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}

/** Refuses a mount point that is not a directory or is not empty (a mounted volume is never empty). */
async function checkEmptyDir(path: string): Promise<void> {
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch {
    return;
  }
  if (!info.isDirectory) {
    throw new VolumeError(
      `mount point ${path} exists and is not a directory; remove it or choose another`,
    );
  }
  for await (const _ of Deno.readDir(path)) {
    throw new VolumeError(`mount point ${path} is not empty; choose an empty or new directory`);
  }
}

/** The first mdN that neither exists nor is named in mdadm.conf. */
function freeArrayName(c: VolumesContext): string {
  let conf = "";
  try {
    conf = Deno.readTextFileSync(c.mdadmConfPath);
  } catch { /* none yet */ }
  for (let n = 0; n < 128; n++) {
    const name = `md${n}`;
    let present = false;
    try {
      Deno.statSync(`${c.kernel.sys}/class/block/${name}`);
      present = true;
    } catch { /* free */ }
    if (!present && !new RegExp(`^ARRAY\\s+/dev/${name}\\s`, "m").test(conf)) return name;
  }
  throw new VolumeError("no free md device name (md0 to md127 are all taken)");
}
