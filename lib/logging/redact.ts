/**
 * Hides secrets in frames before they are written to the wire log: tokens,
 * scripts, passwords, keys and configuration-management credentials
 * (spec 1.3, 2.4, 2.13, 2.14). Identifiers such as request_id stay readable.
 */

/** Keys (lower-case) whose values are always hidden, whatever their name says. */
const SECRET_KEYS = new Set([
  "token",
  "b64script",
  "script",
  "scriptcontents",
  "authentication",
  "encryptedauthsecret",
  "encryptedephemeralfskey",
  "encryptedfsencryptionkey",
  "encryptedconfigtoken",
  "configkey",
  "configcert",
  "storageprivatekey",
  "storagepublickey",
  "parameterlist",
  "configurationdata",
]);

/** Name fragments (lower-case) that mark a key as secret. */
const SECRET_FRAGMENTS = ["password", "secret", "token", "key"];

/** Identifier keys (request_id, agentID, customerId, …) are never secret, even when named like one. */
export const ID_KEY: RegExp = /(?:_id|Id|ID)$/;

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

function isSecretKey(key: string): boolean {
  if (ID_KEY.test(key)) return false;
  const lower = key.toLowerCase();
  return SECRET_KEYS.has(lower) || SECRET_FRAGMENTS.some((f) => lower.includes(f));
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
