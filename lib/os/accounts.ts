/**
 * Local user accounts: the system effects of `add_user` and `remove_user`
 * (spec 2.4, 2.5) made with useradd, groupadd, usermod, gpasswd, userdel,
 * visudo and coreutils against a root directory: "/" in production, a
 * throw-away copy of /etc in tests. Files inside a user's home are only ever
 * touched as that user, so a link the user planted can never redirect a
 * root-privileged write.
 */
import { getLogger } from "../logging/mod.ts";
import { join } from "node:path";
import { ArgumentError, checkUserName } from "../protocol/mod.ts";
import { type PathInfo, type RunAs, statPath, ToolError, ToolRunner } from "./run_tool.ts";
import { pathUnderRoot, type SystemAdapterOptions } from "./system_adapter.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

/** A refused or failed account change, with text a person can act on. */
export class AccountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AccountError";
  }
}

/** One line of /etc/passwd. */
export interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  gecos: string;
  home: string;
  shell: string;
}

/** One line of /etc/group. */
export interface GroupEntry {
  name: string;
  gid: number;
  members: string[];
}

/** The /etc/login.defs limits that separate system accounts from people. */
export interface LoginDefs {
  uidMin: number;
  gidMin: number;
}

/** Options of an {@linkcode Accounts} adapter. */
export interface AccountsOptions extends SystemAdapterOptions {
  /** The uid the agent runs as, never removed; default: this process's uid when root is "/". */
  selfUid?: number | null;
}

/** What `add_user` asks for (spec 2.4). */
export interface AddUserRequest {
  userName: string;
  firstName: string | null;
  lastName: string | null;
  /** One SSH public key line, or null/empty for none. */
  publicKey: string | null;
  administrator: boolean;
  /** The agent's own user ([system]user): never changed, and its group is granted with admin rights. */
  agentUser?: string | null;
}

/** Options for {@linkcode Accounts.removeUser}. */
export interface RemoveUserOptions {
  /** The agent's own user ([system]user), which is never removed. */
  agentUser?: string | null;
}

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
const MAX_NAME_PART_CHARS = 128;
// The overflow uid: a system account even though it is above UID_MAX.
const NOBODY_UID = 65534;

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

/** Builds the GECOS field "first last"; throws AccountError for text useradd would misread. */
function gecosOf(firstName: string | null, lastName: string | null): string {
  const parts: string[] = [];
  for (const [what, value] of [["first name", firstName], ["last name", lastName]] as const) {
    const text = (value ?? "").trim();
    if (/[:\p{Cc}]/u.test(text)) {
      throw new AccountError(
        `the ${what} ${JSON.stringify(text.slice(0, 40))} may not contain ':' or control ` +
          `characters such as line breaks`,
      );
    }
    if (text.length > MAX_NAME_PART_CHARS) {
      throw new AccountError(
        `the ${what} is ${text.length} characters long; at most ${MAX_NAME_PART_CHARS} are accepted`,
      );
    }
    if (text) parts.push(text);
  }
  return parts.join(" ");
}

/** The exact sudoers rule add_user installs for an administrator. */
function sudoersRule(name: string): string {
  return `${name} ALL=(ALL) NOPASSWD: ALL\n`;
}

/** True if a sudoers file holds at least one rule and only rules for `name` (so it is that user's own). */
function isOwnDropIn(content: string, name: string): boolean {
  const rules = content.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !(l.startsWith("#") && !/^#include/.test(l))
  );
  return rules.length > 0 &&
    rules.every((l) => l.startsWith(`${name} `) || l.startsWith(`${name}\t`));
}

/** Adds, changes and removes local users under a root directory. */
export class Accounts {
  /** The system root the adapter works on. */
  readonly root: string;
  readonly #run: ToolRunner;
  readonly #selfUid: number | null;

  constructor(options: AccountsOptions) {
    this.root = options.root;
    this.#run = new ToolRunner({ sudo: options.sudo, tempDir: options.tempDir });
    this.#selfUid = options.selfUid !== undefined
      ? options.selfUid
      : options.root === "/"
      ? Deno.uid()
      : null;
  }

  /** Reads the user `name` from the root's /etc/passwd. */
  async lookupUser(name: string): Promise<PasswdEntry | undefined> {
    const f = await this.#findEntry("/etc/passwd", name, 7);
    if (!f) return undefined;
    return { name, uid: Number(f[2]), gid: Number(f[3]), gecos: f[4], home: f[5], shell: f[6] };
  }

