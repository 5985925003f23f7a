/**
 * Loads agent.conf: `/dcm/etc/agent.conf`, then `$DCM_AGENT_CONF`, then `-c`,
 * later files overriding earlier ones (README, Configuration). Values are checked against
 * the schema; a relative path is resolved against the file that set it.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { type IniSection, IniSyntaxError, parseIni, renderIni } from "./ini.ts";
import {
  type AgentConfig,
  FALSE_WORDS,
  type OptionSpec,
  SCHEMA,
  type SectionName,
  TRUE_WORDS,
} from "./schema.ts";

export type { AgentConfig } from "./schema.ts";

/** The system-wide config file read first. */
export const SYSTEM_CONFIG_FILE = "/dcm/etc/agent.conf";

/** A configuration problem; the agent prints `message` and exits with code 2. */
export class ConfigError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ConfigError";
  }
}

/** Options for {@linkcode loadConfig}. */
export interface LoadConfigOptions {
  /** The `-c FILE` argument. */
  file?: string;
  /** Environment lookup (defaults to Deno.env). */
  env?: (name: string) => string | undefined;
  /** Skip `/dcm/etc/agent.conf` (tests). */
  skipSystemFile?: boolean;
  /** Default true; false lets `status` read a configuration without a manager URL. */
  requireManagerUrl?: boolean;
}

/** The config files to read, in order: existing files only, duplicates skipped. */
export function configCandidates(options: LoadConfigOptions = {}): string[] {
  return configSearch(options).files;
}

/** The files to read, and every place looked at (for "no configuration found"). */
function configSearch(options: LoadConfigOptions): { files: string[]; lookedAt: string[] } {
  const env = options.env ?? ((n: string) => Deno.env.get(n));
  const list: string[] = [];
  const lookedAt: string[] = [];
  if (!options.skipSystemFile) {
    list.push(SYSTEM_CONFIG_FILE);
    lookedAt.push(SYSTEM_CONFIG_FILE);
  }
  const fromEnv = env("DCM_AGENT_CONF") ? resolve(env("DCM_AGENT_CONF")!) : undefined;
  if (fromEnv) list.push(fromEnv);
  lookedAt.push(fromEnv ? `$DCM_AGENT_CONF (${fromEnv})` : "$DCM_AGENT_CONF (not set)");
  const explicit = options.file ? resolve(options.file) : undefined;
  if (explicit) list.push(explicit);
  lookedAt.push(explicit ? `-c ${explicit}` : "-c (not given)");
  const seen = new Set<string>();
  const files = list.filter((f) => {
    if (seen.has(f)) return false;
    seen.add(f);
    // A file named with -c or $DCM_AGENT_CONF must exist: reading it reports the problem.
    return f === explicit || f === fromEnv || isFile(f);
  });
  return { files, lookedAt };
}

// Not os/fs_stat.ts: the config layer sits below os/ (see ARCHITECTURE.md).
function isFile(path: string): boolean {
  try {
    return Deno.statSync(path).isFile;
  } catch {
    return false;
  }
}

interface RawValue {
  value: string;
  file: string;
  line: number;
}

/** Reads and validates the agent configuration; throws ConfigError. */
export function loadConfig(options: LoadConfigOptions = {}): AgentConfig {
  const { files, lookedAt } = configSearch(options);
  const raw = new Map<string, Map<string, RawValue>>();
  const env = options.env ?? ((n: string) => Deno.env.get(n));
  for (const file of files) {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (err) {
      const given = options.file && resolve(options.file) === file
        ? "the file given with -c"
        : env("DCM_AGENT_CONF") && resolve(env("DCM_AGENT_CONF")!) === file
        ? "the file named by $DCM_AGENT_CONF"
        : "the config file";
      throw new ConfigError(
        `cannot read ${given}, ${file}: ${
          (err as Error).message
        }. Give the path of an existing agent.conf (or unset DCM_AGENT_CONF).`,
      );
    }
    mergeText(raw, text, file);
  }
  return buildConfig(raw, files, lookedAt, options.requireManagerUrl ?? true);
}

