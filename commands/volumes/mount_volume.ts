/**
 * `mount_volume` (a long-running job): formats, encrypts (LUKS2), combines
 * into RAID (mdadm) and mounts the given devices, and records them in
 * /etc/fstab and mdadm.conf so they come back at boot.
 */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { volumeFailure, volumesOf, volumeToolsPresent } from "./adapter.ts";

export default defineCommand({
  name: "mount_volume",
  description:
    "Formats, encrypts, combines into RAID and mounts volumes; records them in /etc/fstab.",
  execution: "long",
  args: {
    formatVolume: {
      type: "bool",
      required: true,
      help: "Make a new file system (erases the devices).",
    },
    fileSystem: {
      type: "str",
      required: true,
      help: "ext3, ext4, xfs or another with an mkfs; null means [storage] default_filesystem.",
    },
    raidLevel: { type: "str", required: true, help: "NONE, RAID0, RAID1, RAID5 or RAID10." },
    encryptedFsEncryptionKey: {
      type: "base64_bytes",
      help: "The LUKS key (base64); absent or null for a plain volume.",
    },
    mountPoint: { type: "str", help: "Where to mount; default [storage] mountpoint." },
    devices: {
      type: "list",
      required: true,
      help: 'Device names, e.g. ["xvdf"] or ["sdf", "sdg"].',
    },
  },
  features: () => volumeToolsPresent() ? { mount: true, format: true } : {},
  async run(args, ctx) {
    const devices = args.devices ?? [];
    const bad = devices.find((d) => typeof d !== "string");
    if (bad !== undefined) {
      return makeReply(1, {
        error_message: `devices must be a list of device names, not ${
          JSON.stringify(bad)?.slice(0, 40)
        }`,
      });
    }
    const volumes = await volumesOf(ctx);
    try {
      const done = await volumes.mountVolume({
        devices: devices as string[],
        formatVolume: args.formatVolume === true,
        fileSystem: args.fileSystem ?? ctx.config.storage.default_filesystem ?? "ext3",
        raidLevel: args.raidLevel ?? "NONE",
        key: args.encryptedFsEncryptionKey,
        mountPoint: args.mountPoint ?? ctx.config.storage.mountpoint ?? "/mnt/dcmdata",
        owner: ctx.config.system.user ?? "root",
        progress: (line) => ctx.log.console("INFO", `mount_volume: ${line}`),
        signal: ctx.signal,
      });
      return makeReply(0, { message: done.join("; ") });
    } catch (err) {
      const text = await volumeFailure(err);
      if (text === null) throw err;
      return makeReply(1, { message: text, error_message: text });
    }
  },
});
