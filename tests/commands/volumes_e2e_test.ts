/**
 * End to end: the development manager sends list_devices, mount_volume (a
 * long job, polled through get_job_description) and unmount to the real
 * agent process, which runs in private namespaces over a copy of /etc
 * (helpers/namespaced_agent.ts), so its fstab edits and mounts never reach
 * the test machine. The volume is a loop device over a sparse file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { canUseLoopDevices, makeLoopDevice } from "../helpers/loop_device.ts";
import { tool } from "../helpers/throwaway_root.ts";

function payloadOf(reply: Frame): Record<string, unknown> {
  return reply.payload as Record<string, unknown>;
}

Deno.test({
  name: "e2e: list_devices, mount_volume polled as a job, unmount through the manager",
  ignore: !canUseLoopDevices(),
  fn: async () => {
    const nsRoot = await Deno.makeTempDir({ prefix: "dcm-e2e-vol-" });
    await Deno.chmod(nsRoot, 0o755);
    await tool(["cp", "-a", "/etc", join(nsRoot, "etc")]);
    await Deno.mkdir(join(nsRoot, "home"));
    await Deno.mkdir(join(nsRoot, "mail"));
    const fstab = "# e2e fstab\n";
    await Deno.writeTextFile(join(nsRoot, "etc/fstab"), fstab);
    const realFstab = await Deno.readTextFile("/etc/fstab").catch(() => null);
    const mp = join(nsRoot, "data");
    const loop = await makeLoopDevice(64);
    const manager = await DevManager.start();
    let agent: AgentProcess | undefined;
    try {
      agent = await AgentProcess.start({
        managerUrl: manager.url,
        entry: "tests/helpers/namespaced_agent.ts",
        env: { DCM_TEST_NS_ROOT: nsRoot },
      });
      const hello = await manager.waitForHandshake({ timeoutMs: 30_000 }).catch((err) => {
        throw new Error(`${err.message}\nagent output:\n${agent?.output()}`);
      });
      const features = hello.features as Record<string, unknown>;
      assert.equal(features.mount, true);
      assert.equal(features.format, true);
      const plugins = features.plugins as string[];
      for (const p of ["list_devices", "mount_volume", "unmount.*"]) {
        assert.ok(plugins.includes(p), p);
      }
      const ask = async (command: string, args: Record<string, unknown>) =>
        payloadOf((await manager.request(command, args, { timeoutMs: 60_000 })).reply);

      const before = await ask("list_devices", {});
      assert.equal(before.return_code, 0);
      assert.equal(before.reply_type, "device_mapping_array");
      assert.ok((before.reply_object as Frame[]).some((d) => d.device_type === "ROOT"));

      const key = "encryptedFsEncryptionKey";
      const job = await ask("mount_volume", {
        formatVolume: true,
        fileSystem: "ext4",
        raidLevel: "NONE",
        [key]: null,
        mountPoint: mp,
        devices: [loop.name],
      });
      assert.equal(job.reply_type, "job_description", JSON.stringify(job));
      const jobId = (job.reply_object as Frame).job_id as number;
      let described: Frame = {};
      for (let i = 0; i < 120; i++) {
        described = (await ask("get_job_description", { jobId })).reply_object as Frame;
        if (described.job_status === "COMPLETE" || described.job_status === "ERROR") break;
        await new Promise((r) => setTimeout(r, 250));
      }
      assert.equal(described.job_status, "COMPLETE", JSON.stringify(described));
      assert.equal((described.command_reply as Frame).return_code, 0);

      const listed = (await ask("list_devices", {})).reply_object as Frame[];
      const mine = listed.find((d) => d.device_id === loop.name);
      assert.ok(mine, JSON.stringify(listed));
      assert.deepEqual([mine.mount_point, mine.file_system, mine.encrypted, mine.device_type], [
        mp,
        "ext4",
        false,
        "CUSTOM",
      ]);
      assert.match(
        await Deno.readTextFile(join(nsRoot, "etc/fstab")),
        new RegExp(`^UUID=\\S+ ${mp} ext4 defaults,nofail`, "m"),
      );

      // The plugin section is `unmount.*`: the short name works too.
      const gone = await ask("unmount", { deviceId: loop.name });
      assert.equal(gone.return_code, 0, JSON.stringify(gone));
      assert.equal(await Deno.readTextFile(join(nsRoot, "etc/fstab")), fstab);
      const after = (await ask("list_devices", {})).reply_object as Frame[];
      assert.ok(!after.some((d) => d.device_id === loop.name));
      const unknown = await ask("unmount_volume", { deviceId: loop.name });
      assert.equal(unknown.return_code, 1);
      assert.equal(unknown.error_message, `No such volume ${loop.name}`);
      assert.equal(await Deno.readTextFile("/etc/fstab").catch(() => null), realFstab);
    } finally {
      await agent?.stop();
      await agent?.cleanup();
      await manager.close();
      await loop.cleanup();
      await Deno.remove(nsRoot, { recursive: true });
    }
  },
});