/** Parses agent.conf text on its own (used by configure -r and tests). */
export function parseConfigText(text: string, file: string): AgentConfig {
  const raw = new Map<string, Map<string, RawValue>>();
  mergeText(raw, text, file);
  return buildConfig(raw, [file], [file]);
}

/** The warnings about agent.conf text: keys and sections the agent does not know (configure -r). */
export function agentConfWarnings(text: string, file: string): string[] {
  const raw = new Map<string, Map<string, RawValue>>();
  try {
    mergeText(raw, text, file);
  } catch {
    return []; // A syntax error is reported by whoever reads the file for real.
  }
  return unknownKeyWarnings(raw);
}

/** Free-form sections: read by the agent (or kept for the original's tools), keys not checked. */
const FREE_SECTIONS = ["features", "docker", "pydev"];

/** One warning per key or section the schema does not know, with the closest known name. */
function unknownKeyWarnings(raw: Map<string, Map<string, RawValue>>): string[] {
  const warnings: string[] = [];
  const sections = Object.keys(SCHEMA) as SectionName[];
  for (const [section, entries] of raw) {
    if (FREE_SECTIONS.includes(section)) continue;
    const first = [...entries.values()][0];
    if (!Object.hasOwn(SCHEMA, section)) {
      const near = closest(section, [...sections, ...FREE_SECTIONS]);
      if (first) {
        warnings.push(
          `${first.file}:${first.line}: unknown section [${section}]${
            near ? `; did you mean [${near}]?` : ""
          } Its keys are ignored.`,
        );
      }
      continue;
    }
    const known = Object.keys(SCHEMA[section as SectionName]);
    for (const [key, rv] of entries) {
      if (known.includes(key)) continue;
      const elsewhere = sections.find((s) => Object.hasOwn(SCHEMA[s], key));
      const near = closest(key, known);
      const hint = elsewhere
        ? `; it belongs in [${elsewhere}]`
        : near
        ? `; did you mean '${near}'?`
        : "";
      warnings.push(
        `${rv.file}:${rv.line}: [${section}] ${key} is not a known key${hint} It is ignored.`,
      );
    }
  }
  return warnings;
}

/** The candidate nearest to `word` by edit distance, if it is near enough to be a typo. */
function closest(word: string, candidates: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const c of candidates) {
    const d = editDistance(word, c);
    if (d < bestDistance) [best, bestDistance] = [c, d];
  }
  return bestDistance <= Math.max(2, Math.floor(word.length / 3)) ? best : undefined;
}

