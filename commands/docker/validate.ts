/**
 * Checks of docker command arguments before any call to the Engine, and the
 * mapping of the manager's arguments to Engine request fields.
 */
import { ArgumentError } from "../../lib/protocol/mod.ts";

const CONTAINER_RE = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$/;
const IMAGE_RE = /^[A-Za-z0-9][A-Za-z0-9._:/@+-]{0,254}$/;

/** A container id or name ("/name" as the Engine lists it is accepted). */
export function containerRef(value: string | null, arg = "container"): string {
  if (value === null || value === "") {
    throw new ArgumentError(`argument '${arg}' is empty; give a container id or name`);
  }
  const ref = value.startsWith("/") ? value.slice(1) : value;
  if (!CONTAINER_RE.test(ref)) {
    throw new ArgumentError(
      `argument '${arg}' ${JSON.stringify(value.slice(0, 80))} is not a container id or name ` +
        "(letters, digits, '_', '.', '-'; at most 128)",
    );
  }
  return ref;
}

/** An image reference (repository[:tag][@digest], or an image id). */
export function imageRef(value: string | null, arg: string): string {
  if (value === null || value === "") {
    throw new ArgumentError(`argument '${arg}' is empty; give an image name`);
  }
  if (!IMAGE_RE.test(value) || value.includes("..") || value.includes("//")) {
    throw new ArgumentError(
      `argument '${arg}' ${JSON.stringify(value.slice(0, 80))} is not an image name ` +
        "(e.g. registry.example.com:5000/team/app:1.0)",
    );
  }
  return value;
}

/** A whole number within [min, max]. */
export function bounded(value: number, arg: string, min: number, max: number): number {
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new ArgumentError(`argument '${arg}' must be between ${min} and ${max}, not ${value}`);
  }
  return value;
}

/** "80", 80, "53/udp" or [53, "udp"] as the Engine's "53/udp". */
function portKey(value: unknown, arg: string): string {
  let port: unknown = value;
  let proto = "tcp";
  if (Array.isArray(value) && value.length >= 1 && value.length <= 2) {
    port = value[0];
    proto = value.length === 2 ? String(value[1]) : "tcp";
  } else if (typeof value === "string" && value.includes("/")) {
    [port, proto] = value.split("/", 2);
  }
  const n = typeof port === "string" && /^\d{1,5}$/.test(port) ? Number(port) : port;
  if (typeof n !== "number" || !Number.isInteger(n) || n < 1 || n > 65535) {
    throw new ArgumentError(
      `argument '${arg}' has a bad port ${
        JSON.stringify(value)
      }; write e.g. 80, "80/tcp" or "53/udp"`,
    );
  }
  if (!["tcp", "udp", "sctp"].includes(proto)) {
    throw new ArgumentError(
      `argument '${arg}' has a bad protocol '${proto}'; use tcp, udp or sctp`,
    );
  }
  return `${n}/${proto}`;
}

/** The `ports` list as ExposedPorts. */
export function exposedPorts(ports: unknown[]): Record<string, Record<string, never>> {
  if (ports.length > 1000) throw new ArgumentError("argument 'ports' lists more than 1000 ports");
  return Object.fromEntries(ports.map((p) => [portKey(p, "ports"), {}]));
}

/** The `environment` object as Env lines "KEY=value". */
export function envLines(env: Record<string, unknown>): string[] {
  const entries = Object.entries(env);
  if (entries.length > 10000) throw new ArgumentError("argument 'environment' is too large");
  return entries.map(([k, v]) => {
    if (k === "" || k.includes("=") || k.includes("\0")) {
      throw new ArgumentError(
        `argument 'environment' has a bad variable name ${JSON.stringify(k.slice(0, 80))}`,
      );
    }
    const text = v === null || v === undefined
      ? ""
      : typeof v === "object"
      ? JSON.stringify(v)
      : String(v);
    if (text.includes("\0")) {
      throw new ArgumentError(`argument 'environment' value of ${k} contains a NUL byte`);
    }
    return `${k}=${text}`;
  });
}

/** One host binding: a host port, [ip, port], [ip] or {HostIp, HostPort}. */
function hostBinding(value: unknown): { HostIp: string; HostPort: string } {
  const port = (p: unknown): string => {
    if (p === null || p === undefined || p === "") return "";
    const n = typeof p === "string" && /^\d{1,5}$/.test(p) ? Number(p) : p;
    if (typeof n !== "number" || !Number.isInteger(n) || n < 0 || n > 65535) {
      throw new ArgumentError(`argument 'port_bindings' has a bad host port ${JSON.stringify(p)}`);
    }
    return String(n);
  };
  const ip = (a: unknown): string => {
    if (a === null || a === undefined || a === "") return "";
    if (typeof a !== "string" || !/^[0-9A-Fa-f.:]{2,45}$/.test(a)) {
      throw new ArgumentError(`argument 'port_bindings' has a bad host IP ${JSON.stringify(a)}`);
    }
    return a;
  };
  if (Array.isArray(value) && value.length <= 2) {
    return { HostIp: ip(value[0]), HostPort: port(value[1]) };
  }
  if (value && typeof value === "object" && !Array.isArray(value)) {
    const o = value as Record<string, unknown>;
    return { HostIp: ip(o.HostIp), HostPort: port(o.HostPort) };
  }
  return { HostIp: "", HostPort: port(value) };
}

/** `port_bindings` (container port -> binding or list of bindings) as PortBindings. */
export function portBindings(value: Record<string, unknown>): Record<string, unknown[]> {
  const out: Record<string, unknown[]> = {};
  for (const [key, v] of Object.entries(value)) {
    // A list of pairs is several bindings; a single [ip, port] pair is one.
    const many = Array.isArray(v) && v.some((x) => Array.isArray(x) || typeof x === "object");
    out[portKey(key, "port_bindings")] = (many ? v as unknown[] : [v]).map(hostBinding);
  }
  return out;
}

/** `links` (container name -> alias) as "name:alias" lines. */
export function linkLines(value: Record<string, unknown>): string[] {
  return Object.entries(value).map(([name, alias]) =>
    `${containerRef(name, "links")}:${containerRef(String(alias ?? name), "links")}`
  );
}

/** Capability names (cap_add, cap_drop). */
export function capabilities(value: unknown[], arg: string): string[] {
  return value.map((c) => {
    if (typeof c !== "string" || !/^[A-Za-z_]{1,40}$/.test(c)) {
      throw new ArgumentError(`argument '${arg}' has a bad capability ${JSON.stringify(c)}`);
    }
    return c;
  });
}
