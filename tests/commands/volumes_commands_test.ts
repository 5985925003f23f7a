/**
 * The volumes commands as the dispatcher sees them: plugin.conf section
 * `unmount.*` (built-in list and the default plugin.conf both), mount_volume
 * a long job, handshake features, and the replies for bad input, through a
 * test context with a Volumes adapter over a throw-away root.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";
import {
  builtinPluginTable,
  defaultPluginConfText,
  parsePluginConf,
} from "../../lib/core/plugin_conf.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import { Volumes } from "../../lib/os/volumes/mod.ts";
import { makeTestContext } from "../helpers/context.ts";

const command = (name: string) => BUILTIN_COMMANDS.find((c) => c.name === name)!;

Deno.test("volumes commands: unmount.* matches unmount and unmount_volume; mount_volume is long", () => {
  const tables = [
    builtinPluginTable(BUILTIN_COMMANDS),
    parsePluginConf(defaultPluginConfText(BUILTIN_COMMANDS), {
      file: "plugin.conf",
      commands: BUILTIN_COMMANDS,
    }),
  ];
  for (const table of tables) {
    assert.ok(table.names().includes("unmount.*"), table.source);
    assert.equal(table.find("unmount")?.module.name, "unmount_volume");
    assert.equal(table.find("unmount_volume")?.module.name, "unmount_volume");
    assert.equal(table.find("unmountx")?.module.name, "unmount_volume");
    assert.equal(table.find("mount_volume")?.execution, "long");
    assert.equal(table.find("list_devices")?.execution, "normal");
  }
  assert.match(
    defaultPluginConfText(BUILTIN_COMMANDS),
    /\[plugin:unmount\.\*\]\ntype = python_module\nmodule_name = dcm\.agent\.plugins\.builtin\.unmount_volume\n/,
  );
  assert.deepEqual(command("mount_volume").features?.(makeTestContext().config), {
    mount: true,
    format: true,
  });
});

Deno.test("volumes commands: replies for lists, bad devices and unknown volumes", async () => {
  const root = await Deno.makeTempDir({ prefix: "dcm-vol-cmd-" });
  try {
    await Deno.mkdir(join(root, "etc"));
    await Deno.writeTextFile(join(root, "etc/fstab"), "");
    const ctx = makeTestContext({
      services: { adapters: { volumes: new Volumes({ root, installPackages: false }) } },
    });
    const list = await executeCommand(command("list_devices"), {}, ctx);
    assert.equal(list.return_code, 0);
    assert.equal(list.reply_type, "device_mapping_array");
    const root0 = (list.reply_object as Record<string, unknown>[]).find((d) =>
      d.mount_point === "/"
    );
    assert.equal(root0?.device_type, "ROOT");
    assert.deepEqual(Object.keys(root0!).sort(), [
      "device_id",
      "device_type",
      "encrypted",
      "file_system",
      "mount_point",
      "size",
      "used",
    ]);

    const base = { formatVolume: true, fileSystem: "ext4", raidLevel: "NONE", devices: ["xvdf"] };
    const notNames = await executeCommand(command("mount_volume"), { ...base, devices: [5] }, ctx);
    assert.equal(notNames.return_code, 1);
    assert.match(notNames.error_message, /devices must be a list of device names, not 5/);
    const missing = await executeCommand(command("mount_volume"), {
      ...base,
      devices: ["xvdzz"],
      mountPoint: join(root, "m"),
    }, ctx);
    assert.equal(missing.return_code, 1);
    assert.match(missing.error_message, /no block device xvdzz on this server/);
    const noArg = await executeCommand(command("mount_volume"), { fileSystem: "ext4" }, ctx);
    assert.equal(noArg.return_code, 1);

    const hostile = await executeCommand(command("unmount_volume"), { deviceId: "../sda" }, ctx);
    assert.equal(hostile.return_code, 1);
    assert.match(hostile.error_message, /device name "\.\.\/sda" is not valid/);
    const unknown = await executeCommand(command("unmount_volume"), { deviceId: "xvdzz" }, ctx);
    assert.deepEqual(unknown, {
      return_code: 1,
      reply_type: "void",
      reply_object: null,
      message: "No such volume xvdzz",
      error_message: "No such volume xvdzz",
    });
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
