/**
 * A throw-away virtual machine for tests that need kernel features the test
 * machine lacks (device-mapper, md RAID, a real reboot). QEMU boots Debian's
 * own kernel in software emulation (TCG) with this machine's `/` shared
 * read-only over virtio-9p under a tmpfs overlay, so every host program (the
 * pinned deno, cryptsetup, mdadm, this checkout) runs inside unchanged, and
 * writes inside the guest are thrown away at power-off.
 *
 * API:
 * - `vmMissing(): string | null` — null when the VM can run here, else a
 *   message naming the missing Debian packages (nothing is installed here;
 *   scripts/test.sh installs {@linkcode VM_PACKAGES}).
 * - `prepareVm(): Promise<VmKernel>` — builds, once, the initramfs (busybox +
 *   the kernel modules below + tests/helpers/vm/init) and an uncompressed
 *   vmlinux into `/var/cache/dcm-agent-tests/vm/<kernel version>/`; rebuilt
 *   when missing or when the init script or module list changed. runVm calls it.
 * - `runVm({ script, disks?, env?, timeoutMs?, memoryMiB?, cpus?, allowReboot?, onLine? })`
 *   boots the guest and runs `script` (shell text) with /bin/sh as root, cwd /.
 *   `disks` are raw image files on the host, attached in order as /dev/vda,
 *   /dev/vdb, ... (writes go straight to the files). `env` is exported first.
 *   The guest also sees `VMTEST_BOOT` (1 on the first boot, 2 after one reboot, ...)
 *   and a writable share at `/vmout` whose host side is `result.outDir`
 *   (kept across guest reboots; the caller deletes it). With `allowReboot`,
 *   `reboot -f` in the guest restarts it in the same QEMU process with the same
 *   disks, and the script runs again (check `$VMTEST_BOOT`). When the script
 *   ends the guest powers off. After `timeoutMs` (default 120 s) QEMU is killed.
 *   Resolves `{ status, console, timedOut, elapsedMs, boots, outDir }`: status
 *   is the script's exit status (null if it never reported one: a panic, a
 *   hang, a timeout), console is the serial console output.
 * - `hostDeno()` — the real path of the pinned deno binary, runnable in the guest.
 * - `consoleTail(result)` — the end of the console, for assertion messages.
 *
 * Timings on the 2-core test machine: first script line about 4 s after start
 * when the machine is idle (20 s at a load average of 16), QEMU uses about
 * 400 MB; a first build of the cache takes a few seconds. raid456 is left out
 * of the modules: it benchmarks its RAID6 algorithms at load, slow under TCG.
 */
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { gzipSync } from "node:zlib";
import { createHash } from "node:crypto";

/** Debian packages the VM needs on the host. */
export const VM_PACKAGES = [
  "qemu-system-x86",
  "linux-image-amd64",
  "busybox-static",
  "xz-utils",
];

/** Kernel modules loaded in the guest (their dependencies are added in load order). */
const MODULES = [
  "virtio_pci",
  "virtio_blk",
  "virtio_rng",
  "9p",
  "9pnet_virtio",
  "overlay",
  "ext4",
  "dm_crypt",
  "raid0",
  "raid1",
  "raid10",
  "xts",
  "aesni_intel",
  "algif_skcipher",
  "algif_hash",
  "sha256_ssse3",
];

const HERE = dirname(fileURLToPath(import.meta.url));
const INIT = join(HERE, "vm", "init");
const REPO = join(HERE, "..", "..");
const CACHE_ROOT = "/var/cache/dcm-agent-tests/vm";
const QEMU = "/usr/bin/qemu-system-x86_64";
const QBOOT = "/usr/share/qemu/qboot.rom";
const BUSYBOX = "/bin/busybox";

/** The built kernel and initramfs of one kernel version. */
export interface VmKernel {
  version: string;
  vmlinux: string;
  initramfs: string;
}

/** Options of {@linkcode runVm}. */
export interface VmOptions {
  /** Shell script text run in the guest with /bin/sh. */
  script: string;
  /** Raw disk image files on the host: /dev/vda, /dev/vdb, ... in the guest. */
  disks?: string[];
  /** Variables exported before the script runs. */
  env?: Record<string, string>;
  /** Milliseconds before QEMU is killed (default 120000). */
  timeoutMs?: number;
  /** Guest memory (default 512). */
  memoryMiB?: number;
  /** Virtual CPUs (default 2). */
  cpus?: number;
  /** A guest `reboot -f` restarts the guest instead of ending QEMU. */
  allowReboot?: boolean;
  /** Called with each console line as it arrives. */
  onLine?: (line: string) => void;
}

