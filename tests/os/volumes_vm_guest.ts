/**
 * Runs INSIDE the throw-away VM of volumes_vm_test.ts (not a test file of its
 * own): the agent's volumes adapter against real dm-crypt and md RAID.
 * `deno run -A volumes_vm_guest.ts one|two` — boot one creates and mounts,
 * boot two (after a reboot and the emulated boot mount step) checks what came
 * back and mounts the encrypted volumes again with their keys.
 * Disks: vda LUKS; vdb+vdc RAID1; vdd+vde encrypted RAID0; vdf+vdg a RAID1 +
 * LUKS + xfs request that fails half-way; vdh (mounted at /persist) holds the
 * throw-away root with the agent's /etc/fstab and mdadm.conf.
 */
import assert from "node:assert/strict";
import { Volumes } from "../../lib/os/volumes/mod.ts";

const ROOT = "/persist";
const KEY = new TextEncoder().encode("correct horse\nbattery staple\0binary");
const KEY2 = new Uint8Array([0, 255, 10, 13, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12]);
const volumes = new Volumes({
  root: ROOT,
  installPackages: false,
  // Test only: argon2id (the LUKS2 default) takes 7.5 s under software emulation.
  luksFormatOptions: ["--pbkdf", "pbkdf2", "--pbkdf-force-iterations", "1000"],
});
const started = performance.now();
const log = (line: string) =>
  console.log(`GUEST +${((performance.now() - started) / 1000).toFixed(1)}s: ${line}`);
const mounted = (mp: string) =>
  Deno.readTextFileSync("/proc/self/mountinfo").split("\n").find((l) => l.split(" ")[4] === mp)
    ?.split(" - ")[1].split(" ")[1] ?? null;
const exists = (p: string) => {
  try {
    Deno.statSync(p);
    return true;
  } catch {
    return false;
  }
};
const arrays = () =>
  [...Deno.readDirSync("/sys/block")].map((e) => e.name).filter((n) => n.startsWith("md"));
const mappings = () =>
  [...Deno.readDirSync("/dev/mapper")].map((e) => e.name).filter((n) => n !== "control");
const fstab = () => Deno.readTextFileSync(`${ROOT}/etc/fstab`);
const mdadmConf = () => Deno.readTextFileSync(`${ROOT}/etc/mdadm/mdadm.conf`);
const base = {
  formatVolume: true,
  fileSystem: "ext4",
  raidLevel: "NONE",
  key: null,
  owner: "root",
  progress: log,
};
const times: Record<string, number> = {};
async function timed<T>(name: string, f: () => Promise<T>): Promise<T> {
  const t = performance.now();
  try {
    return await f();
  } finally {
    times[name] = Math.round(performance.now() - t);
  }
}

