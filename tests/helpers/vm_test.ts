/**
 * The throw-away VM helper itself: a script's status and output come back,
 * a disk image is /dev/vda, a guest reboot keeps the disk and runs the script
 * again, and the time limit kills QEMU.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { consoleTail, hostDeno, runVm, vmMissing } from "./vm.ts";

const missing = vmMissing();

Deno.test({
  name: "vm: a reboot keeps the disk, the script runs again, its status and files come back",
  ignore: Deno.uid() !== 0,
  async fn() {
    assert.equal(missing, null, missing ?? "");
    const disk = await Deno.makeTempFile({ prefix: "dcm-vm-disk-" });
    await Deno.truncate(disk, 32 * 1024 * 1024);
    const result = await runVm({
      disks: [disk],
      allowReboot: true,
      env: { DENO: hostDeno(), WORD: "it's" },
      script: `
mkdir -p /mnt/p
if [ "$VMTEST_BOOT" = 1 ]; then
  mkfs.ext4 -q /dev/vda && mount /dev/vda /mnt/p && echo "$WORD" > /mnt/p/marker && umount /mnt/p
  "$DENO" eval 'console.log("deno " + Deno.version.deno)' > /vmout/deno.txt
  sync; busybox reboot -f
fi
mount /dev/vda /mnt/p && cat /mnt/p/marker > /vmout/marker.txt
exit 3
`,
    });
    try {
      assert.equal(result.status, 3, consoleTail(result));
      assert.equal(result.boots, 2);
      assert.equal(result.timedOut, false);
      assert.equal(await Deno.readTextFile(join(result.outDir, "marker.txt")), "it's\n");
      assert.match(await Deno.readTextFile(join(result.outDir, "deno.txt")), /^deno 2\./);
      console.log(`two boots in ${result.elapsedMs} ms`);
    } finally {
      await Deno.remove(disk);
      await Deno.remove(result.outDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "vm: the time limit kills QEMU and no status is reported",
  ignore: Deno.uid() !== 0,
  async fn() {
    assert.equal(missing, null, missing ?? "");
    const result = await runVm({ script: "sleep 600\n", timeoutMs: 6000 });
    await Deno.remove(result.outDir, { recursive: true });
    assert.equal(result.timedOut, true);
    assert.equal(result.status, null);
    assert.ok(result.elapsedMs < 20_000, `took ${result.elapsedMs} ms`);
  },
});
