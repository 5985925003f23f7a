/**
 * The tools volume commands need, and installing a missing one with the
 * platform's package manager (apt-get, dnf or yum) as the original agent did.
 */
import { VolumeError } from "./block_devices.ts";
import type { VolumesContext } from "./context.ts";
import type { RunOptions } from "../run_tool.ts";

/** Tools and the Debian/Red Hat package that has each. */
const PACKAGES: Record<string, string> = {
  mdadm: "mdadm",
  cryptsetup: "cryptsetup",
  "mkfs.xfs": "xfsprogs",
  "mkfs.ext2": "e2fsprogs",
  "mkfs.ext3": "e2fsprogs",
  "mkfs.ext4": "e2fsprogs",
  "mkfs.btrfs": "btrfs-progs",
  "mkfs.vfat": "dosfstools",
};
const TOOL_DIRS = ["/usr/local/sbin", "/usr/local/bin", "/usr/sbin", "/usr/bin", "/sbin", "/bin"];

function hasTool(name: string): boolean {
  return TOOL_DIRS.some((d) => {
    try {
      return Deno.statSync(`${d}/${name}`).isFile;
    } catch {
      return false;
    }
  });
}

/** Makes sure a tool is there, installing its package when allowed. */
export async function ensureTool(
  c: VolumesContext,
  tool: string,
  say: (l: string) => void,
): Promise<void> {
  if (hasTool(tool)) return;
  const pkg = PACKAGES[tool] ?? tool;
  if (c.installPackages) {
    const apt = hasTool("apt-get");
    const manager = apt ? "apt-get" : hasTool("dnf") ? "dnf" : hasTool("yum") ? "yum" : null;
    if (manager) {
      say(`installing ${pkg} for ${tool}`);
      const install = apt
        ? [
          "env",
          "DEBIAN_FRONTEND=noninteractive",
          "apt-get",
          "install",
          "-y",
          "-q",
          "--no-install-recommends",
          pkg,
        ]
        : [manager, "install", "-y", "-q", pkg];
      const opts: RunOptions = { privileged: true };
      let res = await c.runner.run(install, opts);
      if (res.code !== 0 && apt) {
        await c.runner.run(
          ["env", "DEBIAN_FRONTEND=noninteractive", "apt-get", "update", "-q"],
          opts,
        );
        res = await c.runner.run(install, opts);
      }
      if (res.code === 0 && hasTool(tool)) return;
    }
  }
  throw new VolumeError(
    `${tool} is not installed; install ${
      PACKAGES[tool] ? `the package ${pkg}` : `the package that provides it`
    } and send the request again`,
  );
}
