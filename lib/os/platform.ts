/**
 * Linux distribution detection (README, Configuration): the platform name and version go
 * into the handshake and into scripts' DCM_AGENT_PLATFORM_* variables.
 *
 * Order: /etc/lsb-release, /etc/os-release (modern systems often have no
 * lsb-release and no lsb_release program), `lsb_release -i/-r`,
 * /etc/redhat-release, /etc/debian_version. os-release comes before the
 * lsb_release program because both describe the same release and reading a
 * file is cheaper than running a program.
 */
import { join } from "node:path";
import { type AgentConfig, PLATFORM_NAMES } from "../config/mod.ts";
import { readTextIfPresent } from "./fs_stat.ts";

/** A distribution name and version. */
export interface Platform {
  name: string;
  version: string;
}

/** Options for {@linkcode detectPlatform}. */
export interface DetectPlatformOptions {
  /** File-system root to read /etc files from (tests); the lsb_release program only runs when it is "/". */
  root?: string;
}

/** lsb_release distributor ids and what the agent calls them. */
const LSB_IDS: Record<string, string> = {
  ubuntu: "ubuntu",
  centos: "centos",
  redhatenterpriseserver: "rhel",
  redhatenterprise: "rhel",
  debian: "debian",
};

/** Platform names the agent's scripts know. */
const KNOWN: readonly string[] = PLATFORM_NAMES;

/** Detects the distribution; throws an Error saying how to configure it when nothing matches. */
export function detectPlatform(options: DetectPlatformOptions = {}): Platform {
  const root = options.root ?? "/";
  const found = fromLsbRelease(root) ?? fromOsRelease(root) ??
    (root === "/" ? fromLsbReleaseProgram() : undefined) ?? fromRedhatRelease(root) ??
    fromDebianVersion(root);
  if (found) return found;
  throw new Error(
    "cannot detect the Linux distribution (no usable /etc/lsb-release, /etc/os-release, " +
      "lsb_release, /etc/redhat-release or /etc/debian_version); " +
      "set [platform] name and version in agent.conf",
  );
}

/** The platform from [platform] name/version, detecting whatever is not configured. */
export function platformFor(config: AgentConfig): Platform {
  const { name, version } = config.platform;
  if (name && version) return { name, version };
  const detected = detectPlatform();
  return { name: name ?? detected.name, version: version ?? detected.version };
}

function readText(root: string, path: string): string | undefined {
  return readTextIfPresent(join(root, path));
}

/** Parses shell-style KEY=value lines (os-release, lsb-release), removing quotes. */
export function parseAssignments(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*?)\s*$/.exec(line);
    if (m) out.set(m[1], m[2].replace(/^(["'])(.*)\1$/, "$2"));
  }
  return out;
}

function fromLsbRelease(root: string): Platform | undefined {
  const text = readText(root, "etc/lsb-release");
  if (text === undefined) return undefined;
  const vars = parseAssignments(text);
  const id = vars.get("DISTRIB_ID");
  const release = vars.get("DISTRIB_RELEASE");
  return id && release ? { name: id.toLowerCase(), version: release } : undefined;
}

function fromOsRelease(root: string): Platform | undefined {
  const text = readText(root, "etc/os-release") ?? readText(root, "usr/lib/os-release");
  if (text === undefined) return undefined;
  const vars = parseAssignments(text);
  const id = (vars.get("ID") ?? "").toLowerCase();
  const version = vars.get("VERSION_ID");
  if (!id || !version) return undefined;
  if (KNOWN.includes(id)) return { name: id, version };
  // Derivatives (Rocky, AlmaLinux, Mint…) run the scripts of the family they name first.
  const like = (vars.get("ID_LIKE") ?? "").toLowerCase().split(/\s+/);
  const family = like.find((l) => KNOWN.includes(l));
  return { name: family ?? id, version };
}

function fromLsbReleaseProgram(): Platform | undefined {
  const id = runLsbRelease("-i");
  const release = runLsbRelease("-r");
  const name = id === undefined ? undefined : LSB_IDS[id.toLowerCase()];
  return name && release ? { name, version: release } : undefined;
}

/** Runs `lsb_release <flag>` and returns the value after the colon. */
function runLsbRelease(flag: string): string | undefined {
  try {
    const out = new Deno.Command("lsb_release", { args: [flag], stdout: "piped", stderr: "null" })
      .outputSync();
    if (!out.success) return undefined;
    const text = new TextDecoder().decode(out.stdout);
    const value = text.slice(text.indexOf(":") + 1).trim();
    return value === "" ? undefined : value;
  } catch {
    return undefined;
  }
}

function fromRedhatRelease(root: string): Platform | undefined {
  const text = readText(root, "etc/redhat-release");
  if (text === undefined) return undefined;
  const version = /release\s+([0-9][0-9.]*)/i.exec(text)?.[1];
  if (!version) return undefined;
  if (/centos/i.test(text)) return { name: "centos", version };
  if (/red hat/i.test(text)) return { name: "rhel", version };
  if (/fedora/i.test(text)) return { name: "fedora", version };
  return undefined;
}

function fromDebianVersion(root: string): Platform | undefined {
  const version = readText(root, "etc/debian_version")?.trim();
  return version ? { name: "debian", version } : undefined;
}
