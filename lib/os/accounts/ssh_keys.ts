/**
 * SSH public keys: validation of one key line and its installation into the
 * user's ~/.ssh/authorized_keys. Everything inside the home is done as the
 * user and links are refused, so a link the user planted can never redirect a
 * root-privileged write.
 */
import { join } from "node:path";
import type { PasswdEntry } from "../passwd.ts";
import { type PathInfo, type RunAs, statPath } from "../run_tool.ts";
import { type AccountsContext, pathIn } from "./context.ts";
import { AccountError } from "./errors.ts";

/** The public key types sshd accepts in authorized_keys without options. */
const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ssh-dss",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);
const MAX_KEY_CHARS = 16 * 1024;

/** Validates one SSH public key line (`type base64 [comment]`) and returns it normalised; throws AccountError. */
export function parsePublicKey(text: string): string {
  const line = text.replace(/\r?\n$/, "");
  if (/[\r\n]/.test(line)) {
    throw new AccountError(
      "the SSH public key contains a line break; send exactly one key on one line",
    );
  }
  if (line.length > MAX_KEY_CHARS) {
    throw new AccountError(
      `the SSH public key is ${line.length} characters long; at most ${MAX_KEY_CHARS} are accepted`,
    );
  }
  if (/[^\P{Cc}\t]/u.test(line)) {
    throw new AccountError("the SSH public key contains control characters; send the key as text");
  }
  const [type = "", blob = "", ...comment] = line.trim().split(/[ \t]+/);
  if (!KEY_TYPES.has(type)) {
    throw new AccountError(
      `the SSH public key must start with a key type such as ssh-ed25519, ssh-rsa or ` +
        `ecdsa-sha2-nistp256, not '${type.slice(0, 30)}'; authorized_keys options ` +
        `(command=..., from=...) and other text are not accepted`,
    );
  }
  if (keyBlobType(blob) !== type) {
    throw new AccountError(
      `the SSH public key's base64 part is not a valid ${type} key; copy the whole line of ` +
        `the .pub file`,
    );
  }
  return [type, blob, ...comment].join(" ");
}

/** The key type encoded at the start of an SSH key blob, or null if the blob is not one. */
function keyBlobType(blob: string): string | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(blob) || blob.length % 4 !== 0) return null;
  let bytes: Uint8Array;
  try {
    bytes = Uint8Array.from(atob(blob), (c) => c.charCodeAt(0));
  } catch {
    return null;
  }
  if (bytes.length < 4) return null;
  const length = new DataView(bytes.buffer).getUint32(0);
  if (length > bytes.length - 4) return null;
  return new TextDecoder().decode(bytes.subarray(4, 4 + length));
}

/** True if `content` (an authorized_keys file) already holds the key of `keyLine`. */
function hasKey(content: string, keyLine: string): boolean {
  const [type, blob] = keyLine.split(" ");
  return content.split("\n").some((line) => {
    const fields = line.trim().split(/[ \t]+/);
    const at = fields.indexOf(type);
    return at >= 0 && fields[at + 1] === blob;
  });
}

/** Appends the key once to ~/.ssh/authorized_keys, working as the user and refusing links. */
export async function installKey(
  ctx: AccountsContext,
  user: PasswdEntry,
  key: string,
): Promise<string[]> {
  if (!user.home.startsWith("/") || user.home === "/") {
    throw new AccountError(
      `the home directory of '${user.name}' is '${user.home}'; give the user a home under ` +
        `/home (usermod -d) and retry`,
    );
  }
  const run = ctx.run;
  const home = pathIn(ctx, user.home);
  const homeInfo = await statPath(run, home);
  if (homeInfo?.kind !== "directory") {
    throw new AccountError(
      `the home directory ${home} of '${user.name}' is missing or not a directory; create it ` +
        `(owned by ${user.name}) and retry`,
    );
  }
  const asUser: RunAs = { uid: user.uid, gid: user.gid };
  const done: string[] = [];
  const sshDir = join(home, ".ssh");
  const dirInfo = await statPath(run, sshDir);
  if (!dirInfo) {
    await run.check(["mkdir", "-m", "0700", "--", sshDir], { asUser });
    done.push(`created ${sshDir}`);
  } else {
    refuseUnsafe(dirInfo, sshDir, "directory");
    if (dirInfo.uid !== user.uid || dirInfo.gid !== user.gid) {
      // -h changes a link itself, never its target, should the user swap one in meanwhile.
      await run.check(["chown", "-h", `${user.uid}:${user.gid}`, "--", sshDir], {
        privileged: true,
      });
    }
    if (dirInfo.mode !== 0o700) {
      await run.check(["chmod", "0700", "--", sshDir], { asUser });
    }
  }
  const keysPath = join(sshDir, "authorized_keys");
  const keysInfo = await statPath(run, keysPath);
  let current = "";
  if (keysInfo) {
    refuseUnsafe(keysInfo, keysPath, "file");
    if (keysInfo.uid !== user.uid) {
      throw new AccountError(
        `${keysPath} is owned by uid ${keysInfo.uid}, not by '${user.name}'; give it to the ` +
          `user (chown ${user.name} ${keysPath}) and retry`,
      );
    }
    const read = await run.check(["cat", "--", keysPath], { asUser });
    if (read.truncated) {
      throw new AccountError(`${keysPath} is larger than 1 MiB; clean it up and retry`);
    }
    current = read.stdout;
  }
  if (hasKey(current, key)) {
    done.push("the SSH key is already authorized");
  } else {
    const separator = current !== "" && !current.endsWith("\n") ? "\n" : "";
    // dd (not tee) so that the key never appears in captured output or error texts.
    await run.check(
      ["dd", `of=${keysPath}`, "oflag=append", "conv=notrunc", "status=none"],
      { asUser, stdin: `${separator}${key}\n` },
    );
    done.push(`added the SSH key to ${keysPath}`);
  }
  if (keysInfo?.mode !== 0o600) {
    await run.check(["chmod", "0600", "--", keysPath], { asUser });
  }
  await restoreSecurityContext(ctx, sshDir);
  return done;
}

/** Relabels ~/.ssh on SELinux systems, as the original did, so that sshd may read it. */
async function restoreSecurityContext(ctx: AccountsContext, sshDir: string): Promise<void> {
  if (ctx.root !== "/") return;
  try {
    await Deno.stat("/sys/fs/selinux/enforce");
  } catch {
    return;
  }
  await ctx.run.check(["restorecon", "-R", "--", sshDir], { privileged: true });
}

function refuseUnsafe(info: PathInfo, path: string, expected: "file" | "directory"): void {
  if (info.kind === "symlink") {
    throw new AccountError(
      `${path} is a symbolic link; add_user never follows links in a user's home. Remove the ` +
        `link (rm ${path}) and retry`,
    );
  }
  if (info.kind !== expected) {
    throw new AccountError(`${path} exists but is not a ${expected}; remove it and retry`);
  }
  if (expected === "file" && info.links > 1) {
    throw new AccountError(
      `${path} has ${info.links} hard links, so writing it could change another file; replace ` +
        `it with a plain copy and retry`,
    );
  }
}