async function bootOne(): Promise<void> {
  // LUKS: format, open, mount; unmount closes; a wrong key fails; the right key reopens.
  await timed(
    "luks format+mount",
    () => volumes.mountVolume({ ...base, devices: ["vda"], key: KEY, mountPoint: "/data/secret" }),
  );
  assert.equal(mounted("/data/secret"), "/dev/mapper/esvda");
  Deno.writeTextFileSync("/data/secret/f.txt", "secret data");
  const listed = await volumes.listDevices("/mnt/dcmdata");
  assert.deepEqual(
    listed.filter((d) => d.encrypted).map((d) => [d.device_id, d.mount_point, d.file_system]),
    [["esvda", "/data/secret", "ext4"]],
  );
  assert.ok(await volumes.unmountVolume("vda"));
  assert.deepEqual(mappings(), []);
  assert.equal(mounted("/data/secret"), null);
  await assert.rejects(
    volumes.mountVolume({
      ...base,
      formatVolume: false,
      devices: ["vda"],
      key: KEY2,
      mountPoint: "/data/secret",
    }),
    /the key does not open the encrypted volume vda/,
  );
  assert.deepEqual(mappings(), []);
  await timed(
    "luks reopen",
    () =>
      volumes.mountVolume({
        ...base,
        formatVolume: false,
        devices: ["vda"],
        key: KEY,
        mountPoint: "/data/secret",
      }),
  );
  assert.equal(Deno.readTextFileSync("/data/secret/f.txt"), "secret data");
  assert.match(fstab(), /^\/dev\/mapper\/esvda \/data\/secret ext4 defaults,noauto,nofail/m);

  // RAID1: create, stop (unmount), assemble (formatVolume false) keeps the data.
  await timed(
    "raid1 create+mount",
    () =>
      volumes.mountVolume({
        ...base,
        devices: ["vdb", "vdc"],
        raidLevel: "RAID1",
        mountPoint: "/data/mirror",
      }),
  );
  assert.equal(mounted("/data/mirror"), "/dev/md0");
  assert.match(
    Deno.readTextFileSync("/proc/mdstat"),
    /md0 : active raid1 vd[bc]\[\d\] vd[bc]\[\d\]/,
  );
  assert.match(mdadmConf(), /^ARRAY \/dev\/md0 .*UUID=/m);
  Deno.writeTextFileSync("/data/mirror/f.txt", "mirrored");
  assert.ok(await volumes.unmountVolume("md0"));
  assert.deepEqual(arrays(), []);
  assert.doesNotMatch(mdadmConf(), /ARRAY/);
  await timed("raid1 assemble+mount", () =>
    volumes.mountVolume({
      ...base,
      formatVolume: false,
      devices: ["vdb", "vdc"],
      raidLevel: "RAID1",
      mountPoint: "/data/mirror",
    }));
  assert.equal(Deno.readTextFileSync("/data/mirror/f.txt"), "mirrored");

  // Encrypted RAID0.
  await timed("encrypted raid0", () =>
    volumes.mountVolume({
      ...base,
      devices: ["vdd", "vde"],
      raidLevel: "RAID0",
      key: KEY2,
      mountPoint: "/data/stripe",
    }));
  assert.equal(mounted("/data/stripe"), "/dev/mapper/esmd1");
  assert.match(Deno.readTextFileSync("/proc/mdstat"), /md1 : active raid0/);
  Deno.writeTextFileSync("/data/stripe/f.txt", "striped secret");
  // The same request again changes nothing.
  assert.deepEqual(
    await volumes.mountVolume({
      ...base,
      devices: ["vdd", "vde"],
      raidLevel: "RAID0",
      key: KEY2,
      mountPoint: "/data/stripe",
    }),
    ["vdd, vde is already mounted at /data/stripe"],
  );

  // A failure half-way (mkfs.xfs refuses a 64 MB device) closes the mapping and stops the array.
  const confBefore = mdadmConf();
  const fstabBefore = fstab();
  await assert.rejects(
    volumes.mountVolume({
      ...base,
      devices: ["vdf", "vdg"],
      raidLevel: "RAID1",
      key: KEY,
      fileSystem: "xfs",
      mountPoint: "/data/broken",
    }),
    /mkfs\.xfs failed/,
  );
  assert.deepEqual(arrays().sort(), ["md0", "md1"]);
  assert.deepEqual(mappings().sort(), ["esmd1", "esvda"]);
  assert.equal(mdadmConf(), confBefore);
  assert.equal(fstab(), fstabBefore);
  assert.equal(exists("/data/broken"), false);
  Deno.writeTextFileSync("/vmout/fstab-boot1.txt", fstab());
  Deno.writeTextFileSync("/vmout/mdadm-boot1.txt", mdadmConf());
}

async function bootTwo(): Promise<void> {
  // What the boot step brought back: plain RAID1 mounted, encrypted ones closed.
  assert.equal(Deno.readTextFileSync("/data/mirror/f.txt"), "mirrored");
  assert.deepEqual(arrays().sort(), ["md0", "md1"]);
  assert.deepEqual(mappings(), []);
  assert.equal(mounted("/data/secret"), null);
  assert.equal(mounted("/data/stripe"), null);
  // The manager sends mount_volume with the keys again.
  await timed(
    "luks open after reboot",
    () =>
      volumes.mountVolume({
        ...base,
        formatVolume: false,
        devices: ["vda"],
        key: KEY,
        mountPoint: "/data/secret",
      }),
  );
  assert.equal(Deno.readTextFileSync("/data/secret/f.txt"), "secret data");
  await timed("encrypted raid0 after reboot", () =>
    volumes.mountVolume({
      ...base,
      formatVolume: false,
      devices: ["vdd", "vde"],
      raidLevel: "RAID0",
      key: KEY2,
      mountPoint: "/data/stripe",
    }));
  assert.equal(Deno.readTextFileSync("/data/stripe/f.txt"), "striped secret");
  // Unmount everything: mappings closed, arrays stopped, fstab and mdadm.conf clean.
  for (const id of ["vda", "md0", "md1"]) assert.ok(await volumes.unmountVolume(id), id);
  assert.deepEqual(arrays(), []);
  assert.deepEqual(mappings(), []);
  assert.doesNotMatch(mdadmConf(), /ARRAY/);
  assert.doesNotMatch(fstab(), /dcm-agent/);
  assert.equal(await volumes.unmountVolume("vda"), null);
}

const phase = Deno.args[0];
await (phase === "one" ? bootOne() : bootTwo());
Deno.writeTextFileSync(`/vmout/times-${phase}.json`, JSON.stringify(times));
log(`phase ${phase} passed ${JSON.stringify(times)}`);
