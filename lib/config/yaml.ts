/**
 * The agent's one YAML reader, for logging.yaml (Python `dictConfig` files) and
 * anything else the agent reads as YAML: block mappings and sequences, one-line flow
 * collections, quoted and plain scalars with YAML 1.1 types as PyYAML reads them,
 * comments, and literal (`|`) and folded (`>`) block scalars. Anything outside the
 * subset (anchors, aliases, tags, complex keys, several documents, values spanning
 * lines other than block scalars) throws an error naming the line and the construct
 * rather than being read differently than PyYAML would; no npm package is loaded.
 */

import {
  checkKey,
  type Cursor,
  type Line,
  lineError,
  parseInline,
  parsePlain,
  parseQuoted,
  skipSpaces,
} from "./yaml_inline.ts";

/** Options for {@linkcode parseYamlSubset}. */
export interface YamlSubsetOptions {
  /** Names the text in error messages, e.g. the file name; defaults to "YAML". */
  name?: string;
}

/** Parses YAML in the subset described above; throws an Error naming the line for anything else. */
export function parseYamlSubset(text: string, options: YamlSubsetOptions = {}): unknown {
  const state: State = { lines: splitLines(text, options.name ?? "YAML"), pos: 0 };
  const first = state.lines[0];
  if (first === undefined) return null;
  const value = parseBlock(state, first.indent);
  const rest = state.lines[state.pos];
  if (rest !== undefined) {
    throw lineError(rest, "unexpected content here; check the indentation of this line");
  }
  return value;
}

interface State {
  lines: Line[];
  pos: number;
}

