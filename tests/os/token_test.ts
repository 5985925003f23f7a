/** Tests of lib/token.ts and lib/atomic_file.ts. */
import assert from "node:assert/strict";
import { writeFileAtomic } from "../../lib/os/atomic_file.ts";
import {
  generateToken,
  loadOrCreateToken,
  regenerateToken,
  TOKEN_ALPHABET,
} from "../../lib/os/token.ts";

const UUID4 = "[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}";
const TOKEN = new RegExp(`^([A-Za-z0-9\\-_!@#^(),.=+]{30,59})${UUID4}$`);

function mode(path: string): number {
  return Deno.statSync(path).mode! & 0o777;
}

/** A temporary directory, removed when its `using` scope ends. */
function tempDir(): Disposable & { path: string } {
  const path = Deno.makeTempDirSync();
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

Deno.test("token: 30-59 characters of the alphabet followed by a UUID4", () => {
  const lengths = new Set<number>();
  for (let i = 0; i < 2000; i++) {
    const token = generateToken();
    const m = TOKEN.exec(token);
    assert.ok(m, token);
    lengths.add(token.length - 36);
  }
  assert.equal(Math.min(...lengths), 30);
  assert.equal(Math.max(...lengths), 59);
  assert.equal(TOKEN_ALPHABET.length, 26 + 26 + 10 + 12);
});

Deno.test("token: created on first use in secure/ (0700) as token (0600), then reused", () => {
  using dir = tempDir();
  const base = dir.path;
  const token = loadOrCreateToken(base);
  assert.match(token, TOKEN);
  assert.equal(mode(`${base}/secure`), 0o700);
  assert.equal(mode(`${base}/secure/token`), 0o600);
  assert.equal(Deno.readTextFileSync(`${base}/secure/token`), token);
  assert.equal(loadOrCreateToken(base), token);
});

Deno.test("token: the first line of an existing file is used, trimmed", () => {
  using dir = tempDir();
  Deno.mkdirSync(`${dir.path}/secure`);
  Deno.writeTextFileSync(`${dir.path}/secure/token`, "  handmade-token \nsecond line\n");
  assert.equal(loadOrCreateToken(dir.path), "handmade-token");
});

Deno.test("token: a blank file gets a new token", () => {
  using dir = tempDir();
  Deno.mkdirSync(`${dir.path}/secure`);
  Deno.writeTextFileSync(`${dir.path}/secure/token`, "\n");
  const token = loadOrCreateToken(dir.path);
  assert.match(token, TOKEN);
  assert.equal(Deno.readTextFileSync(`${dir.path}/secure/token`), token);
});

Deno.test("token: regenerating replaces a longer old token completely (the original left the old tail)", () => {
  using dir = tempDir();
  const base = dir.path;
  Deno.mkdirSync(`${base}/secure`, { mode: 0o700 });
  Deno.writeTextFileSync(`${base}/secure/token`, "x".repeat(500));
  const token = regenerateToken(base);
  assert.notEqual(token, "x".repeat(500));
  assert.equal(Deno.readTextFileSync(`${base}/secure/token`), token);
  assert.equal(loadOrCreateToken(base), token);
  assert.equal(mode(`${base}/secure/token`), 0o600);
  assert.deepEqual([...Deno.readDirSync(`${base}/secure`)].map((e) => e.name), ["token"]);
});

Deno.test("atomic file: writes bytes or text, applies the mode and leaves no temp file", () => {
  using tmp = tempDir();
  const dir = tmp.path;
  writeFileAtomic(`${dir}/a`, new Uint8Array([1, 2, 3]), { mode: 0o640 });
  assert.deepEqual(Deno.readFileSync(`${dir}/a`), new Uint8Array([1, 2, 3]));
  assert.equal(mode(`${dir}/a`), 0o640);
  // Without a mode the old file's mode is kept.
  writeFileAtomic(`${dir}/a`, "hé");
  assert.equal(Deno.readTextFileSync(`${dir}/a`), "hé");
  assert.equal(mode(`${dir}/a`), 0o640);
  writeFileAtomic(`${dir}/b`, "");
  assert.equal(Deno.readTextFileSync(`${dir}/b`), "");
  assert.deepEqual([...Deno.readDirSync(dir)].map((e) => e.name).sort(), ["a", "b"]);
});

Deno.test("atomic file: a missing directory is reported and nothing is left behind", () => {
  using tmp = tempDir();
  assert.throws(
    () => writeFileAtomic(`${tmp.path}/missing/x`, "data"),
    /cannot write .*missing\/x/,
  );
  assert.deepEqual([...Deno.readDirSync(tmp.path)], []);
});
