/**
 * The host's name: `/etc/hostname`, the running (kernel) hostname and the
 * `/etc/hosts` line of the primary IPv4 address, as the original's `rename`
 * script set them, against a root directory ("/" in production).
 */
import { getLogger } from "../logging/mod.ts";
import { statPath, ToolError, ToolRunner } from "./run_tool.ts";
import { pathUnderRoot, type SystemAdapterOptions } from "./system_adapter.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

/** A server name that cannot become a hostname, with text a person can act on. */
export class HostnameError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "HostnameError";
  }
}

/** Options of a {@linkcode HostIdentity} adapter. */
export interface HostIdentityOptions extends SystemAdapterOptions {
  /**
   * The argv that prints the running hostname, and sets it when given a name
   * as one more argument. Default `["hostname"]`; tests point it into a
   * private UTS namespace (`nsenter --target PID --uts hostname`).
   */
  hostnameCommand?: string[];
}

/** The longest server name accepted before sanitising. */
const MAX_SERVER_NAME_CHARS = 255;
// The kernel's HOST_NAME_MAX: `hostname` fails for longer names.
const MAX_HOSTNAME_CHARS = 64;
const LABEL = "([A-Za-z0-9]|[A-Za-z0-9][A-Za-z0-9-]{0,61}[A-Za-z0-9])";
const HOSTNAME_RE = new RegExp(`^(${LABEL}\\.)*${LABEL}$`);

/** Sanitises a server name as the original did (keep letters, digits, '.', '-') and validates it. */
export function sanitizeHostname(serverName: string): string {
  if (serverName.length > MAX_SERVER_NAME_CHARS) {
    throw new HostnameError(
      `the server name is ${serverName.length} characters long; at most ` +
        `${MAX_SERVER_NAME_CHARS} are accepted`,
    );
  }
  const name = serverName.replace(/[^A-Za-z0-9.-]/g, "");
  if (!HOSTNAME_RE.test(name)) {
    throw new HostnameError(
      `the server name ${JSON.stringify(serverName.slice(0, 80))} does not make a valid ` +
        `hostname: after removing characters other than letters, digits, '.' and '-' it must ` +
        `be dot-separated labels of 1 to 63 letters, digits or inner hyphens`,
    );
  }
  if (name.length > MAX_HOSTNAME_CHARS) {
    throw new HostnameError(
      `the hostname '${name.slice(0, 80)}' is ${name.length} characters long; Linux allows at ` +
        `most ${MAX_HOSTNAME_CHARS}`,
    );
  }
  return name;
}

/** The /etc/hosts text with `ip name` for the address's first line, or null if it already names it. */
export function updateHostsText(text: string, entry: { ip: string; name: string }): string | null {
  const lines = text.split("\n");
  const at = lines.findIndex((line) => line.replace(/#.*/, "").trim().split(/\s+/)[0] === entry.ip);
  const wanted = `${entry.ip} ${entry.name}`;
  if (at < 0) {
    const base = text === "" || text.endsWith("\n") ? text : `${text}\n`;
    return `${base}${wanted}\n`;
  }
  const names = lines[at].replace(/#.*/, "").trim().split(/\s+/).slice(1);
  if (names.includes(entry.name)) return null;
  lines[at] = wanted;
  return lines.join("\n");
}

/** Reads and sets the host's name under a root directory. */
export class HostIdentity {
  /** The system root the adapter works on. */
  readonly root: string;
  readonly #run: ToolRunner;
  readonly #hostnameCommand: string[];

  constructor(options: HostIdentityOptions) {
    this.root = options.root;
    this.#run = new ToolRunner({ sudo: options.sudo, tempDir: options.tempDir });
    this.#hostnameCommand = options.hostnameCommand ?? ["hostname"];
  }

  /** The running hostname, as the hostname command prints it. */
  async runningHostname(): Promise<string> {
    return (await this.#run.check(this.#hostnameCommand)).stdout.trim();
  }

  /** Sets the hostname and the /etc/hosts line of `ip` to `name` (already sanitised); returns what changed. */
  async rename(name: string, ip: string): Promise<string[]> {
    if (sanitizeHostname(name) !== name) {
      throw new HostnameError(`'${name}' is not a sanitised hostname; call sanitizeHostname first`);
    }
    if (!/^\d{1,3}(\.\d{1,3}){3}$/.test(ip)) {
      throw new HostnameError(`'${ip}' is not an IPv4 address; the host's primary IPv4 is needed`);
    }
    const done: string[] = [];
    const hostsPath = this.#path("/etc/hosts");
    const hosts = await this.#readOptional(hostsPath);
    const newHosts = updateHostsText(hosts, { ip, name });
    if (newHosts !== null) {
      await this.#replace(hostsPath, newHosts);
      done.push(`set '${ip} ${name}' in ${hostsPath}`);
    }
    if (await this.runningHostname() !== name) {
      await this.#run.check([...this.#hostnameCommand, name], { privileged: true });
      done.push(`set the running hostname to ${name}`);
    }
    const hostnamePath = this.#path("/etc/hostname");
    if ((await this.#readOptional(hostnamePath)).trim() !== name) {
      await this.#replace(hostnamePath, `${name}\n`);
      done.push(`wrote ${name} to ${hostnamePath}`);
    }
    for (const change of done) log.info("rename: {change}", { change });
    return done;
  }

  #path(path: string): string {
    return pathUnderRoot(this.root, path);
  }

  async #readOptional(path: string): Promise<string> {
    try {
      return await Deno.readTextFile(path);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) return "";
      throw err;
    }
  }

  /** Replaces a root-owned file, keeping its mode and owner (0644 root for a new file). */
  async #replace(path: string, content: string): Promise<void> {
    const info = await statPath(this.#run, path);
    if (info && info.kind !== "file") {
      throw new HostnameError(`${path} is not a regular file; fix it by hand and retry`);
    }
    await this.#run.installFile(path, content, {
      mode: info?.mode ?? 0o644,
      uid: info?.uid ?? 0,
      gid: info?.gid ?? 0,
    });
  }
}

/** The reply text of an expected rename failure, or null for a bug. */
export function describeHostFailure(err: unknown): string | null {
  return err instanceof HostnameError || err instanceof ToolError ? err.message : null;
}
