/**
 * `configure --install-extras`: downloads the agent extras package
 * (used by Puppet runs) for this distribution and installs it with dpkg or rpm.
 */
import { join } from "node:path";
import { pathExists } from "../os/mod.ts";
import { detectPlatform, type Platform } from "../os/mod.ts";
import { VERSION } from "../protocol/mod.ts";

/** The [extra] settings. */
export interface ExtrasSettings {
  location: string;
  packageName: string | null;
  basePath: string;
}

/** Package file names to try, in the original's order. */
export function extrasPackageNames(platform: Platform, arch: string): string[] {
  const deb = platform.name === "ubuntu" || platform.name === "debian";
  const ext = deb ? "deb" : "rpm";
  const pkgArch = arch === "x86_64" ? (deb ? "amd64" : "x86_64") : "i386";
  const parts = platform.version.split(".");
  const versions = [...new Set([parts.slice(0, 2).join("."), parts[0]])];
  const base = `dcm-agent-extras-${platform.name}`;
  return [
    ...versions.map((v) => `${base}-${v}-${pkgArch}-${VERSION}.${ext}`),
    ...versions.map((v) => `${base}-${v}-${pkgArch}.${ext}`),
  ];
}

/** Installs the extras unless `basePath` exists; returns what was done. */
export async function installExtras(settings: ExtrasSettings): Promise<string> {
  if (pathExists(settings.basePath)) return `extras already installed in ${settings.basePath}`;
  const platform = detectPlatform();
  const names = settings.packageName
    ? [settings.packageName]
    : extrasPackageNames(platform, Deno.build.arch);
  const location = settings.location.endsWith("/") ? settings.location : `${settings.location}/`;
  for (const name of names) {
    const res = await fetch(new URL(name, location), { signal: AbortSignal.timeout(300_000) })
      .catch(() => null);
    if (!res || res.status !== 200) {
      await res?.body?.cancel();
      continue;
    }
    const dir = Deno.makeTempDirSync({ prefix: "dcm-agent-extras-" });
    try {
      const file = join(dir, name);
      Deno.writeFileSync(file, new Uint8Array(await res.arrayBuffer()));
      const installer = name.endsWith(".deb") ? ["dpkg", "-i", file] : ["rpm", "-Uvh", file];
      const command = Deno.uid() === 0 ? installer : ["sudo", ...installer];
      const out = new Deno.Command(command[0], {
        args: command.slice(1),
        stdout: "piped",
        stderr: "piped",
      })
        .outputSync();
      if (!out.success) {
        throw new Error(
          `installing ${name} failed: ${
            new TextDecoder().decode(out.stderr).trim()
          }; install it by hand with '${installer.join(" ")}'`,
        );
      }
      return `installed extras package ${name}`;
    } finally {
      Deno.removeSync(dir, { recursive: true });
    }
  }
  throw new Error(
    `no extras package found at ${location} (tried ${
      names.join(", ")
    }); give the right one with --package-name or --extra-package-location`,
  );
}
