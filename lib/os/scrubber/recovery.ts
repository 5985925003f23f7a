/**
 * The recovery archive: every file the scrubber deletes is saved first in a
 * gzip tar. With an RSA public key the tar is encrypted (AES-256-CBC with a
 * random key, PBKDF2) and that key is encrypted with the public key (RSA-OAEP),
 * so only the holder of the private key can read it. The archive carries a
 * `recovery.sh` that restores the files with openssl and tar.
 */
import { createPublicKey } from "node:crypto";
import { join } from "node:path";
import { runProcess } from "../process_runner.ts";
import { pathUnderRoot } from "../system_adapter.ts";

/** PBKDF2 rounds of `openssl enc`; recovery.sh uses the same number. */
const PBKDF2_ITERATIONS = 200000;
const TOOL_TIMEOUT_MS = 30 * 60 * 1000;

/** Options for {@linkcode buildRecoveryArchive}. */
export interface RecoveryOptions {
  /** Where to write the archive (a host path). */
  rescueFile: string;
  /** The RSA public key (ssh-rsa line or PEM); none: the archive is not encrypted. */
  publicKey?: string | null;
  /** Directory for the staging files; default the system temp directory. */
  tempDir?: string;
}

/** Saves `files` (absolute paths inside `root`) into a recovery archive; throws with a clear text if it cannot. */
export async function buildRecoveryArchive(
  root: string,
  files: string[],
  options: RecoveryOptions,
): Promise<{ encrypted: boolean }> {
  const work = await Deno.makeTempDir({ dir: options.tempDir, prefix: "dcm-scrub-" });
  const partial = `${options.rescueFile}.partial`;
  try {
    await Deno.chmod(work, 0o700);
    const list = files.map((f) => f.replace(/^\/+/, "")).join("\0");
    await Deno.writeTextFile(join(work, "files"), list + (list ? "\0" : ""));
    await tool(
      [
        "tar",
        "--create",
        "--gzip",
        "--file",
        join(work, "data.tar.gz"),
        "--directory",
        pathUnderRoot(root, "/"),
        "--no-recursion",
        "--null",
        "--files-from",
        join(work, "files"),
      ],
      "save the files in the recovery archive",
      { okCodes: [0, 1] },
    );
    const members = ["recovery.sh"];
    const encrypted = Boolean(options.publicKey?.trim());
    if (encrypted) {
      await encrypt(work, options.publicKey!);
      members.push("data.enc", "key", "public_key");
    } else {
      members.push("data.tar.gz");
    }
    await Deno.writeTextFile(join(work, "recovery.sh"), RECOVERY_SCRIPT, { mode: 0o755 });
    await Deno.writeFile(partial, new Uint8Array(), { mode: 0o600 });
    await tool(
      ["tar", "--create", "--gzip", "--file", partial, "--directory", work, ...members],
      "write the recovery archive",
    );
    await Deno.chmod(partial, 0o600);
    await Deno.rename(partial, options.rescueFile);
    return { encrypted };
  } catch (err) {
    await Deno.remove(partial).catch(() => {});
    throw err;
  } finally {
    await Deno.remove(work, { recursive: true }).catch(() => {});
  }
}

/** Encrypts work/data.tar.gz into data.enc and writes key and public_key; the random key never touches the disk. */
async function encrypt(work: string, publicKey: string): Promise<void> {
  const pem = publicKeyPem(publicKey);
  await Deno.writeTextFile(join(work, "public_key"), publicKey.trim() + "\n");
  await Deno.writeTextFile(join(work, "public.pem"), pem);
  const secret = Array.from(
    crypto.getRandomValues(new Uint8Array(32)),
    (b) => b.toString(16).padStart(2, "0"),
  ).join("");
  await tool(
    [
      "openssl",
      "enc",
      "-aes-256-cbc",
      "-pbkdf2",
      "-iter",
      String(PBKDF2_ITERATIONS),
      "-salt",
      "-in",
      join(work, "data.tar.gz"),
      "-out",
      join(work, "data.enc"),
      "-pass",
      "stdin",
    ],
    "encrypt the recovery archive",
    { stdin: `${secret}\n` },
  );
  await tool(
    [
      "openssl",
      "pkeyutl",
      "-encrypt",
      "-pubin",
      "-inkey",
      join(work, "public.pem"),
      "-pkeyopt",
      "rsa_padding_mode:oaep",
      "-out",
      join(work, "key"),
    ],
    "encrypt the recovery key with the public key",
    { stdin: secret },
  );
  await Deno.remove(join(work, "data.tar.gz"));
  await Deno.remove(join(work, "public.pem"));
}

