/**
 * LUKS and md RAID for real, in a throw-away VM (tests/helpers/vm.ts): this
 * machine's kernel has no device-mapper and no md. The guest runs the agent's
 * volumes adapter (volumes_vm_guest.ts) with the host's deno and cryptsetup /
 * mdadm over the read-only share, on eight raw disk images: LUKS format, open,
 * mount, close and a wrong key; RAID1 create, stop, assemble; encrypted RAID0;
 * a failure half-way that is undone; then a real reboot of the guest.
 *
 * The guest has no systemd, so after the reboot the script emulates the boot's
 * mount step with the files the agent wrote: `mdadm --assemble --scan` with its
 * mdadm.conf and `mount -a` with its fstab (the mount points live on the
 * guest's throw-away root, so they are made again first). The plain RAID1 comes
 * back; the encrypted volumes stay closed (fstab `noauto,nofail`: nothing waits
 * for them) until mount_volume brings their keys again.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { consoleTail, hostDeno, runVm, vmMissing } from "../helpers/vm.ts";

const REPO = join(import.meta.dirname!, "..", "..");
const DISKS = ["vda", "vdb", "vdc", "vdd", "vde", "vdf", "vdg", "vdh"];

function missingTools(): string[] {
  return [["cryptsetup", "cryptsetup"], ["mdadm", "mdadm"], ["mkfs.xfs", "xfsprogs"]]
    .filter(([t]) =>
      !["/usr/sbin", "/sbin", "/usr/bin"].some((d) => {
        try {
          return Deno.statSync(`${d}/${t}`).isFile;
        } catch {
          return false;
        }
      })
    ).map(([, pkg]) => pkg);
}

const GUEST = `
set -e
G="$REPO/tests/os/volumes_vm_guest.ts"
if [ "$VMTEST_BOOT" = 1 ]; then
  mkfs.ext4 -q /dev/vdh
  mkdir -p /persist && mount /dev/vdh /persist
  mkdir -p /persist/etc/mdadm
  echo "# throw-away root of the volumes VM test" > /persist/etc/fstab
  echo "# mdadm.conf of the volumes VM test" > /persist/etc/mdadm/mdadm.conf
  "$DENO" run -A --cached-only "$G" one
  sync
  busybox reboot -f
fi
mkdir -p /persist && mount /dev/vdh /persist
# The boot's mount step, as systemd / the init scripts would run it.
mdadm --assemble --scan --config=/persist/etc/mdadm/mdadm.conf
mkdir -p /data/secret /data/mirror /data/stripe
mount -a -T /persist/etc/fstab
"$DENO" run -A --cached-only "$G" two
`;

Deno.test({
  name: "volumes in a VM: LUKS, RAID0/1, encrypted RAID, rollback, and a reboot",
  ignore: Deno.uid() !== 0,
  async fn() {
    const missing = vmMissing();
    assert.equal(missing, null, missing ?? "");
    assert.deepEqual(missingTools(), [], "install these Debian packages for the volumes tests");
    const dir = await Deno.makeTempDir({ prefix: "dcm-vol-vm-" });
    const disks = DISKS.map((d) => join(dir, `${d}.img`));
    for (const d of disks) {
      await Deno.writeFile(d, new Uint8Array());
      await Deno.truncate(d, 64 * 1024 * 1024);
    }
    const env: Record<string, string> = { DENO: hostDeno(), REPO };
    const denoDir = Deno.env.get("DENO_DIR");
    if (denoDir) env.DENO_DIR = denoDir;
    const result = await runVm({
      script: GUEST,
      disks,
      env,
      allowReboot: true,
      timeoutMs: 240_000,
    });
    try {
      assert.equal(result.status, 0, consoleTail(result, 120));
      assert.equal(result.boots, 2);
      const fstab = await Deno.readTextFile(join(result.outDir, "fstab-boot1.txt"));
      assert.match(fstab, /^UUID=[0-9a-f-]+ \/data\/mirror ext4 defaults,nofail,/m);
      assert.match(fstab, /^\/dev\/mapper\/esmd1 \/data\/stripe ext4 defaults,noauto,nofail/m);
      const times = await Deno.readTextFile(join(result.outDir, "times-two.json"));
      console.log(
        `VM run ${result.elapsedMs} ms, steps: ${await Deno.readTextFile(
          join(result.outDir, "times-one.json"),
        )} ${times}`,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
      await Deno.remove(result.outDir, { recursive: true });
    }
  },
});
