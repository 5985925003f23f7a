/**
 * `unmount_volume` (plugin.conf section `unmount.*`, so `unmount` works too):
 * unmounts the volume with exactly this device id, removes its fstab line,
 * closes its encryption mapping and stops its RAID array.
 */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { volumeFailure, volumesOf } from "./adapter.ts";

export default defineCommand({
  name: "unmount_volume",
  pluginSection: "unmount.*",
  description:
    "Unmounts a volume by device id, removes it from /etc/fstab, closes its encryption " +
    "and stops its RAID array.",
  args: {
    deviceId: {
      type: "str",
      required: true,
      help: "The device id from list_devices, without /dev/.",
    },
    encrypted: { type: "bool", help: "Accepted for compatibility; the agent finds out itself." },
  },
  async run(args, ctx) {
    if (args.deviceId === null) {
      return makeReply(1, {
        error_message: "deviceId is null; give the device id from list_devices",
      });
    }
    const volumes = await volumesOf(ctx);
    try {
      const done = await volumes.unmountVolume(args.deviceId, {
        progress: (line) => ctx.log.console("INFO", `unmount_volume: ${line}`),
      });
      if (done === null) {
        const text = `No such volume ${args.deviceId}`;
        return makeReply(1, { message: text, error_message: text });
      }
      return makeReply(0, { message: done.join("; ") });
    } catch (err) {
      const text = await volumeFailure(err);
      if (text === null) throw err;
      return makeReply(1, { message: text, error_message: text });
    }
  },
});