/** An RSA public key as PEM: from an `ssh-rsa AAAA… comment` line or PEM text. */
export function publicKeyPem(text: string): string {
  const trimmed = text.trim();
  try {
    if (trimmed.startsWith("-----BEGIN")) {
      const key = createPublicKey(trimmed);
      if (key.asymmetricKeyType !== "rsa") throw new Error("it is not an RSA key");
      return key.export({ type: "spki", format: "pem" }) as string;
    }
    const [type, b64] = trimmed.split(/\s+/);
    if (type !== "ssh-rsa" || !b64) throw new Error("it is not an ssh-rsa or PEM public key");
    const blob = Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
    const view = new DataView(blob.buffer);
    let offset = 0;
    const next = () => {
      const n = view.getUint32(offset);
      const v = blob.subarray(offset + 4, offset + 4 + n);
      offset += 4 + n;
      return v;
    };
    if (new TextDecoder().decode(next()) !== "ssh-rsa") throw new Error("its key blob is not RSA");
    const e = next();
    let n = next();
    while (n.length > 1 && n[0] === 0) n = n.subarray(1);
    const key = createPublicKey({ key: { kty: "RSA", n: b64url(n), e: b64url(e) }, format: "jwk" });
    return key.export({ type: "spki", format: "pem" }) as string;
  } catch (err) {
    throw new Error(
      `cannot use the public key for the recovery archive: ${(err as Error).message}; ` +
        "give an RSA public key (an 'ssh-rsa AAAA...' line or a PEM file)",
    );
  }
}

function b64url(bytes: Uint8Array): string {
  let s = "";
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

interface ToolOptions {
  stdin?: string;
  /** Exit codes that mean success; GNU tar exits 1 when a file (a live log) changed while read. */
  okCodes?: number[];
}

async function tool(argv: string[], what: string, options: ToolOptions = {}): Promise<void> {
  let r;
  try {
    r = await runProcess(argv, {
      env: { LC_ALL: "C" },
      stdin: options.stdin,
      timeoutMs: TOOL_TIMEOUT_MS,
      maxOutputBytes: 65536,
    });
  } catch (err) {
    throw new Error(
      `cannot ${what}: ${(err as Error).message}; install ${
        argv[0]
      } (the scrubber needs tar and openssl)`,
    );
  }
  if (!(options.okCodes ?? [0]).includes(r.code)) {
    throw new Error(`cannot ${what}: ${argv[0]} failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
}

/** Restores the files; `sh recovery.sh DEST [PRIVATE_KEY]`. */
const RECOVERY_SCRIPT = `#!/bin/sh
# Restores the files that 'dcm-agent scrub' deleted, with their paths below DEST
# (DEST / puts them back where they were). Needs tar, and openssl when the
# archive is encrypted (then the RSA private key matching public_key).
#   sh recovery.sh DEST [PRIVATE_KEY]      (default key: ~/.ssh/id_rsa)
set -eu
here=$(cd "$(dirname "$0")" && pwd)
dest=\${1:?usage: sh recovery.sh DEST [PRIVATE_KEY]}
mkdir -p "$dest"
if [ -f "$here/data.tar.gz" ]; then
    tar -xpzf "$here/data.tar.gz" -C "$dest"
    echo "restored into $dest"
    exit 0
fi
key=\${2:-$HOME/.ssh/id_rsa}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if head -n 1 "$key" | grep -q 'OPENSSH PRIVATE KEY'; then
    # openssl cannot read OpenSSH-format keys: convert a copy to PEM.
    cp "$key" "$work/id"
    chmod 600 "$work/id"
    ssh-keygen -p -m PEM -N "" -f "$work/id" >/dev/null
    key=$work/id
fi
openssl pkeyutl -decrypt -inkey "$key" -pkeyopt rsa_padding_mode:oaep \\
    -in "$here/key" -out "$work/pass"
openssl enc -d -aes-256-cbc -pbkdf2 -iter ${PBKDF2_ITERATIONS} -in "$here/data.enc" \\
    -out "$work/data.tar.gz" -pass "file:$work/pass"
tar -xpzf "$work/data.tar.gz" -C "$dest"
echo "restored into $dest"
`;
