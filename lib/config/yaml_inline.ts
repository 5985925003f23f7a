/**
 * One-line YAML values for lib/config/yaml.ts: plain scalars resolved to YAML 1.1
 * types as PyYAML reads them, single- and double-quoted strings, and flow
 * collections (`[a, b]`, `{a: 1}`) that end on their line.
 */

/** One line of content, as the reader sees it. */
export interface Line {
  /** 1-based, for error messages. */
  number: number;
  indent: number;
  /** The line after its indentation; comments are removed while parsing. */
  text: string;
  name: string;
  /** The value of a block scalar (`|` or `>`) that ends this line, read from the lines below it. */
  block?: string;
}

/** An error naming the text and the line. */
export function lineError(line: Line, message: string): Error {
  return new Error(`${line.name} line ${line.number}: ${message}`);
}

/** Rejects keys that cannot be stored in a plain object. */
export function checkKey(line: Line, key: string): string {
  // An own `__proto__` property cannot be created by assignment; no logging file needs one.
  if (key === "__proto__") throw lineError(line, "the key __proto__ is not supported");
  return key;
}

/** A position in a line. */
export interface Cursor {
  line: Line;
  text: string;
  pos: number;
}

/** Parses a whole one-line value, allowing only a comment after it. */
export function parseInline(line: Line, text: string): unknown {
  const cursor: Cursor = { line, text, pos: 0 };
  const first = text[0];
  let value: unknown;
  if ((first === "|" || first === ">") && line.block !== undefined) return line.block;
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

/** Moves past spaces; a tab there is an error. */
export function skipSpaces(cursor: Cursor): void {
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
export function parseQuoted(cursor: Cursor): string {
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

/** What a plain value starting with an indicator would be, for error messages. */
const CONSTRUCTS: Record<string, string> = {
  "&": "anchors (&name) are",
  "*": "aliases (*name) are",
  "!": "tags (!tag) are",
  "|": "block scalars (|) are only supported after a key or `-`, and",
  ">": "block scalars (>) are only supported after a key or `-`, and",
  "%": "directives are",
  "@": "values starting with @ (reserved) are",
  "`": "values starting with ` (reserved) are",
  "?": "complex keys (? key) are",
};

/** Resolves a plain scalar to null, a boolean, a number or a string, as YAML 1.1 does. */
export function parsePlain(line: Line, source: string): unknown {
  if (INDICATOR.test(source)) {
    const construct = CONSTRUCTS[source[0]] ?? "this indicator";
    throw lineError(
      line,
      `the value ${source} starts with "${source[0]}": ${construct} not supported; ` +
        "quote the value if it is text",
    );
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
