/**
 * The volumes adapter on this machine's kernel: loop devices over sparse
 * files, real mkfs.ext4 / mkfs.xfs, real mounts, blkid for UUIDs, fstab
 * written in a throw-away root. LUKS and RAID need device-mapper and md,
 * which this kernel lacks: they run in a VM (volumes_vm_test.ts).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { VolumeError, Volumes } from "../../lib/os/volumes/mod.ts";
import { resolveDevice } from "../../lib/os/volumes/block_devices.ts";
import { linesFor, withEntry } from "../../lib/os/volumes/fstab.ts";
import { redactSecrets } from "../../lib/logging/redact.ts";
import { canUseLoopDevices, type LoopDevice, makeLoopDevice } from "../helpers/loop_device.ts";
import { tool } from "../helpers/throwaway_root.ts";

const ignore = !canUseLoopDevices();
const FSTAB = "# static file system information\n/dev/sda1 / ext4 defaults 0 1\n";

async function setup(): Promise<{ root: string; volumes: Volumes; work: string }> {
  const root = await Deno.makeTempDir({ prefix: "dcm-vol-root-" });
  await Deno.mkdir(join(root, "etc/mdadm"), { recursive: true });
  await Deno.writeTextFile(join(root, "etc/fstab"), FSTAB);
  const work = await Deno.makeTempDir({ prefix: "dcm-vol-mnt-" });
  return { root, volumes: new Volumes({ root, installPackages: false }), work };
}

function mountedAt(mountPoint: string): string | null {
  const line = Deno.readTextFileSync("/proc/self/mountinfo").split("\n")
    .find((l) => l.split(" ")[4] === mountPoint);
  return line ? line.split(" - ")[1].split(" ")[1] : null;
}

async function blkid(tag: string, dev: string): Promise<string> {
  return (await tool(["blkid", "-p", "-o", "value", "-s", tag, dev])).trim();
}

Deno.test({
  name:
    "volumes: mount formats ext4 by UUID with nofail, re-mount changes nothing, unmount undoes it",
  ignore,
  async fn() {
    const { root, volumes, work } = await setup();
    const loop = await makeLoopDevice(64);
    try {
      const mp = join(work, "data");
      const progress: string[] = [];
      const request = {
        devices: [loop.name],
        formatVolume: true,
        fileSystem: "ext4",
        raidLevel: "NONE",
        key: null,
        mountPoint: mp,
        owner: "root",
        progress: (l: string) => progress.push(l),
      };
      const done = await volumes.mountVolume(request);
      assert.ok(done.some((l) => l.startsWith("made a ext4 file system")), done.join("\n"));
      assert.deepEqual(progress, done);
      assert.equal(mountedAt(mp), loop.path);
      const uuid = await blkid("UUID", loop.path);
      const fstab = await Deno.readTextFile(join(root, "etc/fstab"));
      assert.deepEqual(linesFor(fstab, mp), [
        `UUID=${uuid} ${mp} ext4 defaults,nofail,x-systemd.device-timeout=10s,comment=dcm-agent 0 2`,
      ]);
      assert.ok(fstab.startsWith(FSTAB), "other fstab lines are kept");
      assert.equal(await Deno.readTextFile(join(root, "etc/fstab.dcm-agent.bak")), FSTAB);
      assert.equal((await Deno.stat(mp)).mode! & 0o777, 0o775);

      // The same request again (a new request id): already mounted, nothing formatted.
      await Deno.writeTextFile(join(mp, "kept.txt"), "data");
      const again = await volumes.mountVolume(request);
      assert.deepEqual(again, [`${loop.name} is already mounted at ${mp}`]);
      assert.equal(await Deno.readTextFile(join(mp, "kept.txt")), "data");
      assert.equal(linesFor(await Deno.readTextFile(join(root, "etc/fstab")), mp).length, 1);

      const list = await volumes.listDevices(mp);
      const mine = list.find((d) => d.device_id === loop.name);
      assert.ok(mine, JSON.stringify(list));
      assert.equal(mine.file_system, "ext4");
      assert.equal(mine.mount_point, mp);
      assert.equal(mine.encrypted, false);
      assert.equal(mine.device_type, "EPHEMERAL");
      assert.ok(mine.size > 50_000 && mine.size <= 65_536, `size ${mine.size}`);
      assert.ok(mine.used > 0 && mine.used < mine.size, `used ${mine.used}`);
      assert.equal(list.filter((d) => d.device_type === "ROOT").length, 1);
      assert.ok(!list.some((d) => ["proc", "sysfs", "tmpfs", "devpts"].includes(d.file_system)));
      assert.equal(
        (await volumes.listDevices("/elsewhere")).find((d) => d.device_id === loop.name)
          ?.device_type,
        "CUSTOM",
      );

      // A substring of the id is not the volume.
      assert.equal(await volumes.unmountVolume(loop.name.slice(0, -1) + "9"), null);
      const undone = await volumes.unmountVolume(loop.name);
      assert.ok(undone);
      assert.equal(mountedAt(mp), null);
      assert.equal(await Deno.readTextFile(join(root, "etc/fstab")), FSTAB);
      assert.equal(await volumes.unmountVolume(loop.name), null);

      // Mounting the existing volume again (formatVolume false) keeps its data.
      await volumes.mountVolume({ ...request, formatVolume: false, fileSystem: "xfs" });
      assert.equal(await Deno.readTextFile(join(mp, "kept.txt")), "data");
      assert.match(linesFor(await Deno.readTextFile(join(root, "etc/fstab")), mp)[0], / ext4 /);
      await volumes.unmountVolume(loop.name);
    } finally {
      await loop.cleanup();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "volumes: xfs on a 320 MB device",
  ignore,
  async fn() {
    const { root, volumes, work } = await setup();
    const loop = await makeLoopDevice(320);
    try {
      const mp = join(work, "x");
      await volumes.mountVolume({
        devices: [loop.name],
        formatVolume: true,
        fileSystem: "xfs",
        raidLevel: "NONE",
        key: null,
        mountPoint: mp,
        owner: "root",
      });
      assert.equal(await blkid("TYPE", loop.path), "xfs");
      assert.equal(mountedAt(mp), loop.path);
      assert.match(
        linesFor(await Deno.readTextFile(join(root, "etc/fstab")), mp)[0],
        / xfs defaults,nofail/,
      );
      assert.ok(await volumes.unmountVolume(loop.name));
    } finally {
      await loop.cleanup();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "volumes: hostile and unsafe requests are refused before anything is written",
  ignore,
  async fn() {
    const { root, volumes, work } = await setup();
    const loop = await makeLoopDevice(32);
    const other = await makeLoopDevice(32);
    try {
      const base = {
        devices: [loop.name],
        formatVolume: true,
        fileSystem: "ext4",
        raidLevel: "NONE",
        key: null,
        mountPoint: join(work, "m"),
        owner: "root",
      };
      const full = join(work, "full");
      await Deno.mkdir(full);
      await Deno.writeTextFile(join(full, "f"), "x");
      await Deno.symlink("/etc", join(work, "link"));
      await tool(["mkfs.ext4", "-q", other.path]);
      const busy = join(work, "busy");
      await Deno.mkdir(busy);
      await tool(["mount", other.path, busy]);
      const cases: [Partial<typeof base>, RegExp][] = [
        [{ mountPoint: "/" }, /system directory/],
        [{ mountPoint: "/etc" }, /system directory/],
        [{ mountPoint: "/usr/local/data" }, /inside the system directory \/usr/],
        [{ mountPoint: "data" }, /not an absolute path/],
        [{ mountPoint: "/mnt/../etc" }, /contains '\.' or '\.\.'/],
        [{ mountPoint: "/mnt/x; rm -rf /" }, /may contain only/],
        [{ mountPoint: "/mnt/x\nUUID=y / ext4" }, /may contain only/],
        [{ mountPoint: full }, /is not empty/],
        [{ mountPoint: join(work, "link") }, /system directory/],
        [{ devices: ["../sda"] }, /device name "\.\.\/sda" is not valid/],
        [{ devices: ["sda;reboot"] }, /is not valid/],
        [{ devices: ["/dev/loop0"] }, /is not valid/],
        [{ devices: ["-rf"] }, /is not valid/],
        [{ devices: ["xvdzz"] }, /no block device xvdzz on this server \(also looked for sdzz\)/],
        [{ devices: [loop.name, loop.name], raidLevel: "RAID1" }, /given twice/],
        [{ devices: [loop.name, other.name] }, /raidLevel NONE/],
        [{ raidLevel: "RAID7" }, /raidLevel "RAID7" is not valid/],
        [{ raidLevel: "RAID1" }, /RAID1 needs at least 2 devices/],
        [{ fileSystem: "ext4 -O ^has_journal" }, /file system .* is not valid/],
        [{ fileSystem: "../../bin/sh" }, /is not valid/],
        [{ fileSystem: "swap" }, /is not valid/],
        [
          { fileSystem: "nosuchfs" },
          /mkfs\.nosuchfs is not installed; install the package that provides it/,
        ],
        [
          { devices: [other.name] },
          new RegExp(`device ${other.name} is in use: it is mounted at ${busy}`),
        ],
        [{ mountPoint: busy }, new RegExp(`${busy} already has ${other.path} mounted`)],
      ];
      for (const [change, expected] of cases) {
        await assert.rejects(
          volumes.mountVolume({ ...base, ...change }),
          (err: Error) => {
            assert.ok(err instanceof VolumeError, `${JSON.stringify(change)}: ${err}`);
            assert.match(err.message, expected, JSON.stringify(change));
            return true;
          },
        );
      }
      assert.equal(await Deno.readTextFile(join(root, "etc/fstab")), FSTAB);
      assert.equal(await blkid("TYPE", loop.path).catch(() => ""), "", "nothing was formatted");
      assert.equal(mountedAt(busy), other.path);
      await assert.rejects(volumes.unmountVolume("../x"), /is not valid/);
      await tool(["umount", busy]);
    } finally {
      await loop.cleanup();
      await other.cleanup();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "volumes: a failure half-way unmounts, restores fstab and removes the mount point",
  ignore,
  async fn() {
    const { root, volumes, work } = await setup();
    const loop: LoopDevice = await makeLoopDevice(32);
    try {
      const mp = join(work, "half");
      const progress: string[] = [];
      await assert.rejects(
        volumes.mountVolume({
          devices: [loop.name],
          formatVolume: true,
          fileSystem: "ext4",
          raidLevel: "NONE",
          key: null,
          mountPoint: mp,
          owner: "dcm-no-such-user-9",
          progress: (l) => progress.push(l),
        }),
        /chown failed .*invalid/,
      );
      assert.equal(mountedAt(mp), null);
      assert.equal(await Deno.readTextFile(join(root, "etc/fstab")), FSTAB);
      await assert.rejects(Deno.stat(mp), Deno.errors.NotFound);
      assert.ok(progress.includes(`undone: unmount ${mp}`), progress.join("\n"));
      assert.ok(progress.includes("undone: restore /etc/fstab"), progress.join("\n"));
    } finally {
      await loop.cleanup();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test({
  name: "volumes: a cancelled job kills its tool and undoes what it did",
  ignore,
  async fn() {
    const { root, volumes, work } = await setup();
    const loop = await makeLoopDevice(32);
    try {
      const mp = join(work, "cancel");
      const stop = new AbortController();
      const progress: string[] = [];
      await assert.rejects(
        volumes.mountVolume({
          devices: [loop.name],
          formatVolume: true,
          fileSystem: "ext4",
          raidLevel: "NONE",
          key: null,
          mountPoint: mp,
          owner: "root",
          signal: stop.signal,
          // CANCEL arrives once the volume is mounted and fstab written.
          progress: (l) => {
            progress.push(l);
            if (l.startsWith("wrote ")) stop.abort();
          },
        }),
        /mount_volume was cancelled; the steps it had taken were undone/,
      );
      assert.equal(mountedAt(mp), null);
      assert.equal(await Deno.readTextFile(join(root, "etc/fstab")), FSTAB);
      await assert.rejects(Deno.stat(mp), Deno.errors.NotFound);
      assert.ok(progress.includes("undone: restore /etc/fstab"), progress.join("\n"));
    } finally {
      await loop.cleanup();
      await Deno.remove(root, { recursive: true });
      await Deno.remove(work, { recursive: true });
    }
  },
});

Deno.test("volumes: device names resolve sdX/xvdX both ways, CloudStack slots and EBS NVMe", async () => {
  const fake = await Deno.makeTempDir({ prefix: "dcm-vol-sys-" });
  try {
    const sys = join(fake, "sys");
    const block = (name: string) => {
      Deno.mkdirSync(join(sys, "class/block", name), { recursive: true });
      Deno.writeTextFileSync(join(sys, "class/block", name, "dev"), "259:1\n");
    };
    for (const n of ["xvdf", "sdg", "xvdb", "nvme1n1", "nvme2n1"]) block(n);
    for (
      const [ctrl, serial] of [["nvme1", "vol0123456789abcdef0"], ["nvme2", "vol0fedcba987654321"]]
    ) {
      Deno.mkdirSync(join(sys, "class/nvme", ctrl), { recursive: true });
      Deno.writeTextFileSync(
        join(sys, "class/nvme", ctrl, "model"),
        "Amazon Elastic Block Store\n",
      );
      Deno.writeTextFileSync(join(sys, "class/nvme", ctrl, "serial"), `${serial}\n`);
    }
    const kernel = { sys, dev: join(fake, "dev"), proc: "/proc" };
    const vendor = (c: string) => Promise.resolve(c === "nvme1" ? "/dev/sdh" : "xvdk");
    assert.equal(await resolveDevice(kernel, "sdf", vendor), "xvdf");
    assert.equal(await resolveDevice(kernel, "xvdg", vendor), "sdg");
    assert.equal(await resolveDevice(kernel, "1", vendor), "xvdb");
    assert.equal(await resolveDevice(kernel, "xvdh", vendor), "nvme1n1");
    assert.equal(await resolveDevice(kernel, "sdk", vendor), "nvme2n1");
    assert.equal(await resolveDevice(kernel, "vol-0fedcba987654321", vendor), "nvme2n1");
    await assert.rejects(resolveDevice(kernel, "sdz", vendor), /no block device sdz/);
    await assert.rejects(resolveDevice(kernel, "xvdf/../../x", vendor), /is not valid/);
  } finally {
    await Deno.remove(fake, { recursive: true });
  }
});

Deno.test("volumes: fstab keeps one line per mount point; the key is redacted from logs", () => {
  let text =
    "/dev/sda1 / ext4 defaults 0 1\nUUID=old /data ext4 defaults 0 2\nUUID=older /data/ xfs defaults 0 2";
  text = withEntry(text, {
    spec: "UUID=new",
    mountPoint: "/data",
    fsType: "ext4",
    encrypted: false,
  });
  assert.deepEqual(linesFor(text, "/data"), [
    "UUID=new /data ext4 defaults,nofail,x-systemd.device-timeout=10s,comment=dcm-agent 0 2",
  ]);
  assert.ok(text.startsWith("/dev/sda1 / ext4 defaults 0 1\n"));
  text = withEntry(text, {
    spec: "/dev/mapper/esxvdf",
    mountPoint: "/data",
    fsType: "ext4",
    encrypted: true,
  });
  assert.deepEqual(linesFor(text, "/data"), [
    "/dev/mapper/esxvdf /data ext4 defaults,noauto,nofail,noatime,comment=dcm-agent 0 0",
  ]);
  const frame = { arguments: { encryptedFsEncryptionKey: "c2VjcmV0IGtleQ==", devices: ["xvdf"] } };
  assert.deepEqual(redactSecrets(frame), {
    arguments: { encryptedFsEncryptionKey: "<redacted 16 bytes>", devices: ["xvdf"] },
  });
});