/** Keeps the lines that hold content, rejecting what the subset leaves out (documents, directives, tabs). */
function splitLines(text: string, name: string): Line[] {
  const lines: Line[] = [];
  const raw = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  // A final line break ends the last line; it does not start an empty one.
  if (raw.at(-1) === "") raw.pop();
  for (let i = 0; i < raw.length; i++) {
    const line = raw[i];
    const body = line.trimStart();
    if (body === "" || body.startsWith("#")) continue;
    const indentation = line.slice(0, line.length - body.length);
    const entry: Line = { number: i + 1, indent: indentation.length, text: body.trimEnd(), name };
    if (indentation.includes("\t")) {
      throw lineError(entry, "tabs are not allowed for indentation; use spaces");
    }
    if (entry.indent === 0 && /^---(?:\s|$)/.test(entry.text)) {
      if (lines.length > 0) {
        throw lineError(entry, "several documents in one file are not supported; keep one");
      }
      if (!/^---\s*(?:#.*)?$/.test(entry.text)) {
        throw lineError(entry, "content on the `---` line is not supported; start it below");
      }
      continue;
    }
    if (entry.indent === 0 && /^(?:\.\.\.|%)/.test(entry.text)) {
      throw lineError(entry, "document end markers and directives are not supported");
    }
    lines.push(entry);
    i = readBlockScalar(entry, raw, i);
  }
  return lines;
}

/**
 * `key: |`, `- >-` and the like: a block scalar header after a key or a sequence dash.
 * Groups: the dashes, the key with its colon, the style, then the indentation and
 * chomping indicators in either order. A key cannot contain ` #` (a comment).
 */
const BLOCK_HEADER =
  /^((?:- +)*)((?:"(?:[^"\\]|\\.)*"|'(?:[^']|'')*'|[^\s#'"][^#]*?) *: +)?([|>])([1-9]?)([-+]?)([1-9]?)(?: +#.*)?$/;

/** Reads the block scalar that `entry` opens, if any, into `entry.block`; returns the index of its last raw line. */
function readBlockScalar(entry: Line, raw: string[], index: number): number {
  const header = entry.text.match(BLOCK_HEADER);
  if (!header) return index;
  const [, dashes, key, style, indent1, chomping, indent2] = header;
  if (key === undefined && dashes === "") {
    throw lineError(
      entry,
      "a block scalar (| or >) is only supported as the value of a key or a `-`",
    );
  }
  if (indent1 !== "" && indent2 !== "") {
    throw lineError(entry, "a block scalar header has two indentation indicators; keep one");
  }
  // The node's own indentation: where its key starts, or its dash for `- |`.
  const lastDash = key === undefined ? dashes.match(/- +$/)![0].length : 0;
  const base = entry.indent + dashes.length - lastDash;
  let contentIndent = Number(indent1 || indent2) || undefined;
  if (contentIndent !== undefined) contentIndent += base;
  const body: string[] = [];
  let end = index;
  for (let i = index + 1; i < raw.length; i++) {
    const line = raw[i];
    const spaces = line.match(/^ */)![0].length;
    if (spaces < line.length) {
      if (contentIndent === undefined) {
        if (spaces <= base) break;
        contentIndent = spaces;
      }
      if (spaces < contentIndent) break;
    }
    body.push(line);
    end = i;
  }
  const indent = contentIndent ?? base + 1;
  const lines = body.map((line) => line.slice(indent));
  entry.block = blockValue(lines, style === ">", chomping);
  return end;
}

/** Joins the lines of a block scalar (already without their indentation) as YAML does: literal or folded, then chomped. */
function blockValue(lines: string[], folded: boolean, chomping: string): string {
  let result = "";
  let empty = 0;
  let content = false;
  let moreIndented = false;
  for (const line of lines) {
    if (line === "") {
      empty++;
      continue;
    }
    // Folding joins lines with a space, except around lines indented further than the first.
    const more = line[0] === " " || line[0] === "\t";
    if (!content) result += "\n".repeat(empty);
    else if (!folded || more || moreIndented) result += "\n".repeat(empty + 1);
    else result += empty === 0 ? " " : "\n".repeat(empty);
    moreIndented = more;
    result += line;
    content = true;
    empty = 0;
  }
  if (chomping === "+") result += "\n".repeat(content ? empty + 1 : empty);
  else if (chomping === "" && content) result += "\n";
  return result;
}

function isSequenceItem(line: Line): boolean {
  return line.text === "-" || line.text.startsWith("- ");
}

/** Parses the node whose first line is the current one, at `indent`. */
function parseBlock(state: State, indent: number): unknown {
  const line = state.lines[state.pos];
  if (isSequenceItem(line)) return parseSequence(state, indent);
  if (splitKey(line) !== null) return parseMapping(state, indent);
  state.pos++;
  return parseInline(line, line.text);
}

function parseSequence(state: State, indent: number): unknown[] {
  const items: unknown[] = [];
  for (let line = state.lines[state.pos]; line !== undefined; line = state.lines[state.pos]) {
    if (line.indent < indent || (line.indent === indent && !isSequenceItem(line))) break;
    if (line.indent > indent) throw lineError(line, "unexpected indentation");
    const content = line.text.slice(1).trimStart();
    if (content === "" || content.startsWith("#")) {
      state.pos++;
      items.push(parseNested(state, indent));
      continue;
    }
    // `- key: value` and `- - item` start a node inside the item: read the rest of the
    // line as if it were its own line, indented to where its content starts.
    const inner: Line = {
      ...line,
      indent: indent + line.text.length - content.length,
      text: content,
    };
    state.lines[state.pos] = inner;
    items.push(
      isSequenceItem(inner) || splitKey(inner) !== null
        ? parseBlock(state, inner.indent)
        : parseValueLine(state, inner, indent),
    );
  }
  return items;
}

function parseMapping(state: State, indent: number): Record<string, unknown> {
  const map: Record<string, unknown> = {};
  for (let line = state.lines[state.pos]; line !== undefined; line = state.lines[state.pos]) {
    if (line.indent < indent) break;
    if (line.indent > indent) throw lineError(line, "unexpected indentation");
    if (isSequenceItem(line)) {
      throw lineError(line, "a sequence item where a mapping key was expected");
    }
    const entry = splitKey(line);
    if (entry === null) {
      throw lineError(line, "expected `key: value`; check the indentation and the colon");
    }
    if (Object.hasOwn(map, entry.key)) {
      throw lineError(line, `duplicate key "${entry.key}"; keys in a mapping must be unique`);
    }
    if (entry.rest === "" || entry.rest.startsWith("#")) {
      state.pos++;
      const next = state.lines[state.pos];
      // A sequence may sit at its key's own indentation (`handlers:` then `- a`).
      map[entry.key] = next !== undefined && next.indent === indent && isSequenceItem(next)
        ? parseSequence(state, indent)
        : parseNested(state, indent);
    } else {
      map[entry.key] = parseValueLine(state, { ...line, text: entry.rest }, indent);
    }
  }
  return map;
}

/** The node on the lines below a key or `-` that has nothing after it, or null when none is indented deeper. */
function parseNested(state: State, parentIndent: number): unknown {
  const next = state.lines[state.pos];
  if (next === undefined || next.indent <= parentIndent) return null;
  return parseBlock(state, next.indent);
}

/** A one-line value; the next line may not continue it. */
function parseValueLine(state: State, line: Line, parentIndent: number): unknown {
  state.pos++;
  const value = parseInline(line, line.text);
  const next = state.lines[state.pos];
  if (next !== undefined && next.indent > parentIndent) {
    throw lineError(
      next,
      "unexpected indentation; values continued on the next line are not supported",
    );
  }
  return value;
}

/** Splits `key: rest` (plain or quoted key), or returns null when the line is no mapping entry. */
function splitKey(line: Line): { key: string; rest: string } | null {
  const text = line.text;
  if (text.startsWith('"') || text.startsWith("'")) {
    const cursor: Cursor = { line, text, pos: 0 };
    const key = parseQuoted(cursor);
    skipSpaces(cursor);
    if (text[cursor.pos] !== ":" || !/^(?: |$)/.test(text.slice(cursor.pos + 1))) return null;
    return { key, rest: text.slice(cursor.pos + 1).trim() };
  }
  const colon = text.search(/:(?: |$)/);
  if (colon < 0) return null;
  const comment = text.search(/ #/);
  if (comment >= 0 && comment < colon) return null;
  if (/^[[{]/.test(text)) {
    throw lineError(line, "flow collections as mapping keys are not supported");
  }
  const source = text.slice(0, colon).trimEnd();
  const key = parsePlain(line, source);
  if (typeof key !== "string" || source === "<<") {
    throw lineError(
      line,
      `the key ${source || "(empty)"} is not a plain string; quote it if it is meant as text`,
    );
  }
  return { key: checkKey(line, key), rest: text.slice(colon + 1).trim() };
}
