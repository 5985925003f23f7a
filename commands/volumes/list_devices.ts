/** `list_devices`: the mounted block-device file systems with size and use in KiB. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { volumeFailure, volumesOf } from "./adapter.ts";

export default defineCommand({
  name: "list_devices",
  description: "Lists mounted block devices: id, file system, mount point, size and used KiB, " +
    "encrypted, and ROOT / EPHEMERAL / CUSTOM.",
  args: {},
  readOnly: true,
  async run(_args, ctx) {
    const volumes = await volumesOf(ctx);
    try {
      const list = await volumes.listDevices(ctx.config.storage.mountpoint ?? "/mnt/dcmdata");
      return makeReply(0, { reply_type: "device_mapping_array", reply_object: list });
    } catch (err) {
      const text = await volumeFailure(err);
      if (text === null) throw err;
      return makeReply(1, { message: text, error_message: text });
    }
  },
});
