/**
 * Cloud metadata for the handshake (ARCHITECTURE.md, Cloud metadata): the instance id, the id DCM
 * injected at launch, and the IPv4 list. Every lookup is bounded by a timeout
 * and gives null on any failure, so a dead metadata service only delays a
 * handshake by at most one timeout (callers run the lookups in parallel).
 */
import { join } from "node:path";
import { getLogger } from "../logging/mod.ts";
import { writeFileAtomic } from "./atomic_file.ts";
import { readTextIfPresent } from "./fs_stat.ts";
import type { AgentConfig } from "../config/mod.ts";
import { ensureSecureDir, secureDir } from "./token.ts";

const log = getLogger(["dcm", "agent", "cloud"]);

/** Metadata lookups for the configured cloud; no method throws. */
export interface CloudMetadata {
  /** The cloud's instance id (handshake `vm_instance`), or null. */
  instanceId(): Promise<string | null>;
  /** The launch id DCM injected (handshake `injected_id`), or null. */
  injectedId(): Promise<string | null>;
  /** The handshake `ipv4` list; entries are null when the metadata service did not answer. */
  ipv4Addresses(): Promise<(string | null)[]>;
  /** The addresses `rename` chooses from: on Amazon the metadata's local-ipv4 first, then every local IPv4 (ARCHITECTURE.md, Cloud metadata). */
  hostAddresses(): Promise<string[]>;
}

/** Options for {@linkcode createCloudMetadata}. */
export interface CloudMetadataOptions {
  /** Bound of one lookup in ms; default 10000 (ARCHITECTURE.md, Cloud metadata). */
  timeoutMs?: number;
  /** Environment lookup (defaults to Deno.env). */
  env?: (name: string) => string | undefined;
  /** HTTP client (defaults to the global fetch). */
  fetch?: typeof fetch;
  /** File-system root for DHCP lease files and the Joyent mdata-get programs (tests). */
  root?: string;
}

/** Default metadata base URLs per cloud (README, Installing on a VM). */
const DEFAULT_URLS: Record<string, string> = {
  Amazon: "http://169.254.169.254/latest/meta-data",
  DigitalOcean: "http://169.254.169.254/metadata/v1",
  Google: "http://metadata.google.internal/computeMetadata/v1",
  OpenStack: "http://169.254.169.254/openstack/2012-08-10/meta_data.json",
};

/** Headers the original sent with every metadata request and script download (ARCHITECTURE.md, Cloud metadata). */
export const METADATA_REQUEST_HEADERS: Readonly<Record<string, string>> = {
  "Content-Type": "application/x-www-form-urlencoded",
  "Connection": "Keep-Alive",
  "Cache-Control": "no-cache",
};

/** Lifetime requested for an Amazon IMDSv2 session token (the service's maximum). */
const IMDS_TOKEN_TTL_S = 21600;

/** Cloud-specific lookups; each gets a signal that aborts at the deadline. */
interface CloudHooks {
  instanceId?(signal: AbortSignal): Promise<string | null>;
  injectedId?(signal: AbortSignal): Promise<string | null>;
  ipv4?(signal: AbortSignal): Promise<(string | null)[]>;
}

/** Shared state of one CloudMetadata. */
interface Context {
  config: AgentConfig;
  timeoutMs: number;
  env: (name: string) => string | undefined;
  fetch: typeof fetch;
  root: string;
}

/** Creates the metadata lookups for `[cloud] type` (any name in CLOUD_TYPES). */
export function createCloudMetadata(
  config: AgentConfig,
  options: CloudMetadataOptions = {},
): CloudMetadata {
  const ctx: Context = {
    config,
    timeoutMs: options.timeoutMs ?? 10_000,
    env: options.env ?? ((n) => Deno.env.get(n)),
    fetch: options.fetch ?? fetch,
    root: options.root ?? "/",
  };
  const hooks = hooksFor(ctx);
  return {
    instanceId: () => bounded(ctx, null, (s) => hooks.instanceId?.(s) ?? Promise.resolve(null)),
    injectedId: async () => {
      const fromCloud = await bounded(
        ctx,
        null,
        (s) => hooks.injectedId?.(s) ?? Promise.resolve(null),
      );
      return blankToNull(fromCloud) ?? injectedIdFallback(ctx);
    },
    ipv4Addresses: () => {
      const ipv4 = hooks.ipv4;
      if (!ipv4) return Promise.resolve(localIpv4());
      return bounded(ctx, [null], ipv4);
    },
    hostAddresses: async () => {
      if (ctx.config.cloud.type !== "Amazon" || !hooks.ipv4) return localIpv4();
      const fromCloud = await bounded(ctx, [null], hooks.ipv4);
      return [...fromCloud.filter((a): a is string => a !== null), ...localIpv4()];
    },
  };
}

