/**
 * Renders agent.conf from SCHEMA (README, Installing on a VM): every section and non-hidden key
 * in schema order, each key's help as `# ` lines wrapped at 79 columns, and
 * `#key=` for unset keys. Keys and sections outside the schema (kept from -r)
 * follow, so nothing the operator added is lost.
 */
import { type OptionSpec, SCHEMA, type SectionName } from "../config/mod.ts";
import type { ConfValues } from "./settings.ts";

/** Help for the free-form sections the agent reads but SCHEMA does not list. */
const EXTRA_SECTION_HELP: Readonly<Record<string, string>> = {
  features: "Every key is sent as a string in the handshake's features.",
  docker: "Read by the docker commands.",
  pydev: "Remote debugger settings of the original agent; unused.",
};

const HEADER = [
  "# The dcm-agent configuration, written by 'dcm-agent configure'.",
  "# Change it with 'dcm-agent reconfigure [options]' or edit it and restart",
  "# the agent. A line '#key=' leaves the key unset.",
];

/** Wraps `text` into `# ` comment lines of at most `width` columns. */
export function commentLines(text: string, width = 79): string[] {
  const lines: string[] = [];
  let line = "#";
  for (const word of text.split(/\s+/).filter((w) => w !== "")) {
    if (line !== "#" && line.length + 1 + word.length > width) {
      lines.push(line);
      line = "#";
    }
    line += ` ${word}`;
  }
  lines.push(line);
  return lines;
}

/** The agent.conf text for `values`. */
export function renderAgentConf(values: ConfValues): string {
  const out = [...HEADER];
  const schemaSections = Object.keys(SCHEMA) as SectionName[];
  for (const section of schemaSections) {
    const specs = SCHEMA[section] as Record<string, OptionSpec<unknown>>;
    const given = values.section(section);
    const documented = Object.entries(specs).filter(([, spec]) => !spec.hidden);
    // Hidden keys are written only when -r brought a value for them.
    const extra = [...given].filter(([key, value]) =>
      value !== null && (!Object.hasOwn(specs, key) || specs[key].hidden)
    );
    if (documented.length === 0 && extra.length === 0) continue;
    out.push("", `[${section}]`);
    for (const [key, spec] of documented) {
      const value = given.get(key) ?? null;
      out.push(...commentLines(spec.help), value === null ? `#${key}=` : `${key}=${value}`, "");
    }
    pushExtra(out, extra);
    dropTrailingBlank(out);
  }
  for (const section of values.sectionNames()) {
    if ((schemaSections as string[]).includes(section)) continue;
    const entries = values.section(section);
    out.push("", `[${section}]`);
    if (Object.hasOwn(EXTRA_SECTION_HELP, section)) {
      out.push(...commentLines(EXTRA_SECTION_HELP[section]));
    }
    for (const [key, value] of entries) out.push(`${key}=${value ?? ""}`);
  }
  return `${out.join("\n")}\n`;
}

function pushExtra(out: string[], extra: [string, string | null][]): void {
  if (extra.length === 0) return;
  out.push("# Kept from the previous agent.conf (not a documented key).");
  for (const [key, value] of extra) out.push(`${key}=${value}`);
}

function dropTrailingBlank(out: string[]): void {
  while (out.at(-1) === "") out.pop();
}
