/**
 * The agent.conf values that `configure` works on: every value is kept as the
 * INI string it will be written as, so that a value read with -r is written
 * back exactly as the operator typed it. Keys outside SCHEMA (from -r, e.g.
 * [features] or [docker]) are kept too.
 */
import { dirname, isAbsolute, resolve } from "node:path";
import { type OptionSpec, SCHEMA, type SectionName, TRUE_WORDS } from "../config/mod.ts";
import { IniSyntaxError, parseIni } from "../config/mod.ts";
import { UsageError } from "./options.ts";

/** The schema entry of a key, or undefined for keys outside the schema. */
function specOf(section: string, key: string): OptionSpec<unknown> | undefined {
  const specs = (SCHEMA as Record<string, Record<string, OptionSpec<unknown>>>)[section];
  return specs && Object.hasOwn(specs, key) ? specs[key] : undefined;
}

/** A schema value as it is written in agent.conf (Python-style booleans and floats). */
function formatValue(spec: OptionSpec<unknown>, value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value === "boolean") return value ? "True" : "False";
  if (typeof value === "number" && spec.kind === "float" && Number.isInteger(value)) {
    return `${value}.0`;
  }
  return String(value);
}

/** Splits "section.key"; keys never contain dots, section names might. */
function splitPath(path: string): [string, string] {
  const dot = path.lastIndexOf(".");
  return [path.slice(0, dot), path.slice(dot + 1)];
}

/** agent.conf values by section and key, in insertion order; `null` means unset (`#key=`). */
export class ConfValues {
  #sections = new Map<string, Map<string, string | null>>();

  /** the original configure step 1: the default of every non-hidden key. */
  static defaults(): ConfValues {
    const values = new ConfValues();
    for (const section of Object.keys(SCHEMA) as SectionName[]) {
      for (
        const [key, spec] of Object.entries(SCHEMA[section] as Record<string, OptionSpec<unknown>>)
      ) {
        if (!spec.hidden) values.#put(section, key, formatValue(spec, spec.default));
      }
    }
    return values;
  }

  /** The value at "section.key", or null when unset. */
  get(path: string): string | null {
    const [section, key] = splitPath(path);
    return this.#sections.get(section)?.get(key) ?? null;
  }

  /** Sets "section.key"; refuses values that cannot be written on one INI line. */
  set(path: string, value: string | null): void {
    const [section, key] = splitPath(path);
    this.#put(section, key, value);
  }

  /** Whether "section.key" holds a true boolean (`True`/`yes`, as the agent reads it). */
  isTrue(path: string): boolean {
    return TRUE_WORDS.includes((this.get(path) ?? "").trim().toLowerCase());
  }

  /** The keys of one section in order, or an empty map. */
  section(name: string): ReadonlyMap<string, string | null> {
    return this.#sections.get(name) ?? new Map();
  }

  /** Section names in the order they were first set. */
  sectionNames(): string[] {
    return [...this.#sections.keys()];
  }

  /** An independent copy. */
  clone(): ConfValues {
    const copy = new ConfValues();
    for (const [name, entries] of this.#sections) copy.#sections.set(name, new Map(entries));
    return copy;
  }

  /**
   * the original configure step 2: overlays an existing agent.conf. Relative paths are made
   * absolute against the file's directory, which is how the agent reads them,
   * so that they keep their meaning when the new file is written elsewhere.
   */
  overlayFile(file: string): void {
    let text: string;
    try {
      text = Deno.readTextFileSync(file);
    } catch (err) {
      throw new UsageError(
        `-r/--reload-conf: cannot read ${file}: ${
          (err as Error).message
        }; give the path of an existing agent.conf`,
      );
    }
    let sections;
    try {
      sections = parseIni(text);
    } catch (err) {
      const line = err instanceof IniSyntaxError ? `:${err.line}` : "";
      throw new UsageError(
        `-r/--reload-conf: ${file}${line} is not a valid agent.conf (${
          (err as Error).message
        }); fix the file or configure without -r`,
      );
    }
    for (const section of sections) {
      const name = section.name.toLowerCase();
      for (const [key, raw] of section.entries) {
        const value = raw.trim();
        const spec = specOf(name, key);
        if (value === "") {
          this.#put(name, key, spec ? null : "");
        } else if (spec?.kind === "path" && !isAbsolute(value)) {
          this.#put(name, key, resolve(dirname(file), value));
        } else {
          this.#put(name, key, value);
        }
      }
    }
  }

  /**
   * Moves path values that lie under `from` to `to`, so that changing the
   * base path with -p -r does not leave files pointing into the old tree.
   */
  rebase(base: { from: string; to: string }): void {
    if (base.from === base.to) return;
    for (const [section, entries] of this.#sections) {
      for (const [key, value] of entries) {
        if (value === null || specOf(section, key)?.kind !== "path") continue;
        if (value === base.from || value.startsWith(`${base.from}/`)) {
          entries.set(key, base.to + value.slice(base.from.length));
        }
      }
    }
  }

  #put(section: string, key: string, value: string | null): void {
    if (value !== null && /[\r\n]/.test(value)) {
      throw new UsageError(
        `[${section}] ${key}: the value contains a line break; give it on one line`,
      );
    }
    let entries = this.#sections.get(section);
    if (!entries) {
      entries = new Map();
      this.#sections.set(section, entries);
    }
    entries.set(key, value);
  }
}