function hooksFor(ctx: Context): CloudHooks {
  const base = (ctx.config.cloud.metadata_url ?? DEFAULT_URLS[ctx.config.cloud.type ?? ""] ?? "")
    .replace(/\/+$/, "");
  switch (ctx.config.cloud.type) {
    case "Amazon":
      return amazonHooks(ctx, base);
    case "DigitalOcean":
      return {
        instanceId: (s) => httpGet(ctx, `${base}/id`, s),
        ipv4: async (s) => [await httpGet(ctx, `${base}/interfaces/public/0/ipv4/address`, s)],
      };
    case "Google":
      return googleHooks(ctx, base);
    case "OpenStack":
      return {
        instanceId: async (s) => {
          const doc = await httpGet(ctx, base, s);
          try {
            const uuid = doc === null ? undefined : JSON.parse(doc)?.uuid;
            return typeof uuid === "string" ? uuid : null;
          } catch {
            return null;
          }
        },
      };
    case "CloudStack":
    case "CloudStack3":
      return {
        instanceId: (s) => {
          const server = ctx.config.cloud.metadata_url ? null : dhcpServer(ctx.root);
          const csBase = server === null ? base : `http://${server}`;
          return csBase === ""
            ? Promise.resolve(null)
            : httpGet(ctx, `${csBase}/latest/instance-id`, s);
        },
      };
    case "Joyent":
      return joyentHooks(ctx);
    case "Azure": {
      const h = Deno.hostname().split(".")[0];
      return { instanceId: () => Promise.resolve(`${h}:${h}:${h}`) };
    }
    case "Konami":
      return {
        instanceId: () => Promise.resolve(ctx.env("DCM_KONAMI_INSTANCE_ID") ?? null),
        injectedId: () => Promise.resolve(ctx.env("DCM_KONAMI_INJECTED_ID") ?? null),
        ipv4: () =>
          Promise.resolve([
            ctx.env("DCM_KONAMI_PRIVATE_IP") ?? null,
            ctx.env("DCM_KONAMI_PUBLIC_IP") ?? null,
          ]),
      };
    default:
      // VMware, Other, UNKNOWN and the clouds the original had no metadata code for.
      return {};
  }
}

/**
 * Amazon: IMDSv1 paths as in the original, plus an IMDSv2 session token when
 * the service offers one (instances that require IMDSv2 refuse plain GETs).
 */
function amazonHooks(ctx: Context, base: string): CloudHooks {
  // The token service sits at the root of the metadata host, whatever the base path.
  const tokenUrl = URL.canParse(base) ? new URL("/latest/api/token", base).href : "";
  // `until` is on the monotonic clock: a wall-clock step must not keep a stale token for hours.
  let cached: { token: string | null; until: number } | undefined;
  async function get(path: string, signal: AbortSignal): Promise<string | null> {
    if (tokenUrl && (!cached || cached.until < performance.now())) {
      const res = await request(ctx, tokenUrl, signal, {
        method: "PUT",
        headers: { "X-aws-ec2-metadata-token-ttl-seconds": String(IMDS_TOKEN_TTL_S) },
      });
      // Remember a definite answer (token, or none because only IMDSv1 exists); retry after errors.
      if (res.status !== 0) {
        const ok = res.status === 200 && res.text !== "";
        // Renew a token 10 minutes before it expires; ask again for one after 5 minutes.
        const keepMs = ok ? (IMDS_TOKEN_TTL_S - 600) * 1000 : 300_000;
        cached = { token: ok ? res.text : null, until: performance.now() + keepMs };
      }
    }
    const headers: Record<string, string> = cached?.token
      ? { "X-aws-ec2-metadata-token": cached.token }
      : {};
    return httpGet(ctx, `${base}/${path}`, signal, headers);
  }
  return {
    instanceId: (s) => get("instance-id", s),
    injectedId: (s) => get("es:dmcm-launch-id", s),
    ipv4: async (s) => [await get("local-ipv4", s)],
  };
}

function googleHooks(ctx: Context, base: string): CloudHooks {
  const headers = { "Metadata-Flavor": "Google" };
  return {
    instanceId: async (s) => {
      const [hostname, id] = await Promise.all([
        httpGet(ctx, `${base}/instance/hostname`, s, headers),
        httpGet(ctx, `${base}/instance/id`, s, headers),
      ]);
      return hostname && id ? `${hostname.split(".")[0]}_${id}` : null;
    },
    injectedId: (s) => httpGet(ctx, `${base}/instance/attributes/es-dmcm-launch-id`, s, headers),
  };
}

/** Joyent: `mdata-get <key>`, from the first of two locations that works (remembered). */
function joyentHooks(ctx: Context): CloudHooks {
  const programs = ["/usr/sbin/mdata-get", "/lib/smartdc/mdata-get"].map((p) => join(ctx.root, p));
  let working: string | undefined;
  async function mdataGet(key: string, signal: AbortSignal): Promise<string | null> {
    for (const program of working ? [working] : programs) {
      // The agent normally runs as root; otherwise go through sudo as the original did.
      const argv = Deno.uid() === 0
        ? [program, key]
        : [ctx.config.system.sudo ?? "/usr/bin/sudo", "-n", program, key];
      try {
        const out = await new Deno.Command(argv[0], {
          args: argv.slice(1),
          stdout: "piped",
          stderr: "null",
          stdin: "null",
          signal,
        }).output();
        if (!out.success) continue;
        working = program;
        return new TextDecoder().decode(out.stdout).trim();
      } catch {
        // Not installed here, or killed at the deadline: try the next location.
      }
    }
    return null;
  }
  return {
    instanceId: (s) => mdataGet("es:dmcm-launch-id", s),
    injectedId: (s) => mdataGet("es:dmcm-launch-id", s),
  };
}