  /** Reads the group `name` from the root's /etc/group. */
  async lookupGroup(name: string): Promise<GroupEntry | undefined> {
    const f = await this.#findEntry("/etc/group", name, 4);
    if (!f) return undefined;
    return { name, gid: Number(f[2]), members: f[3].split(",").filter((m) => m !== "") };
  }

  /** Reads UID_MIN and GID_MIN from the root's /etc/login.defs (1000 when unset). */
  async loginDefs(): Promise<LoginDefs> {
    let text = "";
    try {
      text = await Deno.readTextFile(this.#path("/etc/login.defs"));
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw err;
    }
    const value = (key: string) => {
      const m = text.match(new RegExp(`^\\s*${key}\\s+(\\d+)\\s*$`, "m"));
      return m ? Number(m[1]) : 1000;
    };
    return { uidMin: value("UID_MIN"), gidMin: value("GID_MIN") };
  }

  /** Creates or updates a user as spec 2.4 describes; returns what was changed. */
  async addUser(request: AddUserRequest): Promise<string[]> {
    const name = checkUserName(request.userName);
    const gecos = gecosOf(request.firstName, request.lastName);
    const key = request.publicKey?.trim() ? parsePublicKey(request.publicKey) : null;
    const defs = await this.loginDefs();
    const done: string[] = [];
    let user = await this.lookupUser(name);
    this.#refuseProtected(name, user, { defs, verb: "change", agentUser: request.agentUser });
    if (!user) {
      user = await this.#createUser(name, gecos, defs);
      done.push(`created user ${name}`);
    }
    // Keys before sudo rights: a refused (planted) link must stop the escalation too.
    if (key) done.push(...await this.#installKey(user, key));
    done.push(...await this.#setAdministrator(user, request.administrator, request.agentUser));
    for (const change of done) log.info("add_user {name}: {change}", { name, change });
    return done;
  }

  /** Removes a user, its home, mail spool and own sudoers drop-in (spec 2.5); a missing user is fine. */
  async removeUser(userName: string, options: RemoveUserOptions = {}): Promise<string[]> {
    const name = checkUserName(userName);
    const user = await this.lookupUser(name);
    const defs = await this.loginDefs();
    this.#refuseProtected(name, user, { defs, verb: "remove", agentUser: options.agentUser });
    // Also without the user: a stale drop-in would make a future user of this name an administrator.
    const done = await this.#removeOwnDropIn(name);
    done.push(user ? await this.#deleteUser(user) : `user ${name} does not exist`);
    log.info("remove_user {name}: {done}", { name, done: done.join("; ") });
    return done;
  }

  /** Kills the user's processes and runs userdel -r; returns what was done. */
  async #deleteUser(user: PasswdEntry): Promise<string> {
    const name = user.name;
    // userdel refuses while the user has processes; kill them first (the original's pkill -9).
    for (let attempt = 1;; attempt++) {
      await this.#killProcesses(user);
      const result = await this.#run.check(["userdel", ...this.#rootArgs(), "-r", "--", name], {
        privileged: true,
        okCodes: [0, 6, 8, 12],
      });
      if (result.code === 8 && attempt < 3) continue;
      if (result.code === 8) {
        throw new AccountError(
          `'${name}' is still logged in after its processes were killed; retry`,
        );
      }
      if (result.code === 12) {
        // Like the original: the account is gone even if its home or mail spool could not be.
        log.warn("remove_user {name}: {problem}", { name, problem: result.stderr.trim() });
        return `removed user ${name} (${result.stderr.trim()})`;
      }
      return `removed user ${name} with its home and mail spool`;
    }
  }

  /** The fields of `name`'s line in a colon-separated file of the root, if it has at least `fields`. */
  async #findEntry(file: string, name: string, fields: number): Promise<string[] | undefined> {
    const text = await Deno.readTextFile(this.#path(file));
    return text.split("\n").map((line) => line.split(":")).find((f) =>
      f.length >= fields && f[0] === name
    );
  }

  /** A path inside the root. */
  #path(path: string): string {
    return pathUnderRoot(this.root, path);
  }

