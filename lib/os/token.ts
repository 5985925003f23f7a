/**
 * The agent's authentication token in `<base_dir>/secure/token` (ARCHITECTURE.md, Handshake).
 * It identifies this server to the manager across restarts; a 409 handshake
 * reply means another server presents the same token, so a new one is made.
 */
import { join } from "node:path";
import { writeFileAtomic } from "./atomic_file.ts";

/** Characters of the random token prefix (ARCHITECTURE.md, Handshake). */
export const TOKEN_ALPHABET =
  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_!@#^(),.=+";

/** Path of the secure directory under the base directory. */
export function secureDir(baseDir: string): string {
  return join(baseDir, "secure");
}

/** Creates `<baseDir>/secure` with mode 0700 if it is missing; returns its path. */
export function ensureSecureDir(baseDir: string): string {
  const dir = secureDir(baseDir);
  try {
    Deno.statSync(dir);
    return dir;
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
  Deno.chmodSync(dir, 0o700);
  return dir;
}

/** Returns the persisted token, generating and saving one if there is none. */
export function loadOrCreateToken(baseDir: string): string {
  const file = join(secureDir(baseDir), "token");
  let text: string;
  try {
    text = Deno.readTextFileSync(file);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return regenerateToken(baseDir);
    throw new Error(
      `cannot read the token file ${file}: ${(err as Error).message}; ` +
        "check its permissions (the agent must be able to read it)",
      { cause: err },
    );
  }
  const token = text.split("\n", 1)[0].trim();
  return token === "" ? regenerateToken(baseDir) : token;
}

/** Generates a new token, saves it (0600, atomically) and returns it. */
export function regenerateToken(baseDir: string): string {
  const token = generateToken();
  writeFileAtomic(join(ensureSecureDir(baseDir), "token"), token, { mode: 0o600 });
  return token;
}

/** Makes a token: 30-59 random characters of the alphabet followed by a UUID4. */
export function generateToken(): string {
  const length = 30 + randomBelow(30);
  let prefix = "";
  for (let i = 0; i < length; i++) prefix += TOKEN_ALPHABET[randomBelow(TOKEN_ALPHABET.length)];
  return prefix + crypto.randomUUID();
}

/** A uniform random integer in [0, n) from the crypto generator (rejection sampling). */
function randomBelow(n: number): number {
  const limit = 256 - (256 % n);
  const byte = new Uint8Array(1);
  do crypto.getRandomValues(byte); while (byte[0] >= limit);
  return byte[0] % n;
}
