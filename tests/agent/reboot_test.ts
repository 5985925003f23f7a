/**
 * A real reboot in the middle of a command (a power cut of a QEMU guest, see
 * tests/helpers/vm.ts): after the guest boots again and the agent starts on
 * the same journal (on a virtual disk), the interrupted request is reported as
 * interrupted and never run a second time, and the reply that was journalled
 * but unacknowledged before the reset is delivered. The guest side is
 * tests/helpers/reboot_guest.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { consoleTail, hostDeno, runVm, vmMissing } from "../helpers/vm.ts";
import { REPO_ROOT } from "../../scripts/agent_process.ts";

/** The deno cache directory of the host's deno (DENO_DIR or its default), which the guest sees. */
async function denoDir(): Promise<string> {
  const out = await new Deno.Command(hostDeno(), { args: ["info", "--json"] }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

Deno.test({
  name:
    "agent: a power cut mid-command: the command is reported interrupted, never re-run; owed replies arrive",
  ignore: Deno.uid() !== 0,
  async fn() {
    const missing = vmMissing();
    assert.equal(missing, null, missing ?? "");
    const disk = await Deno.makeTempFile({ prefix: "dcm-reboot-disk-" });
    await Deno.truncate(disk, 64 * 1024 * 1024);
    const result = await runVm({
      disks: [disk],
      allowReboot: true,
      timeoutMs: 600_000,
      memoryMiB: 1024,
      env: { DENO: hostDeno(), REPO: REPO_ROOT, DENO_DIR: await denoDir() },
      script: `
set -e
# The guest boots with its loopback interface down: the agent could not reach
# the manager on 127.0.0.1 ("no route to the host").
ip link set lo up
mkdir -p /mnt/j
[ "$VMTEST_BOOT" = 1 ] && mkfs.ext4 -q -F /dev/vda
mount /dev/vda /mnt/j
mkdir -p /mnt/j/base
cd "$REPO"
# The guest has no network: everything comes from the host's deno cache (read-only
# under the overlay), so a missing module fails at once with a clear message.
"$DENO" run -A --cached-only tests/helpers/reboot_guest.ts /mnt/j/base "$VMTEST_BOOT"
`,
    });
    try {
      assert.equal(result.status, 0, consoleTail(result));
      assert.equal(result.boots, 2, consoleTail(result));
      const boot1 = JSON.parse(await Deno.readTextFile(join(result.outDir, "boot1.json")));
      const boot2 = JSON.parse(await Deno.readTextFile(join(result.outDir, "boot2.json")));
      assert.equal(boot1.quickReply.return_code, 0);
      assert.deepEqual(boot2.owedReply, boot1.quickReply, "the owed reply is delivered");
      assert.equal(boot2.longReply.return_code, 1);
      assert.match(JSON.stringify(boot2.longReply), /lost|interrupted/i);
      // Counted on the host after the guest powered off, so a late second run would show too.
      const runs = (name: string) =>
        Deno.readTextFileSync(join(result.outDir, "marks", name)).split("\n").filter((l) => l);
      const once = [`run ${boot1.bootId}`];
      assert.deepEqual(runs("long"), once, "the interrupted command ran once, in boot 1");
      assert.deepEqual(runs("quick"), once, "the quick command ran once, in boot 1");
      console.log(
        `reboot test: ${result.elapsedMs} ms in all (2 boots); agent handshake ` +
          `${boot1.handshakeMs} ms (boot 1) and ${boot2.handshakeMs} ms (boot 2) after its ` +
          `start; owed REPLY delivered ${boot2.owedMs} ms after the restarted agent's start`,
      );
    } finally {
      // Never let a failed clean-up hide the assertion that failed.
      await Deno.remove(disk).catch(() => {});
      await Deno.remove(result.outDir, { recursive: true }).catch(() => {});
    }
  },
});