/** Runs `fn` with a signal aborted after the timeout; gives `fallback` on timeout or error. */
async function bounded<T>(
  ctx: Context,
  fallback: T,
  fn: (signal: AbortSignal) => Promise<T>,
): Promise<T> {
  const controller = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  // The race keeps the bound even if an injected fetch ignores the signal.
  const deadline = new Promise<T>((resolve) => {
    timer = setTimeout(() => {
      controller.abort();
      resolve(fallback);
    }, ctx.timeoutMs);
  });
  try {
    return await Promise.race([fn(controller.signal).catch(() => fallback), deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** One HTTP request; status 0 means it failed without an answer. */
async function request(
  ctx: Context,
  url: string,
  signal: AbortSignal,
  init: { method?: string; headers?: Record<string, string> } = {},
): Promise<{ status: number; text: string }> {
  try {
    const res = await ctx.fetch(url, {
      method: init.method ?? "GET",
      headers: { ...METADATA_REQUEST_HEADERS, ...init.headers },
      signal,
    });
    if (res.status !== 200) {
      await res.body?.cancel();
      return { status: res.status, text: "" };
    }
    return { status: 200, text: (await res.text()).trim() };
  } catch {
    return { status: 0, text: "" };
  }
}

/** GET with the metadata headers: the trimmed body, or null for anything but a 200. */
async function httpGet(
  ctx: Context,
  url: string,
  signal: AbortSignal,
  headers: Record<string, string> = {},
): Promise<string | null> {
  const res = await request(ctx, url, signal, { headers });
  return res.status === 200 ? blankToNull(res.text) : null;
}

function blankToNull(value: string | null | undefined): string | null {
  return value === null || value === undefined || value.trim() === "" ? null : value;
}

/** DCM_AGENT_INJECTED_ID (persisted) or else `<base_dir>/secure/injected_id` (ARCHITECTURE.md, Cloud metadata). */
function injectedIdFallback(ctx: Context): string | null {
  const baseDir = ctx.config.storage.base_dir ?? "/dcm";
  const file = join(secureDir(baseDir), "injected_id");
  const stored = readFirstLine(file);
  const fromEnv = blankToNull(ctx.env("DCM_AGENT_INJECTED_ID")?.trim());
  if (fromEnv === null) return stored;
  if (fromEnv !== stored) {
    try {
      ensureSecureDir(baseDir);
      writeFileAtomic(file, fromEnv, { mode: 0o600 });
    } catch (err) {
      log.warn("cannot save the injected id to {file}: {error}", {
        file,
        error: (err as Error).message,
      });
    }
  }
  return fromEnv;
}

function readFirstLine(file: string): string | null {
  return blankToNull(readTextIfPresent(file)?.split("\n", 1)[0].trim());
}

/** Every IPv4 address on every interface, in the system's order, loopback included. */
export function localIpv4(): string[] {
  try {
    return Deno.networkInterfaces().filter((i) => i.family === "IPv4").map((i) => i.address);
  } catch (err) {
    log.warn("cannot list the network interfaces: {error}", { error: (err as Error).message });
    return [];
  }
}

/** The DHCP server address (CloudStack's metadata service) from lease files or the syslog. */
export function dhcpServer(root: string): string | null {
  // The last dhcp-server-identifier of the first lease file that has one;
  // eth0-eth9 first, as the original looked only there. Else /var/log/messages.
  const files: string[] = [];
  for (const dir of ["var/lib/dhcp", "var/lib/dhcp3", "var/lib/dhclient", "var/lib/dhcpcd"]) {
    let names: string[];
    try {
      names = [...Deno.readDirSync(join(root, dir))].filter((e) => e.isFile).map((e) => e.name);
    } catch {
      continue;
    }
    const leases = names.filter((n) => /^dhclient.*\.lease|^dhcpcd-.*\.info$/.test(n)).sort();
    const rank = (n: string) => /eth\d\b/.test(n) ? 0 : 1;
    leases.sort((a, b) => rank(a) - rank(b));
    files.push(...leases.map((n) => join(root, dir, n)));
  }
  for (const file of files) {
    const found = lastMatch(file, /(?:dhcp-server-identifier\s+|DHCPSID=)'?([0-9.]+)/g);
    if (found) return found;
  }
  return lastMatch(join(root, "var/log/messages"), /server identifier\s+([0-9.]+)/gi);
}

function lastMatch(file: string, pattern: RegExp): string | null {
  const text = readTextIfPresent(file);
  if (text === undefined) return null;
  let last: string | null = null;
  for (const m of text.matchAll(pattern)) last = m[1];
  return last;
}
