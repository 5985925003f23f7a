/**
 * A small INI reader compatible with the files Python's configparser accepts
 * (the original agent's agent.conf and plugin.conf). npm `ini` is not used
 * because it splits section names on dots, which breaks `[plugin:configure_server.*]`.
 */

/** One `[section]` of an INI file, entries in file order. */
export interface IniSection {
  name: string;
  /** Keys are lower-cased, as configparser does. */
  entries: Map<string, string>;
  /** Line number (1-based) of each key, for error messages. */
  lines: Map<string, number>;
}

/** An INI file's syntax error, with its line number. */
export class IniSyntaxError extends Error {
  constructor(readonly line: number, message: string) {
    super(`line ${line}: ${message}`);
  }
}

/** Parses INI text into sections in file order; a repeated section is merged. */
export function parseIni(text: string): IniSection[] {
  const sections: IniSection[] = [];
  const byName = new Map<string, IniSection>();
  let current: IniSection | undefined;
  let lastKey: string | undefined;
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const raw = lines[i];
    const lineNo = i + 1;
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#") || trimmed.startsWith(";")) {
      if (trimmed === "") lastKey = undefined;
      continue;
    }
    // configparser continuation: an indented line extends the previous value.
    if (/^\s/.test(raw) && current && lastKey !== undefined) {
      const prev = current.entries.get(lastKey) ?? "";
      current.entries.set(lastKey, prev === "" ? trimmed : `${prev}\n${trimmed}`);
      continue;
    }
    if (trimmed.startsWith("[")) {
      const end = trimmed.lastIndexOf("]");
      if (end < 1) {
        throw new IniSyntaxError(lineNo, `section header '${trimmed}' has no closing ']'`);
      }
      const name = trimmed.slice(1, end).trim();
      current = byName.get(name);
      if (!current) {
        current = { name, entries: new Map(), lines: new Map() };
        byName.set(name, current);
        sections.push(current);
      }
      lastKey = undefined;
      continue;
    }
    const m = /^([^=:]+?)\s*[=:]\s*(.*)$/.exec(trimmed);
    if (!m) throw new IniSyntaxError(lineNo, `expected 'key = value', found '${trimmed}'`);
    if (!current) {
      throw new IniSyntaxError(lineNo, `key '${m[1]}' appears before any [section] header`);
    }
    const key = m[1].toLowerCase();
    current.entries.set(key, m[2]);
    current.lines.set(key, lineNo);
    lastKey = key;
  }
  return sections;
}

/** Renders sections as INI text; refuses keys and values that would not read back the same. */
export function renderIni(sections: Record<string, Record<string, string>>): string {
  const lines: string[] = [];
  for (const [section, keys] of Object.entries(sections)) {
    lines.push(`[${section}]`);
    for (const [key, value] of Object.entries(keys)) {
      if (/[\r\n]/.test(String(value)) || /[\r\n=\[\]]/.test(key)) {
        throw new Error(`[${section}] ${key}: INI keys and values must be single-line`);
      }
      lines.push(`${key}=${value}`);
    }
    lines.push("");
  }
  return lines.join("\n");
}
