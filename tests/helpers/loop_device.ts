/**
 * Loop devices over sparse files, for tests of real file systems and mounts
 * on this machine's kernel. `cleanup()` unmounts whatever is mounted from the
 * device, detaches it and deletes the file, also after a failed test.
 */
import { tool } from "./throwaway_root.ts";

/** An attached loop device. */
export interface LoopDevice {
  /** Kernel name, e.g. "loop7". */
  name: string;
  /** "/dev/loop7". */
  path: string;
  file: string;
  cleanup(): Promise<void>;
}

/** True when loop devices can be made here (root, losetup, /dev/loop-control). */
export function canUseLoopDevices(): boolean {
  if (Deno.uid() !== 0) return false;
  try {
    return Deno.statSync("/usr/sbin/losetup").isFile && Deno.statSync("/dev/loop-control") !== null;
  } catch {
    return false;
  }
}

/** Attaches a new sparse file of `sizeMiB` as a loop device. */
export async function makeLoopDevice(sizeMiB: number): Promise<LoopDevice> {
  const file = await Deno.makeTempFile({ prefix: "dcm-loop-", suffix: ".img" });
  await Deno.truncate(file, sizeMiB * 1024 * 1024);
  let path: string;
  try {
    path = (await tool(["losetup", "--find", "--show", file])).trim();
  } catch (err) {
    await Deno.remove(file);
    throw err;
  }
  const name = path.split("/").pop()!;
  return {
    name,
    path,
    file,
    async cleanup() {
      const devno = (await Deno.readTextFile(`/sys/class/block/${name}/dev`).catch(() => ""))
        .trim();
      const mounts = (await Deno.readTextFile("/proc/self/mountinfo")).split("\n")
        .map((l) => l.split(" ")).filter((f) => f[2] === devno).map((f) => f[4]);
      for (const mp of mounts.reverse()) {
        await new Deno.Command("umount", { args: ["-l", "--", mp] }).output();
      }
      await new Deno.Command("losetup", { args: ["-d", path] }).output();
      await Deno.remove(file).catch(() => {});
    },
  };
}
