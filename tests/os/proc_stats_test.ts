import assert from "node:assert/strict";
import {
  countProcesses,
  cpuBusyFraction,
  cpuCount,
  isWholeDisk,
  platformString,
  readCpuTimes,
  readDiskCounters,
  readMemory,
  readNetCounters,
} from "../../lib/os/proc_stats.ts";

/** A temporary fake proc root, removed when the `using` scope ends. */
interface FakeProc extends Disposable {
  root: string;
}

/** Builds a fake proc root from path → content, plus one directory per pid. */
function fakeProc(files: Record<string, string>, pids: string[] = []): FakeProc {
  const root = Deno.makeTempDirSync({ prefix: "fake_proc_" });
  for (const [path, text] of Object.entries(files)) {
    const full = `${root}/${path}`;
    Deno.mkdirSync(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    Deno.writeTextFileSync(full, text);
  }
  for (const pid of pids) Deno.mkdirSync(`${root}/${pid}`);
  return { root, [Symbol.dispose]: () => Deno.removeSync(root, { recursive: true }) };
}

const DISKSTATS = [
  // major minor name reads merged sectors ms writes merged sectors ms ...
  "   8       0 sda 100 0 2000 0 50 0 400 0 0 0 0 0 0 0 0 0 0",
  "   8       1 sda1 90 0 1800 0 45 0 360 0 0 0 0 0 0 0 0 0 0",
  " 259       0 nvme0n1 10 0 20 0 5 0 40 0 0 0 0 0 0 0 0 0 0",
  " 259       1 nvme0n1p1 9 0 18 0 4 0 32 0 0 0 0 0 0 0 0 0 0",
  " 259       2 nvme0n10 1 0 2 0 1 0 8 0 0 0 0 0 0 0 0 0 0",
  "   7       0 loop0 1000 0 1000 0 1000 0 1000 0 0 0 0 0 0 0 0 0 0",
  "   1       0 ram0 1000 0 1000 0 1000 0 1000 0 0 0 0 0 0 0 0 0 0",
  " 253       0 dm-0 1000 0 1000 0 1000 0 1000 0 0 0 0 0 0 0 0 0 0",
  "   9       0 md0 1000 0 1000 0 1000 0 1000 0 0 0 0 0 0 0 0 0 0",
  " 252       0 zram0 1000 0 1000 0 1000 0 1000 0 0 0 0 0 0 0 0 0 0",
  // The old 14-column format (no discard or flush columns).
  " 202       0 xvdb 3 0 6 0 2 0 4 0 0 0 0",
  "",
].join("\n");

const NET_DEV = [
  "Inter-|   Receive                                                |  Transmit",
  " face |bytes    packets errs drop fifo frame compressed multicast|bytes    packets errs drop fifo colls carrier compressed",
  "    lo:    3193      29    0    0    0     0          0         0     3193      29    0    0    0     0       0          0",
  "  eth0: 1000 10 0 0 0 0 0 0 200 3 0 0 0 0 0 0",
  "  eth1:24 1 0 0 0 0 0 0 6 1 0 0 0 0 0 0",
  "",
].join("\n");

Deno.test("readCpuTimes counts iowait as idle and leaves out the guest columns", () => {
  using proc = fakeProc({
    stat:
      "cpu  10 20 30 400 50 6 7 8 900 900\ncpu0 5 10 15 200 25 3 3 4 0 0\ncpu1 5 10 15 200 25 3 4 4 0 0\n",
  });
  assert.deepEqual(readCpuTimes({ procRoot: proc.root }), { total: 531, idle: 450 });
  assert.equal(cpuCount({ procRoot: proc.root }), 2);
});

Deno.test("cpuBusyFraction is busy time over elapsed time, 0 when no time passed", () => {
  assert.equal(cpuBusyFraction({ total: 100, idle: 80 }, { total: 200, idle: 155 }), 0.25);
  assert.equal(cpuBusyFraction({ total: 100, idle: 80 }, { total: 100, idle: 80 }), 0);
  assert.equal(cpuBusyFraction({ total: 100, idle: 80 }, { total: 300, idle: 80 }), 1);
});

Deno.test("readMemory: used is MemTotal minus MemAvailable, in bytes", () => {
  using proc = fakeProc({
    meminfo: "MemTotal:        1000 kB\nMemFree:          100 kB\nMemAvailable:     600 kB\n",
  });
  assert.deepEqual(readMemory({ procRoot: proc.root }), { total: 1024000, used: 409600 });
  using oldProc = fakeProc({
    meminfo: "MemTotal: 1000 kB\nMemFree: 100 kB\nBuffers: 50 kB\nCached: 250 kB\n",
  });
  assert.deepEqual(readMemory({ procRoot: oldProc.root }), { total: 1024000, used: 614400 });
});

Deno.test("countProcesses counts only numeric directories", () => {
  using proc = fakeProc({ "self/status": "x", "123abc": "not a pid", stat: "" }, [
    "1",
    "42",
    "999",
  ]);
  assert.equal(countProcesses({ procRoot: proc.root }), 3);
});

Deno.test("isWholeDisk skips partitions by the kernel naming rule and virtual devices", () => {
  const names = new Set(["sda", "sda1", "sda12", "nvme0n1", "nvme0n1p1", "nvme0n10", "xvdb1"]);
  assert.equal(isWholeDisk("sda", names), true);
  assert.equal(isWholeDisk("sda1", names), false);
  assert.equal(isWholeDisk("sda12", names), false);
  assert.equal(isWholeDisk("nvme0n1", names), true);
  assert.equal(isWholeDisk("nvme0n1p1", names), false);
  assert.equal(isWholeDisk("nvme0n10", names), true);
  // A partition whose disk is not listed is counted rather than lost.
  assert.equal(isWholeDisk("xvdb1", names), true);
  for (const virtual of ["loop0", "ram1", "zram0", "dm-3", "md127"]) {
    assert.equal(isWholeDisk(virtual, names), false, virtual);
  }
});

Deno.test("readDiskCounters sums whole disks only, sectors as 512 bytes", () => {
  using proc = fakeProc({ diskstats: DISKSTATS });
  assert.deepEqual(readDiskCounters({ procRoot: proc.root }), {
    readOps: 100 + 10 + 1 + 3,
    writeOps: 50 + 5 + 1 + 2,
    readBytes: (2000 + 20 + 2 + 6) * 512,
    writeBytes: (400 + 40 + 8 + 4) * 512,
  });
});

Deno.test("readNetCounters sums every interface except lo", () => {
  using proc = fakeProc({ "net/dev": NET_DEV });
  assert.deepEqual(readNetCounters({ procRoot: proc.root }), { bytesIn: 1024, bytesOut: 206 });
});

Deno.test("a missing proc file gives an error that names the file", () => {
  using proc = fakeProc({});
  assert.throws(() => readDiskCounters({ procRoot: proc.root }), /cannot read .*diskstats/);
});

Deno.test("platformString looks like Python's platform.platform()", () => {
  using proc = fakeProc({
    "sys/kernel/osrelease": "3.13.0-24-generic\n",
    "os-release": 'NAME="Ubuntu"\nVERSION_ID="14.04"\nVERSION_CODENAME=trusty\nID=ubuntu\n',
  });
  assert.equal(
    platformString({ procRoot: proc.root, osReleasePath: `${proc.root}/os-release` }),
    `Linux-3.13.0-24-generic-${Deno.build.arch}-with-Ubuntu-14.04-trusty`,
  );
  assert.equal(
    platformString({ procRoot: proc.root, osReleasePath: `${proc.root}/absent` }),
    `Linux-3.13.0-24-generic-${Deno.build.arch}`,
  );
});

Deno.test("the readers work on the real /proc", () => {
  const cpu = readCpuTimes();
  assert.ok(cpu.total > 0 && cpu.idle >= 0 && cpu.idle <= cpu.total);
  assert.ok(Number.isInteger(cpuCount()) && cpuCount() >= 1);
  const memory = readMemory();
  assert.ok(memory.total > 0 && memory.used > 0 && memory.used <= memory.total);
  assert.ok(countProcesses() >= 1);
  for (const value of Object.values(readDiskCounters())) {
    assert.ok(Number.isSafeInteger(value) && value >= 0);
  }
  for (const value of Object.values(readNetCounters())) {
    assert.ok(Number.isSafeInteger(value) && value >= 0);
  }
  assert.match(platformString(), new RegExp(`^Linux-[^-]\\S*-${Deno.build.arch}(-with-\\S+)?$`));
});
