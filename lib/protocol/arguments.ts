/**
 * Command argument declarations and the converters (ARCHITECTURE.md, Command rules). A command
 * declares each argument once; `parseArguments` applies the rules.
 */

/** The converter kinds (ARCHITECTURE.md, Command rules). */
export type ArgType =
  | "str"
  | "int"
  | "float"
  | "bool"
  | "list"
  | "dict"
  | "base64_text"
  | "base64_bytes"
  | "json"
  | "user_name"
  /** Passed through as given; the command checks it (e.g. a string or a list). */
  | "any";

/** Declaration of one command argument. */
export interface ArgSpec {
  type: ArgType;
  /** A mandatory argument must be present as a key (null counts as present). */
  required?: boolean;
  default?: unknown;
  help: string;
}

/** An argument problem; becomes ACK + REPLY return_code 1. */
export class ArgumentError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ArgumentError";
  }
}

/** Arguments after conversion, plus the unknown keys that were ignored. */
export interface ParsedArguments {
  values: Record<string, unknown>;
  unknown: string[];
}

const USER_NAME_RE = /^[A-Za-z0-9_-]+$/;

/** Validates a user name as the original's validator does, with a length limit. */
export function checkUserName(value: string, what = "user name"): string {
  if (value.length === 0) throw new ArgumentError(`${what} is empty`);
  if (value.length > 32) {
    throw new ArgumentError(`${what} '${value.slice(0, 40)}' is longer than 32 characters`);
  }
  if (!USER_NAME_RE.test(value)) {
    throw new ArgumentError(
      `${what} ${JSON.stringify(value)} may contain only letters, digits, '_' and '-'`,
    );
  }
  if (/^[_-]|[_-]$/.test(value)) {
    throw new ArgumentError(`${what} '${value}' must not start or end with '_' or '-'`);
  }
  return value;
}

/** Converts one non-null value per its type; throws ArgumentError. */
function convertArgument(name: string, type: ArgType, value: unknown): unknown {
  const bad = (what: string) => new ArgumentError(`argument '${name}' ${what}`);
  switch (type) {
    case "str":
      if (typeof value === "string") return value;
      if (typeof value === "boolean") return value ? "True" : "False";
      if (typeof value === "number") return String(value);
      throw bad(`must be a string, not ${describe(value)}`);
    case "int": {
      const n = typeof value === "string" && /^\s*[-+]?\d+\s*$/.test(value) ? Number(value) : value;
      if (typeof n === "number" && Number.isInteger(n)) return n;
      if (typeof n === "boolean") return n ? 1 : 0;
      throw bad(`must be a whole number, not ${describe(value)}`);
    }
    case "float": {
      const n = typeof value === "string" && value.trim() !== "" ? Number(value) : value;
      if (typeof n === "number" && Number.isFinite(n)) return n;
      throw bad(`must be a number, not ${describe(value)}`);
    }
    case "bool":
      // Unlike the original (Python truthiness), the strings "false", "no",
      // "0" and "" are false.
      if (typeof value === "boolean") return value;
      if (typeof value === "number") return value !== 0;
      if (typeof value === "string") {
        return !["false", "no", "0", "", "off", "none", "null"].includes(
          value.trim().toLowerCase(),
        );
      }
      throw bad(`must be a boolean, not ${describe(value)}`);
    case "list":
      if (Array.isArray(value)) return value;
      throw bad(`must be a list, not ${describe(value)}`);
    case "dict":
      if (typeof value === "object" && value !== null && !Array.isArray(value)) return value;
      throw bad(`must be an object, not ${describe(value)}`);
    case "base64_text":
      return new TextDecoder("utf-8", { fatal: true }).decode(decodeBase64(name, value));
    case "base64_bytes":
      return decodeBase64(name, value);
    case "json":
      if (value === "null") return null;
      if (typeof value === "object") return value;
      if (typeof value === "string") {
        try {
          return JSON.parse(value);
        } catch {
          throw bad("is not valid JSON text");
        }
      }
      throw bad(`must be JSON text or an object, not ${describe(value)}`);
    case "any":
      return value;
    case "user_name":
      if (typeof value !== "string") {
        throw bad(`must be a user name string, not ${describe(value)}`);
      }
      return checkUserName(value);
  }
}

function decodeBase64(name: string, value: unknown): Uint8Array {
  if (typeof value !== "string") {
    throw new ArgumentError(`argument '${name}' must be base64 text, not ${describe(value)}`);
  }
  const clean = value.replace(/\s+/g, "");
  if (!/^[A-Za-z0-9+/_-]*={0,2}$/.test(clean)) {
    throw new ArgumentError(`argument '${name}' is not valid base64`);
  }
  try {
    const bin = atob(clean.replace(/-/g, "+").replace(/_/g, "/"));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  } catch {
    throw new ArgumentError(`argument '${name}' is not valid base64`);
  }
}

function describe(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "a list";
  if (typeof value === "string") return `the string ${JSON.stringify(value.slice(0, 40))}`;
  return typeof value === "object" ? "an object" : `the ${typeof value} ${String(value)}`;
}

/** Applies declarations to the request's arguments (ARCHITECTURE.md, Command rules). */
export function parseArguments(
  specs: Record<string, ArgSpec>,
  given: Record<string, unknown>,
): ParsedArguments {
  const values: Record<string, unknown> = {};
  for (const [name, spec] of Object.entries(specs)) {
    if (!Object.hasOwn(given, name)) {
      if (spec.required) throw new ArgumentError(`required argument '${name}' is missing`);
      values[name] = spec.default ?? null;
      continue;
    }
    const v = given[name];
    values[name] = v === null ? null : convertArgument(name, spec.type, v);
  }
  const unknown = Object.keys(given).filter((k) => !Object.hasOwn(specs, k));
  return { values, unknown };
}
