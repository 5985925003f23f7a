/**
 * The user and group databases: `/etc/passwd` and `/etc/group` under a root,
 * and name service (NSS) look-ups through `getent`. Every read of these files
 * in the agent goes through this module.
 */
import { pathUnderRoot } from "./system_adapter.ts";

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

/** Where to read the files: the system root, "/" unless a test gives a throw-away one. */
export interface PasswdOptions {
  root?: string;
}

/** Parses passwd text; malformed lines are skipped. */
export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 7 || f[0] === "" || !/^\d+$/.test(f[2]) || !/^\d+$/.test(f[3])) continue;
    out.push({
      name: f[0],
      uid: Number(f[2]),
      gid: Number(f[3]),
      gecos: f[4],
      home: f[5],
      shell: f[6],
    });
  }
  return out;
}

/** Parses group text; malformed lines are skipped. */
export function parseGroups(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(":");
    if (f.length < 4 || f[0] === "" || !/^\d+$/.test(f[2])) continue;
    out.push({ name: f[0], gid: Number(f[2]), members: f[3].split(",").filter((m) => m !== "") });
  }
  return out;
}

/** The entries of the root's /etc/passwd; empty when it cannot be read. */
export function readPasswd(options: PasswdOptions = {}): PasswdEntry[] {
  return parsePasswd(readOrEmpty(pathUnderRoot(options.root ?? "/", "/etc/passwd")));
}

/** The entries of the root's /etc/group; empty when it cannot be read. */
export function readGroups(options: PasswdOptions = {}): GroupEntry[] {
  return parseGroups(readOrEmpty(pathUnderRoot(options.root ?? "/", "/etc/group")));
}

/** The name of a numeric user id in the local file, or undefined. */
export function userNameOf(uid: number, options: PasswdOptions = {}): string | undefined {
  return readPasswd(options).find((e) => e.uid === uid)?.name;
}

/**
 * Looks a user up with `getent` (so NSS users such as LDAP ones count), else in
 * the local /etc/passwd; undefined when unknown.
 */
export function lookupUser(name: string): PasswdEntry | undefined {
  try {
    const out = new Deno.Command("getent", {
      args: ["passwd", name],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (!out.success) return undefined;
    return parsePasswd(new TextDecoder().decode(out.stdout)).find((e) => e.name === name);
  } catch {
    // No getent on this system: the local file is all there is.
    return readPasswd().find((e) => e.name === name);
  }
}

function readOrEmpty(path: string): string {
  try {
    return Deno.readTextFileSync(path);
  } catch {
    return "";
  }
}

/** The entries of the root's /etc/passwd, read asynchronously; throws when it cannot be read. */
export async function loadPasswd(options: PasswdOptions = {}): Promise<PasswdEntry[]> {
  return parsePasswd(await Deno.readTextFile(pathUnderRoot(options.root ?? "/", "/etc/passwd")));
}

/** The entries of the root's /etc/group, read asynchronously; throws when it cannot be read. */
export async function loadGroups(options: PasswdOptions = {}): Promise<GroupEntry[]> {
  return parseGroups(await Deno.readTextFile(pathUnderRoot(options.root ?? "/", "/etc/group")));
}