  /** `--root DIR` for the shadow tools, omitted on the live system so that narrow sudo rules still match. */
  #rootArgs(): string[] {
    return this.root === "/" ? [] : ["--root", this.root];
  }

  /** Throws for root, the agent's own user and system accounts; `user` is undefined for a new name. */
  #refuseProtected(
    name: string,
    user: PasswdEntry | undefined,
    rule: { defs: LoginDefs; verb: "change" | "remove"; agentUser?: string | null },
  ): void {
    const refuse = (why: string) => {
      throw new AccountError(`refusing to ${rule.verb} '${name}': ${why}`);
    };
    if (name === "root" || user?.uid === 0) refuse("it is the superuser account");
    if (name === rule.agentUser || (user && user.uid === this.#selfUid)) {
      refuse("the agent itself runs as this user");
    }
    if (!user) return;
    const defs = rule.defs;
    if (user.uid < defs.uidMin) {
      refuse(`it is a system account (uid ${user.uid} is below UID_MIN ${defs.uidMin})`);
    }
    if (user.uid === NOBODY_UID) refuse(`it is the system account 'nobody' (uid ${NOBODY_UID})`);
  }

  async #createUser(name: string, gecos: string, defs: LoginDefs): Promise<PasswdEntry> {
    const group = await this.lookupGroup(name);
    if (group && group.gid < defs.gidMin) {
      throw new AccountError(
        `cannot create user '${name}': a system group of that name exists (gid ${group.gid}) ` +
          `and the new user would become a member of it; choose another user name`,
      );
    }
    // Exit code 9 means "already exists": another request created it meanwhile.
    if (!group) {
      await this.#run.check(["groupadd", ...this.#rootArgs(), "--", name], {
        privileged: true,
        okCodes: [0, 9],
      });
    }
    await this.#run.check([
      "useradd",
      ...this.#rootArgs(),
      "-d",
      `/home/${name}`,
      "-g",
      name,
      "-s",
      "/bin/bash",
      "-c",
      gecos,
      "-m",
      "--",
      name,
    ], { privileged: true, okCodes: [0, 9] });
    const user = await this.lookupUser(name);
    if (!user) {
      throw new AccountError(`useradd reported success but '${name}' is not in /etc/passwd`);
    }
    return user;
  }

  /** Appends the key once to ~/.ssh/authorized_keys, working as the user and refusing links. */
  async #installKey(user: PasswdEntry, key: string): Promise<string[]> {
    if (!user.home.startsWith("/") || user.home === "/") {
      throw new AccountError(
        `the home directory of '${user.name}' is '${user.home}'; give the user a home under ` +
          `/home (usermod -d) and retry`,
      );
    }
    const home = this.#path(user.home);
    const homeInfo = await statPath(this.#run, home);
    if (homeInfo?.kind !== "directory") {
      throw new AccountError(
        `the home directory ${home} of '${user.name}' is missing or not a directory; create it ` +
          `(owned by ${user.name}) and retry`,
      );
    }
    const asUser: RunAs = { uid: user.uid, gid: user.gid };
    const done: string[] = [];
    const sshDir = join(home, ".ssh");
    const dirInfo = await statPath(this.#run, sshDir);
    if (!dirInfo) {
      await this.#run.check(["mkdir", "-m", "0700", "--", sshDir], { asUser });
      done.push(`created ${sshDir}`);
    } else {
      refuseUnsafe(dirInfo, sshDir, "directory");
      if (dirInfo.uid !== user.uid || dirInfo.gid !== user.gid) {
        // -h changes a link itself, never its target, should the user swap one in meanwhile.
        await this.#run.check(["chown", "-h", `${user.uid}:${user.gid}`, "--", sshDir], {
          privileged: true,
        });
      }
      if (dirInfo.mode !== 0o700) {
        await this.#run.check(["chmod", "0700", "--", sshDir], { asUser });
      }
    }
    const keysPath = join(sshDir, "authorized_keys");
    const keysInfo = await statPath(this.#run, keysPath);
    let current = "";
    if (keysInfo) {
      refuseUnsafe(keysInfo, keysPath, "file");
      if (keysInfo.uid !== user.uid) {
        throw new AccountError(
          `${keysPath} is owned by uid ${keysInfo.uid}, not by '${user.name}'; give it to the ` +
            `user (chown ${user.name} ${keysPath}) and retry`,
        );
      }
      const read = await this.#run.check(["cat", "--", keysPath], { asUser });
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
      await this.#run.check(
        ["dd", `of=${keysPath}`, "oflag=append", "conv=notrunc", "status=none"],
        { asUser, stdin: `${separator}${key}\n` },
      );
      done.push(`added the SSH key to ${keysPath}`);
    }
    if (keysInfo?.mode !== 0o600) {
      await this.#run.check(["chmod", "0600", "--", keysPath], { asUser });
    }
    await this.#restoreSecurityContext(sshDir);
    return done;
  }

  /** Relabels ~/.ssh on SELinux systems, as the original did, so that sshd may read it. */
  async #restoreSecurityContext(sshDir: string): Promise<void> {
    if (this.root !== "/") return;
    try {
      await Deno.stat("/sys/fs/selinux/enforce");
    } catch {
      return;
    }
    await this.#run.check(["restorecon", "-R", "--", sshDir], { privileged: true });
  }

  /** Installs or removes /etc/sudoers.d/<u> and the agent-group membership. */
  async #setAdministrator(
    user: PasswdEntry,
    administrator: boolean,
    agentUser: string | null | undefined,
  ): Promise<string[]> {
    const name = user.name;
    const dir = this.#path("/etc/sudoers.d");
    const done: string[] = [];
    const group = agentUser ? await this.lookupGroup(agentUser) : undefined;
    if (administrator) {
      if ((await statPath(this.#run, dir))?.kind !== "directory") {
        throw new AccountError(
          `administrator rights need sudo's drop-in directory ${dir}, which does not exist; ` +
            `install the sudo package and retry`,
        );
      }
      const dropIn = join(dir, name);
      const info = await statPath(this.#run, dropIn);
      const current = info ? await this.#readOwnDropIn(dropIn, info, name) : null;
      if (info && current === null) {
        throw new AccountError(
          `${dropIn} already exists and holds rules that are not only for '${name}'; move it ` +
            `aside and retry`,
        );
      }
      const wanted = sudoersRule(name);
      if (current !== wanted || info?.mode !== 0o440 || info.uid !== 0 || info.gid !== 0) {
        await this.#run.installFile(dropIn, wanted, {
          mode: 0o440,
          validate: (staged) => this.#visudo(staged, name),
        });
        done.push(`granted administrator rights (${dropIn})`);
      }
      // -a appends: the original's plain -G replaced every other supplementary group.
      if (group && !group.members.includes(name)) {
        await this.#run.check(
          ["usermod", ...this.#rootArgs(), "-a", "-G", group.name, "--", name],
          { privileged: true },
        );
        done.push(`added ${name} to group ${group.name}`);
      }
    } else {
      done.push(...await this.#removeOwnDropIn(name));
      if (group?.members.includes(name)) {
        await this.#run.check(["gpasswd", ...this.#rootArgs(), "-d", name, group.name], {
          privileged: true,
        });
        done.push(`removed ${name} from group ${group.name}`);
      }
    }
    return done;
  }

  /** The content of a drop-in if it is a regular file holding only rules for `name`, else null. */
  async #readOwnDropIn(path: string, info: PathInfo, name: string): Promise<string | null> {
    if (info.kind !== "file") return null;
    const content = (await this.#run.check(["cat", "--", path], { privileged: true })).stdout;
    return isOwnDropIn(content, name) ? content : null;
  }

  /** Deletes /etc/sudoers.d/<name> when it is that user's own; a foreign file is left alone. */
  async #removeOwnDropIn(name: string): Promise<string[]> {
    const dropIn = join(this.#path("/etc/sudoers.d"), name);
    const info = await statPath(this.#run, dropIn);
    if (!info) return [];
    if (await this.#readOwnDropIn(dropIn, info, name) === null) {
      log.warn("left {path} in place: it holds rules that are not only for {name}", {
        path: dropIn,
        name,
      });
      return [`left ${dropIn} in place because it holds rules for others`];
    }
    await this.#run.check(["rm", "-f", "--", dropIn], { privileged: true });
    return [`removed administrator rights (${dropIn})`];
  }

  async #visudo(stagedPath: string, name: string): Promise<void> {
    const result = await this.#run.run(["visudo", "-c", "-q", "-f", stagedPath], {
      privileged: true,
    });
    if (result.code !== 0) {
      throw new AccountError(
        `visudo rejected the sudoers rule for '${name}' (${
          (result.stderr || result.stdout).trim()
        }); nothing was changed`,
      );
    }
  }

  /** Kills every process whose effective or real uid is the user's, until none is left. */
  async #killProcesses(user: PasswdEntry): Promise<void> {
    for (let round = 0; round < 20; round++) {
      let found = false;
      for (const flag of ["-u", "-U"]) {
        const result = await this.#run.check(["pkill", "-KILL", flag, String(user.uid)], {
          privileged: true,
          okCodes: [0, 1],
        });
        found ||= result.code === 0;
      }
      if (!found) return;
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    throw new AccountError(
      `processes of '${user.name}' keep starting again after being killed; stop what starts ` +
        `them and retry`,
    );
  }
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

/** The reply text of an expected failure (a refusal or a failed tool), or null for a bug. */
export function describeFailure(err: unknown): string | null {
  const expected = err instanceof AccountError || err instanceof ToolError ||
    err instanceof ArgumentError;
  return expected ? err.message : null;
}
