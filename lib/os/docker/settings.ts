/**
 * The `[docker]` section of agent.conf, read into typed settings. The section
 * is free-form in the config layer (it is read only when a docker command
 * runs), so a bad value is reported on each docker command instead of
 * stopping the agent.
 */

/** Where and how to reach the Docker Engine. */
export interface DockerSettings {
  /** The daemon address as the operator wrote it (used in error messages). */
  address: string;
  /** A unix socket path, or undefined for TCP. */
  socketPath?: string;
  /** `http://host:port` or `https://host:port` for TCP; `http://docker` for a socket. */
  origin: string;
  tls: boolean;
  /** The preferred API version ("1.41"), or undefined for the newest both sides support. */
  version?: string;
  /** PEM text of the CA that signed the daemon's certificate. */
  caCert?: string;
  /** PEM text of the client certificate and its key (TLS client authentication). */
  clientCert?: string;
  clientKey?: string;
  /** Milliseconds a request may wait for the daemon. */
  timeoutMs: number;
}

/** A `[docker]` value that cannot be used; the text says which key and what to write. */
export class DockerSettingsError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "DockerSettingsError";
  }
}

const DEFAULT_SOCKET = "/var/run/docker.sock";
const TRUE = ["true", "yes", "on", "1"];
const FALSE = ["false", "no", "off", "0", ""];

function bool(section: Record<string, string>, key: string, def: boolean): boolean {
  const raw = section[key];
  if (raw === undefined) return def;
  const v = raw.trim().toLowerCase();
  if (TRUE.includes(v)) return true;
  if (FALSE.includes(v)) return false;
  throw new DockerSettingsError(`[docker] ${key}=${raw} is not a boolean; write True or False`);
}

/** A path key; the original's default "False" means unset. */
function pathKey(section: Record<string, string>, key: string): string | undefined {
  const raw = section[key]?.trim();
  if (!raw || FALSE.includes(raw.toLowerCase())) return undefined;
  return raw;
}

function readPem(key: string, path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch (err) {
    throw new DockerSettingsError(
      `cannot read [docker] ${key}=${path}: ${(err as Error).message}; give the path of a PEM file`,
    );
  }
}

/** Parses `base_url` into a socket path or a TCP origin. */
function parseAddress(raw: string, tls: boolean): { socketPath?: string; origin: string } {
  const url = raw.trim();
  const unix = /^(?:http\+unix|unix):\/\/(.*)$/i.exec(url);
  if (unix || url.startsWith("/")) {
    // docker-py wrote "http+unix://var/run/docker.sock" for /var/run/docker.sock.
    let path = unix ? unix[1] : url;
    if (!path.startsWith("/")) path = `/${path}`;
    if (path === "/" || /\0/.test(path)) {
      throw new DockerSettingsError(`[docker] base_url=${raw} names no socket file`);
    }
    return { socketPath: path, origin: "http://docker" };
  }
  const tcp = /^(tcp|http|https):\/\/([^/?#]+)\/?$/i.exec(url);
  if (!tcp) {
    throw new DockerSettingsError(
      `[docker] base_url=${raw} is not understood; write unix:///var/run/docker.sock or ` +
        "tcp://host:2376",
    );
  }
  const scheme = tcp[1].toLowerCase();
  const secure = scheme === "https" || (scheme === "tcp" && tls);
  let host: URL;
  try {
    host = new URL(`${secure ? "https" : "http"}://${tcp[2]}`);
  } catch {
    throw new DockerSettingsError(`[docker] base_url=${raw} has a bad host or port`);
  }
  if (!host.port) host.port = secure ? "2376" : "2375";
  return { origin: host.origin };
}

/** Reads the `[docker]` section; throws DockerSettingsError with the key to fix. */
export function dockerSettings(section: Record<string, string>): DockerSettings {
  const tlsWanted = bool(section, "tls", false);
  const address = section.base_url?.trim() || `unix://${DEFAULT_SOCKET}`;
  const { socketPath, origin } = parseAddress(address, tlsWanted);
  const tls = origin.startsWith("https:");
  if (tlsWanted && socketPath) {
    throw new DockerSettingsError(
      `[docker] tls=True needs a TCP base_url (tcp://host:2376), not ${address}`,
    );
  }
  // cert_verify is accepted for compatibility; the daemon's certificate is always checked.
  bool(section, "cert_verify", false);
  const rawVersion = section.version?.trim() ?? "";
  let version: string | undefined;
  if (rawVersion !== "" && rawVersion.toLowerCase() !== "auto") {
    if (!/^1\.\d{1,3}$/.test(rawVersion)) {
      throw new DockerSettingsError(
        `[docker] version=${rawVersion} is not an API version; write e.g. 1.41, or auto`,
      );
    }
    version = rawVersion;
  }
  const rawTimeout = section.timeout?.trim() ?? "";
  const timeout = rawTimeout === "" ? 30 : Number(rawTimeout);
  if (!Number.isFinite(timeout) || timeout <= 0 || timeout > 86400) {
    throw new DockerSettingsError(
      `[docker] timeout=${rawTimeout} must be a number of seconds between 0 and 86400`,
    );
  }
  const caPath = pathKey(section, "ca_cert");
  const certPath = pathKey(section, "client_cert_path");
  const keyPath = pathKey(section, "client_key_path");
  if ((certPath === undefined) !== (keyPath === undefined)) {
    throw new DockerSettingsError(
      "[docker] client_cert_path and client_key_path go together; set both or neither",
    );
  }
  if (!tls && (caPath || certPath)) {
    throw new DockerSettingsError(
      `[docker] ca_cert and client certificates need TLS; set tls=True and a tcp:// base_url ` +
        `(now ${address})`,
    );
  }
  return {
    address,
    socketPath,
    origin,
    tls,
    version,
    caCert: caPath ? readPem("ca_cert", caPath) : undefined,
    clientCert: certPath ? readPem("client_cert_path", certPath) : undefined,
    clientKey: keyPath ? readPem("client_key_path", keyPath) : undefined,
    timeoutMs: Math.round(timeout * 1000),
  };
}
