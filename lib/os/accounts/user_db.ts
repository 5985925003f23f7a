/**
 * The user and group databases of the root: look-ups (parsed by passwd.ts),
 * the login.defs limits, the refusal of protected accounts, and user creation
 * with groupadd and useradd.
 */
import { type GroupEntry, loadGroups, loadPasswd, type PasswdEntry } from "../passwd.ts";
import { type AccountsContext, pathIn, rootArgs } from "./context.ts";
import { AccountError } from "./errors.ts";

/** The /etc/login.defs limits that separate system accounts from people. */
export interface LoginDefs {
  uidMin: number;
  gidMin: number;
}

/** What a protected-account check needs besides the user. */
export interface ProtectionRule {
  defs: LoginDefs;
  verb: "change" | "remove";
  agentUser?: string | null;
  /** The uid the agent runs as, or null when unknown. */
  selfUid: number | null;
}

const MAX_NAME_PART_CHARS = 128;
// The overflow uid: a system account even though it is above UID_MAX.
const NOBODY_UID = 65534;

/** Reads the user `name` from the root's /etc/passwd. */
export async function findUser(
  ctx: AccountsContext,
  name: string,
): Promise<PasswdEntry | undefined> {
  return (await loadPasswd({ root: ctx.root })).find((e) => e.name === name);
}

/** Reads the group `name` from the root's /etc/group. */
export async function findGroup(
  ctx: AccountsContext,
  name: string,
): Promise<GroupEntry | undefined> {
  return (await loadGroups({ root: ctx.root })).find((e) => e.name === name);
}

/** Reads UID_MIN and GID_MIN from the root's /etc/login.defs (1000 when unset). */
export async function readLoginDefs(ctx: AccountsContext): Promise<LoginDefs> {
  let text = "";
  try {
    text = await Deno.readTextFile(pathIn(ctx, "/etc/login.defs"));
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  const value = (key: string) => {
    const m = text.match(new RegExp(`^\\s*${key}\\s+(\\d+)\\s*$`, "m"));
    return m ? Number(m[1]) : 1000;
  };
  return { uidMin: value("UID_MIN"), gidMin: value("GID_MIN") };
}

/** Builds the GECOS field "first last"; throws AccountError for text useradd would misread. */
export function gecosOf(firstName: string | null, lastName: string | null): string {
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

/** Throws for root, the agent's own user and system accounts; `user` is undefined for a new name. */
export function refuseProtected(
  name: string,
  user: PasswdEntry | undefined,
  rule: ProtectionRule,
): void {
  const refuse = (why: string) => {
    throw new AccountError(`refusing to ${rule.verb} '${name}': ${why}`);
  };
  if (name === "root" || user?.uid === 0) refuse("it is the superuser account");
  if (name === rule.agentUser || (user && user.uid === rule.selfUid)) {
    refuse("the agent itself runs as this user");
  }
  if (!user) return;
  const defs = rule.defs;
  if (user.uid < defs.uidMin) {
    refuse(`it is a system account (uid ${user.uid} is below UID_MIN ${defs.uidMin})`);
  }
  if (user.uid === NOBODY_UID) refuse(`it is the system account 'nobody' (uid ${NOBODY_UID})`);
}

/** Creates the user `name` with its own group and a home under /home; returns its entry. */
export async function createUser(
  ctx: AccountsContext,
  name: string,
  options: { gecos: string; defs: LoginDefs },
): Promise<PasswdEntry> {
  const group = await findGroup(ctx, name);
  if (group && group.gid < options.defs.gidMin) {
    throw new AccountError(
      `cannot create user '${name}': a system group of that name exists (gid ${group.gid}) ` +
        `and the new user would become a member of it; choose another user name`,
    );
  }
  // Exit code 9 means "already exists": another request created it meanwhile.
  if (!group) {
    await ctx.run.check(["groupadd", ...rootArgs(ctx), "--", name], {
      privileged: true,
      okCodes: [0, 9],
    });
  }
  await ctx.run.check([
    "useradd",
    ...rootArgs(ctx),
    "-d",
    `/home/${name}`,
    "-g",
    name,
    "-s",
    "/bin/bash",
    "-c",
    options.gecos,
    "-m",
    "--",
    name,
  ], { privileged: true, okCodes: [0, 9] });
  const user = await findUser(ctx, name);
  if (!user) {
    throw new AccountError(`useradd reported success but '${name}' is not in /etc/passwd`);
  }
  return user;
}