/** What a VM run produced. */
export interface VmResult {
  /** The guest script's exit status; null when it never reported one. */
  status: number | null;
  /** The serial console output. */
  console: string;
  timedOut: boolean;
  elapsedMs: number;
  /** How many times the guest booted. */
  boots: number;
  /** Host side of the guest's /vmout share; the caller deletes it. */
  outDir: string;
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The newest installed kernel version with modules, or null. */
function kernelVersion(): string | null {
  try {
    const versions = [...Deno.readDirSync("/lib/modules")]
      .map((e) => e.name)
      .filter((v) => exists(`/boot/vmlinuz-${v}`))
      .sort((a, b) => a.localeCompare(b, undefined, { numeric: true }));
    return versions.at(-1) ?? null;
  } catch {
    return null;
  }
}

/** Null when the VM can run here, else which Debian packages are missing. */
export function vmMissing(): string | null {
  const missing: string[] = [];
  if (!exists(QEMU) || !exists(QBOOT)) missing.push("qemu-system-x86");
  if (kernelVersion() === null) missing.push("linux-image-amd64");
  if (!exists(BUSYBOX)) missing.push("busybox-static");
  if (!exists("/usr/bin/xz")) missing.push("xz-utils");
  if (missing.length === 0) return null;
  return `the test VM needs the Debian packages ${missing.join(", ")}: run ` +
    `apt-get install -y --no-install-recommends ${missing.join(" ")} (scripts/test.sh does)`;
}

async function command(argv: string[], stdin?: Uint8Array): Promise<Uint8Array<ArrayBuffer>> {
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: stdin ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Written while the output is read: a large input would otherwise fill both pipes.
  const writing = stdin
    ? (async () => {
      const w = child.stdin.getWriter();
      await w.write(stdin as Uint8Array<ArrayBuffer>).catch(() => {});
      await w.close().catch(() => {});
    })()
    : Promise.resolve();
  const [out] = await Promise.all([child.output(), writing]);
  if (!out.success) {
    throw new Error(`${argv.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return out.stdout;
}

/** Module files (with dependencies, in load order) and their parameters. */
async function moduleList(version: string): Promise<{ path: string; params: string }[]> {
  const out: { path: string; params: string }[] = [];
  const seen = new Set<string>();
  for (const m of MODULES) {
    const text = new TextDecoder().decode(
      await command(["/usr/sbin/modprobe", "-S", version, "--show-depends", m]),
    );
    for (const line of text.split("\n")) {
      const [kind, path, ...params] = line.trim().split(/\s+/);
      if (kind !== "insmod" || seen.has(path)) continue;
      seen.add(path);
      out.push({ path, params: params.join(" ") });
    }
  }
  return out;
}

/** A cpio "newc" archive writer (what the kernel unpacks as an initramfs). */
class Cpio {
  #parts: Uint8Array[] = [];
  #ino = 1;
  add(name: string, mode: number, data: Uint8Array = new Uint8Array()): void {
    const hex = (n: number) => n.toString(16).padStart(8, "0");
    const nameBytes = new TextEncoder().encode(name + "\0");
    const header = "070701" + [
      this.#ino++,
      mode,
      0,
      0,
      1,
      0,
      data.length,
      0,
      0,
      0,
      0,
      nameBytes.length,
      0,
    ].map(hex).join("");
    this.#push(new TextEncoder().encode(header), nameBytes);
    this.#push(data);
  }
  #push(...chunks: Uint8Array[]): void {
    let len = 0;
    for (const c of chunks) {
      this.#parts.push(c);
      len += c.length;
    }
    const pad = (4 - (len % 4)) % 4;
    if (pad) this.#parts.push(new Uint8Array(pad));
  }
  bytes(): Uint8Array {
    this.add("TRAILER!!!", 0);
    const total = this.#parts.reduce((n, p) => n + p.length, 0);
    const out = new Uint8Array(total);
    let at = 0;
    for (const p of this.#parts) {
      out.set(p, at);
      at += p.length;
    }
    return out;
  }
}

async function writeAtomically(path: string, data: Uint8Array): Promise<void> {
  const tmp = `${path}.${crypto.randomUUID().slice(0, 8)}.tmp`;
  await Deno.writeFile(tmp, data);
  await Deno.rename(tmp, path);
}

/** Builds (once) the uncompressed vmlinux and the initramfs into the cache. */
export async function prepareVm(): Promise<VmKernel> {
  const missing = vmMissing();
  if (missing) throw new Error(missing);
  const version = kernelVersion()!;
  const dir = join(CACHE_ROOT, version);
  await Deno.mkdir(dir, { recursive: true });
  const init = await Deno.readFile(INIT);
  const stamp = createHash("sha256").update(init).update(MODULES.join(" ")).digest("hex")
    .slice(0, 12);
  const initramfs = join(dir, `initramfs-${stamp}.cpio.gz`);
  if (!exists(initramfs)) {
    const cpio = new Cpio();
    for (const d of ["bin", "dev", "proc", "sys", "mods", "lower", "rw", "newroot"]) {
      cpio.add(d, 0o040755);
    }
    cpio.add("bin/busybox", 0o100755, await Deno.readFile(BUSYBOX));
    cpio.add("init", 0o100755, init);
    const list: string[] = [];
    for (const m of await moduleList(version)) {
      let data: Uint8Array = await Deno.readFile(m.path);
      let name = m.path.split("/").pop()!;
      if (name.endsWith(".xz")) {
        data = await command(["/usr/bin/xz", "-dc"], data);
        name = name.slice(0, -3);
      }
      cpio.add(`mods/${name}`, 0o100644, data);
      list.push(`${name} ${m.params}`.trim());
    }
    cpio.add("mods/load.list", 0o100644, new TextEncoder().encode(list.join("\n") + "\n"));
    await writeAtomically(initramfs, gzipSync(cpio.bytes(), { level: 1 }));
  }
  // The uncompressed ELF kernel has a PVH entry: QEMU skips the xz decompressor, slow under TCG.
  const vmlinux = join(dir, "vmlinux");
  if (!exists(vmlinux)) {
    const image = await Deno.readFile(`/boot/vmlinuz-${version}`);
    const magic = [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00];
    const at = image.findIndex((_, i) => magic.every((b, j) => image[i + j] === b));
    if (at < 0) throw new Error(`/boot/vmlinuz-${version} holds no xz-compressed kernel`);
    await writeAtomically(
      vmlinux,
      await command(["/usr/bin/xz", "-dc", "--single-stream"], image.subarray(at)),
    );
  }
  return { version, vmlinux, initramfs };
}

/** The real path of the pinned deno (node_modules/.bin/deno is a link), usable in the guest. */
export function hostDeno(): string {
  return Deno.realPathSync(join(REPO, "node_modules", ".bin", "deno"));
}

function shellQuote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** The last `lines` console lines, for assertion messages. */
export function consoleTail(result: VmResult, lines = 80): string {
  return result.console.split("\n").slice(-lines).join("\n");
}

/** Boots the guest, runs the script, and returns its status and console output. */
export async function runVm(options: VmOptions): Promise<VmResult> {
  const kernel = await prepareVm();
  const outDir = await Deno.makeTempDir({ prefix: "dcm-vm-" });
  const script = join(outDir, ".vmtest-script.sh");
  const exports = Object.entries(options.env ?? {})
    .map(([k, v]) => `export ${k}=${shellQuote(v)}\n`).join("");
  await Deno.writeTextFile(script, exports + options.script);
  const drives = (options.disks ?? []).flatMap((d) => [
    "-drive",
    `file=${d.replaceAll(",", ",,")},if=virtio,format=raw,cache=unsafe`,
  ]);
  const args = [
    "-accel",
    "tcg,thread=multi,tb-size=128",
    "-cpu",
    "max",
    "-smp",
    String(options.cpus ?? 2),
    "-m",
    `${options.memoryMiB ?? 512}M`,
    "-machine",
    "q35",
    "-nodefaults",
    "-no-user-config",
    "-nographic",
    "-serial",
    "stdio",
    "-kernel",
    kernel.vmlinux,
    "-bios",
    QBOOT,
    "-initrd",
    kernel.initramfs,
    "-append",
    `console=ttyS0 panic=-1 loglevel=4 vmtest.script=${script}`,
    "-virtfs",
    "local,path=/,mount_tag=hostroot,security_model=none,readonly=on,multidevs=remap",
    "-virtfs",
    `local,path=${outDir},mount_tag=vmout,security_model=none`,
    "-device",
    "virtio-rng-pci",
    ...(options.allowReboot ? [] : ["-no-reboot"]),
    ...drives,
  ];
  const started = performance.now();
  const child = new Deno.Command(QEMU, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    try {
      child.kill("SIGKILL");
    } catch { /* already gone */ }
  }, options.timeoutMs ?? 120_000);
  const lines: string[] = [];
  const read = async (stream: ReadableStream<Uint8Array>) => {
    let pending = "";
    for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
      pending += chunk;
      const parts = pending.split("\n");
      pending = parts.pop()!;
      for (const raw of parts) {
        const line = raw.replace(/\r$/, "");
        lines.push(line);
        options.onLine?.(line);
      }
    }
    if (pending) lines.push(pending);
  };
  try {
    await Promise.all([read(child.stdout), read(child.stderr), child.status]);
  } finally {
    clearTimeout(timer);
    await Deno.remove(script).catch(() => {});
  }
  const text = lines.join("\n");
  const statuses = [...text.matchAll(/VMTEST_EXIT=(\d+)/g)];
  const boots = Number(await Deno.readTextFile(join(outDir, ".vmtest-boots")).catch(() => "0"));
  return {
    status: statuses.length ? Number(statuses.at(-1)![1]) : null,
    console: text,
    timedOut,
    elapsedMs: Math.round(performance.now() - started),
    boots,
    outDir,
  };
}
