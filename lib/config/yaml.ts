/**
 * A small YAML reader for the subset that logging.yaml files use (Python `dictConfig`
 * files): block mappings and sequences, one-line flow collections, quoted and plain
 * scalars with YAML 1.1 types as PyYAML reads them. Loading the npm `yaml` package
 * costs about 10 MB of idle memory, so it is only loaded for files this reader
 * rejects. Anything outside the subset throws rather than being guessed at, so a
 * successful result always equals what `yaml`'s `parse(text, { version: "1.1" })`
 * returns.
 */

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

interface Line {
  /** 1-based, for error messages. */
  number: number;
  indent: number;
  /** The line after its indentation; comments are removed while parsing. */
  text: string;
  name: string;
}

interface State {
  lines: Line[];
  pos: number;
}

/** Keeps the lines that hold content, rejecting what the subset leaves out (documents, directives, tabs). */
function splitLines(text: string, name: string): Line[] {
  const lines: Line[] = [];
  const raw = text.replace(/^\uFEFF/, "").split(/\r?\n/);
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
  }
  return lines;
}

function lineError(line: Line, message: string): Error {
  return new Error(`${line.name} line ${line.number}: ${message}`);
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

function checkKey(line: Line, key: string): string {
  // An own `__proto__` property cannot be created by assignment; no logging file needs one.
  if (key === "__proto__") throw lineError(line, "the key __proto__ is not supported");
  return key;
}

// ---------------------------------------------------------------------------
// One-line values: scalars and flow collections

interface Cursor {
  line: Line;
  text: string;
  pos: number;
}

/** Parses a whole one-line value, allowing only a comment after it. */
function parseInline(line: Line, text: string): unknown {
  const cursor: Cursor = { line, text, pos: 0 };
  const first = text[0];
  let value: unknown;
  if (first === '"' || first === "'") value = parseQuoted(cursor);
  else if (first === "[" || first === "{") value = parseFlow(cursor);
  else {
    const comment = text.search(/ #/);
    const source = (comment < 0 ? text : text.slice(0, comment)).trimEnd();
    if (/: |:$/.test(source)) {
      throw lineError(line, "a mapping cannot start on the line of another key or value");
    }
    return parsePlain(line, source);
  }
  skipSpaces(cursor);
  if (cursor.pos < text.length && text[cursor.pos] !== "#") {
    throw lineError(line, `unexpected text after the value: ${text.slice(cursor.pos)}`);
  }
  return value;
}

function skipSpaces(cursor: Cursor): void {
  while (cursor.text[cursor.pos] === " ") cursor.pos++;
  if (cursor.text[cursor.pos] === "\t") {
    throw lineError(cursor.line, "tabs are only allowed inside quoted strings; use spaces");
  }
}

function parseFlow(cursor: Cursor): unknown[] | Record<string, unknown> {
  const open = cursor.text[cursor.pos];
  const close = open === "[" ? "]" : "}";
  const result: unknown[] | Record<string, unknown> = open === "[" ? [] : {};
  cursor.pos++;
  for (;;) {
    skipSpaces(cursor);
    const char = cursor.text[cursor.pos];
    if (char === undefined || char === "#") {
      throw lineError(
        cursor.line,
        `missing "${close}": flow collections must end on the line they start`,
      );
    }
    if (char === close) {
      cursor.pos++;
      return result;
    }
    if (Array.isArray(result)) {
      result.push(parseFlowNode(cursor));
    } else {
      const key = parseFlowNode(cursor);
      if (typeof key !== "string") {
        throw lineError(cursor.line, "keys in a flow mapping must be plain or quoted strings");
      }
      checkKey(cursor.line, key);
      skipSpaces(cursor);
      if (cursor.text[cursor.pos] !== ":") {
        throw lineError(cursor.line, `expected ":" after the key "${key}" in a flow mapping`);
      }
      cursor.pos++;
      skipSpaces(cursor);
      const next = cursor.text[cursor.pos];
      if (Object.hasOwn(result, key)) {
        throw lineError(cursor.line, `duplicate key "${key}"; keys in a mapping must be unique`);
      }
      result[key] = next === "," || next === "}" ? null : parseFlowNode(cursor);
    }
    skipSpaces(cursor);
    const separator = cursor.text[cursor.pos];
    // The end of the line and a comment are reported as a missing close at the top of the loop.
    if (separator === ",") cursor.pos++;
    else if (separator !== close && separator !== undefined && separator !== "#") {
      throw lineError(
        cursor.line,
        `expected "," or "${close}" in a flow collection, found "${separator}"`,
      );
    }
  }
}

function parseFlowNode(cursor: Cursor): unknown {
  const char = cursor.text[cursor.pos];
  if (char === '"' || char === "'") return parseQuoted(cursor);
  if (char === "[" || char === "{") return parseFlow(cursor);
  const start = cursor.pos;
  // A flow plain scalar ends at a flow indicator, at `: ` or at a comment.
  const end = cursor.text.slice(start).search(/[,[\]{}]|:(?=[ ,[\]{}]|$)| #/);
  cursor.pos = end < 0 ? cursor.text.length : start + end;
  const source = cursor.text.slice(start, cursor.pos).trimEnd();
  if (source === "") {
    throw lineError(cursor.line, "empty entry in a flow collection; remove the extra comma");
  }
  return parsePlain(cursor.line, source);
}

const ESCAPES: Record<string, string> = {
  "0": "\0",
  a: "\x07",
  b: "\b",
  t: "\t",
  "\t": "\t",
  n: "\n",
  v: "\v",
  f: "\f",
  r: "\r",
  e: "\x1b",
  " ": " ",
  '"': '"',
  "/": "/",
  "\\": "\\",
  N: "\x85",
  _: "\xa0",
  L: "\u2028",
  P: "\u2029",
};
const HEX_LENGTHS: Record<string, number> = { x: 2, u: 4, U: 8 };

/** Reads a single- or double-quoted scalar that must end on its line. */
function parseQuoted(cursor: Cursor): string {
  const quote = cursor.text[cursor.pos];
  const text = cursor.text;
  let value = "";
  for (let i = cursor.pos + 1; i < text.length; i++) {
    const char = text[i];
    if (char === quote) {
      if (quote === "'" && text[i + 1] === "'") {
        value += "'";
        i++;
        continue;
      }
      cursor.pos = i + 1;
      return value;
    }
    if (char !== "\\" || quote === "'") {
      value += char;
      continue;
    }
    const code = text[++i];
    const hexLength = HEX_LENGTHS[code];
    if (hexLength !== undefined) {
      const hex = text.slice(i + 1, i + 1 + hexLength);
      if (!/^[0-9a-fA-F]+$/.test(hex) || hex.length !== hexLength) {
        throw lineError(
          cursor.line,
          `bad escape \\${code}${hex}: expected ${hexLength} hex digits`,
        );
      }
      value += String.fromCodePoint(parseInt(hex, 16));
      i += hexLength;
    } else if (code !== undefined && Object.hasOwn(ESCAPES, code)) {
      value += ESCAPES[code];
    } else {
      throw lineError(cursor.line, `unknown escape \\${code ?? ""} in a double-quoted string`);
    }
  }
  throw lineError(
    cursor.line,
    `missing closing ${quote}: quoted strings must end on the line they start`,
  );
}

const NULL = /^(?:~|[Nn]ull|NULL)?$/;
const TRUE = /^(?:Y|y|[Yy]es|YES|[Tt]rue|TRUE|[Oo]n|ON)$/;
const FALSE = /^(?:N|n|[Nn]o|NO|[Ff]alse|FALSE|[Oo]ff|OFF)$/;
const INTEGER = /^[-+]?(?:0|[1-9][0-9]*)$/;
const FLOAT = /^[-+]?(?:[0-9]+\.[0-9]*|\.[0-9]+)(?:[eE][-+]?[0-9]+)?$|^[-+]?[0-9]+[eE][-+]?[0-9]+$/;
const INFINITY = /^[-+]?\.(?:inf|Inf|INF)$/;
const NAN = /^\.(?:nan|NaN|NAN)$/;
/**
 * Other scalars YAML 1.1 gives a type (octal, hex, binary, `1_000`, sexagesimal
 * `1:30`, timestamps): too rare in logging files to be worth reading here.
 */
const OTHER_NUMBER = /^[-+]?\.?[0-9]/;
/** Characters that start anchors, aliases, tags, block scalars and reserved or structural indicators. */
const INDICATOR = /^(?:[&*!|>%@`,[\]{}#"']|[-?:](?: |$))/;

/** Resolves a plain scalar to null, a boolean, a number or a string, as YAML 1.1 does. */
function parsePlain(line: Line, source: string): unknown {
  if (INDICATOR.test(source)) {
    throw lineError(line, `the value ${source} starts with "${source[0]}", which is not supported`);
  }
  if (source.includes("\t")) {
    throw lineError(line, "tabs are only allowed inside quoted strings; use spaces");
  }
  if (NULL.test(source)) return null;
  if (TRUE.test(source)) return true;
  if (FALSE.test(source)) return false;
  if (INTEGER.test(source) || FLOAT.test(source)) return Number(source);
  if (INFINITY.test(source)) return source.startsWith("-") ? -Infinity : Infinity;
  if (NAN.test(source)) return NaN;
  if (OTHER_NUMBER.test(source)) {
    throw lineError(
      line,
      `the value ${source} looks like a number or date in a form that is not supported; ` +
        "quote it if it is text",
    );
  }
  return source;
}