function editDistance(a: string, b: string): number {
  let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const row = [i];
    for (let j = 1; j <= b.length; j++) {
      row[j] = Math.min(prev[j] + 1, row[j - 1] + 1, prev[j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
    prev = row;
  }
  return prev[b.length];
}

/** Adds one file's sections to `raw`, later values overriding; syntax errors name file and line. */
function mergeText(raw: Map<string, Map<string, RawValue>>, text: string, file: string): void {
  let sections: IniSection[];
  try {
    sections = parseIni(text);
  } catch (err) {
    const line = err instanceof IniSyntaxError ? err.line : 0;
    throw new ConfigError(`${file}:${line}: ${(err as Error).message}`);
  }
  for (const s of sections) {
    const name = s.name.toLowerCase();
    const into = raw.get(name) ?? new Map<string, RawValue>();
    raw.set(name, into);
    for (const [k, v] of s.entries) into.set(k, { value: v, file, line: s.lines.get(k) ?? 0 });
  }
}

function buildConfig(
  raw: Map<string, Map<string, RawValue>>,
  files: string[],
  lookedAt: string[],
  requireAll = true,
): AgentConfig {
  const config: Record<string, unknown> = { files, warnings: unknownKeyWarnings(raw) };
  for (const section of Object.keys(SCHEMA) as SectionName[]) {
    const specs = SCHEMA[section] as Record<string, OptionSpec<unknown>>;
    const out: Record<string, unknown> = {};
    const given = raw.get(section);
    for (const [key, spec] of Object.entries(specs)) {
      const rv = given?.get(key);
      out[key] = rv === undefined ? spec.default : convertValue(spec, rv, section, key);
    }
    config[section] = out;
  }
  // Free-form sections: their keys are copied as strings, unchecked.
  for (const name of ["features", "docker"]) {
    config[name] = Object.fromEntries([...(raw.get(name) ?? [])].map(([k, v]) => [k, v.value]));
  }
  const cfg = config as unknown as AgentConfig;
  applyDerivedDefaults(cfg);
  if (requireAll) checkRequired(cfg, raw, lookedAt);
  return cfg;
}

/** Fills the defaults that depend on other keys (paths under base_dir). */
function applyDerivedDefaults(cfg: AgentConfig): void {
  const base = cfg.storage.base_dir ?? "/dcm";
  cfg.storage.dbfile ??= `${base}/secure/agentdb.sql`;
  cfg.storage.script_dir ??= `${base}/bin`;
}

function checkRequired(
  cfg: AgentConfig,
  raw: Map<string, Map<string, RawValue>>,
  lookedAt: string[],
): void {
  for (const section of Object.keys(SCHEMA) as SectionName[]) {
    const specs = SCHEMA[section] as Record<string, OptionSpec<unknown>>;
    for (const [key, spec] of Object.entries(specs)) {
      const value = (cfg[section] as Record<string, unknown>)[key];
      if (spec.required && (value === null || value === "")) {
        const where = cfg.files.length
          ? `in ${cfg.files.join(", ")}`
          : `(no config file was found; looked at ${lookedAt.join(", ")})`;
        const set = raw.get(section)?.get(key);
        throw new ConfigError(
          set
            ? `${set.file}:${set.line}: [${section}] ${key} is empty; set it, e.g. '${key}=wss://manager.example.com/agentManager'`
            : `[${section}] ${key} is required but not set ${where}; add it to agent.conf or run 'dcm-agent configure'`,
        );
      }
    }
  }
  const url = cfg.connection.agentmanager_url;
  if (url !== null) {
    let parsed: URL | undefined;
    try {
      parsed = new URL(url);
    } catch { /* reported below */ }
    if (!parsed || (parsed.protocol !== "ws:" && parsed.protocol !== "wss:")) {
      const set = raw.get("connection")?.get("agentmanager_url");
      throw new ConfigError(
        `${set?.file ?? "agent.conf"}:${
          set?.line ?? 0
        }: [connection] agentmanager_url '${url}' is not a ws:// or wss:// URL`,
      );
    }
  }
}

/** Converts one INI string per its spec; throws ConfigError naming file, section and key. */
function convertValue(
  spec: OptionSpec<unknown>,
  rv: RawValue,
  section: string,
  key: string,
): unknown {
  const v = rv.value.trim();
  const bad = (what: string) =>
    new ConfigError(`${rv.file}:${rv.line}: [${section}] ${key} = '${v}' ${what}`);
  // An empty value means "not set" for optional keys, as `#key=` does.
  if (v === "" && spec.kind !== "string") return spec.default;
  switch (spec.kind) {
    case "string":
      return v === "" && spec.default === null ? null : v;
    case "path":
      return isAbsolute(v) ? v : resolve(dirname(rv.file), v);
    case "int": {
      if (!/^[-+]?\d+$/.test(v)) throw bad("is not a whole number");
      const n = Number(v);
      if (spec.min !== undefined && n < spec.min) throw bad(`is below the minimum ${spec.min}`);
      return n;
    }
    case "float": {
      const n = Number(v);
      if (!Number.isFinite(n)) throw bad("is not a number");
      if (spec.min !== undefined && n < spec.min) throw bad(`is below the minimum ${spec.min}`);
      return n;
    }
    case "bool": {
      const l = v.toLowerCase();
      if (TRUE_WORDS.includes(l)) return true;
      if (FALSE_WORDS.includes(l)) return false;
      throw bad("is not a boolean; use True or False");
    }
    case "list":
      return v.split(",").map((s) => s.trim()).filter((s) => s !== "");
    case "choice": {
      const found = spec.choices?.find((c) => c.toLowerCase() === v.toLowerCase());
      if (!found) throw bad(`is not one of: ${spec.choices?.join(", ")}`);
      return found;
    }
  }
}

/** Builds a config from defaults plus overrides (tests and the demo). */
export function configFromValues(
  values: Record<string, Record<string, string>>,
  file = "<memory>",
): AgentConfig {
  return parseConfigText(renderIni(values), file);
}
