/**
 * Hides secrets before anything is logged, by one list of secret words: frames are
 * copied with secret values replaced ({@linkcode redactSecrets}) and every log line
 * is scrubbed just before it is written ({@linkcode scrubSecrets}). Tokens, scripts,
 * passwords, keys and configuration-management credentials are hidden; identifiers
 * such as request_id stay readable.
 */

/**
 * Words (lower-case) that mark a key as secret wherever they appear in its name, e.g.
 * `encryptedAuthSecret`, `b64script`, `storagePrivateKey`. Both redaction paths use it.
 */
export const SECRET_WORDS: readonly string[] = [
  "password",
  "passwd",
  "secret",
  "token",
  "key",
  "script",
  "authentication",
  "configcert",
  "parameterlist",
  "configurationdata",
];

/** Identifier keys (request_id, agentID, customerId, …) are never secret, even when named like one. */
const ID_KEY: RegExp = /(?:_id|Id|ID)$/;

/** Whether values under this key are hidden. */
export function isSecretKey(key: string): boolean {
  if (ID_KEY.test(key)) return false;
  const lower = key.toLowerCase();
  return SECRET_WORDS.some((word) => lower.includes(word));
}

// ---------------------------------------------------------------------------
// Structured values (frames)

/** Deepest nesting that is copied; deeper parts are summarised. */
const MAX_DEPTH = 64;

/** Returns a deep copy of a frame with secret values replaced by "<redacted N bytes>"; never throws. */
export function redactSecrets(value: unknown): unknown {
  try {
    return copy(value, 0, new WeakSet());
  } catch {
    return "<unloggable value>";
  }
}

function copy(value: unknown, depth: number, seen: WeakSet<object>): unknown {
  if (typeof value !== "object" || value === null) return value;
  if (depth >= MAX_DEPTH) return "<nested too deeply>";
  if (seen.has(value)) return "<circular>";
  seen.add(value);
  try {
    if (Array.isArray(value)) return value.map((v) => copy(v, depth + 1, seen));
    const out: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(value)) {
      out[k] = isSecretKey(k) && v !== null && v !== undefined
        ? `<redacted ${byteLength(v)} bytes>`
        : copy(v, depth + 1, seen);
    }
    return out;
  } finally {
    // Shared (non-circular) sub-objects are copied again wherever they occur.
    seen.delete(value);
  }
}

/** UTF-8 size of a string, or of the JSON text of any other value. */
function byteLength(value: unknown): number {
  const text = typeof value === "string" ? value : JSON.stringify(value) ?? "";
  let n = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) {
      // A surrogate pair is one 4-byte code point.
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

// ---------------------------------------------------------------------------
// Log lines

const WORDS = SECRET_WORDS.join("|");
/**
 * A key name that marks a secret: the whole word is captured by a lookahead, which
 * cannot be backtracked into, so a long run of word characters costs linear time.
 */
const SECRET_KEY = `(?<![\\w-])(?=([\\w-]*?(?:${WORDS})[\\w-]*))`;
/** Cheap pre-test: most lines contain none of the words and skip the scrubbing regexps. */
const SECRET_HINT = new RegExp(WORDS, "i");
/** `"key": "value"`, `'key': 'value'`, `key: "value"` or `key="value"`; groups: quote, key, separator, quote, value. */
const QUOTED_SECRET = new RegExp(
  `(["']?)${SECRET_KEY}\\2\\1(\\s*[:=]\\s*)(["'])((?:\\\\[\\s\\S]|(?!\\4)[^\\\\])*)\\4`,
  "gi",
);
/** `key=value` without quotes, as in command lines and URLs. */
const BARE_SECRET = new RegExp(`${SECRET_KEY}\\1=(?!["'])[^\\s&,;]+`, "gi");
const PEM_PRIVATE_KEY =
  /-----BEGIN ([A-Z0-9 ]*)PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|$)/g;

/** Replaces obvious secrets in a log line (quoted or `key=value` secret fields, PEM private keys) by `<redacted>`. */
export function scrubSecrets(line: string): string {
  if (!SECRET_HINT.test(line)) return line;
  return line
    .replace(PEM_PRIVATE_KEY, "-----BEGIN $1PRIVATE KEY-----<redacted>-----END $1PRIVATE KEY-----")
    .replace(
      QUOTED_SECRET,
      (match, kq: string, key: string, sep: string, q: string, value: string) =>
        // Values redacted earlier by redactSecrets ("<redacted N bytes>") keep their size hint.
        !isSecretKey(key) || value === "" || value.startsWith("<redacted")
          ? match
          : `${kq}${key}${kq}${sep}${q}<redacted>${q}`,
    )
    .replace(BARE_SECRET, (match, key: string) => isSecretKey(key) ? `${key}=<redacted>` : match);
}
