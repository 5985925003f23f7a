/**
 * Administrator rights: the user's own sudoers drop-in (/etc/sudoers.d/<user>,
 * checked with visudo before it is installed) and membership of the agent's
 * group.
 */
import { join } from "node:path";
import { getLogger } from "../../logging/mod.ts";
import type { PasswdEntry } from "../passwd.ts";
import { type PathInfo, statPath } from "../run_tool.ts";
import { type AccountsContext, pathIn, rootArgs } from "./context.ts";
import { AccountError } from "./errors.ts";
import { findGroup } from "./user_db.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

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

/** Installs or removes /etc/sudoers.d/<u> and the agent-group membership; returns what changed. */
export async function setAdministrator(
  ctx: AccountsContext,
  user: PasswdEntry,
  options: { administrator: boolean; agentUser: string | null | undefined },
): Promise<string[]> {
  const name = user.name;
  const agentUser = options.agentUser;
  const dir = pathIn(ctx, "/etc/sudoers.d");
  const done: string[] = [];
  const group = agentUser ? await findGroup(ctx, agentUser) : undefined;
  if (options.administrator) {
    if ((await statPath(ctx.run, dir))?.kind !== "directory") {
      throw new AccountError(
        `administrator rights need sudo's drop-in directory ${dir}, which does not exist; ` +
          `install the sudo package and retry`,
      );
    }
    const dropIn = join(dir, name);
    const info = await statPath(ctx.run, dropIn);
    const current = info ? await readOwnDropIn(ctx, dropIn, { info, name }) : null;
    if (info && current === null) {
      throw new AccountError(
        `${dropIn} already exists and holds rules that are not only for '${name}'; move it ` +
          `aside and retry`,
      );
    }
    const wanted = sudoersRule(name);
    if (current !== wanted || info?.mode !== 0o440 || info.uid !== 0 || info.gid !== 0) {
      await ctx.run.installFile(dropIn, wanted, {
        mode: 0o440,
        validate: (staged) => visudo(ctx, staged, name),
      });
      done.push(`granted administrator rights (${dropIn})`);
    }
    // -a appends: the original's plain -G replaced every other supplementary group.
    if (group && !group.members.includes(name)) {
      await ctx.run.check(
        ["usermod", ...rootArgs(ctx), "-a", "-G", group.name, "--", name],
        { privileged: true },
      );
      done.push(`added ${name} to group ${group.name}`);
    }
  } else {
    done.push(...await removeOwnDropIn(ctx, name));
    if (group?.members.includes(name)) {
      await ctx.run.check(["gpasswd", ...rootArgs(ctx), "-d", name, group.name], {
        privileged: true,
      });
      done.push(`removed ${name} from group ${group.name}`);
    }
  }
  return done;
}

/** Deletes /etc/sudoers.d/<name> when it is that user's own; a foreign file is left alone. */
export async function removeOwnDropIn(ctx: AccountsContext, name: string): Promise<string[]> {
  const dropIn = join(pathIn(ctx, "/etc/sudoers.d"), name);
  const info = await statPath(ctx.run, dropIn);
  if (!info) return [];
  if (await readOwnDropIn(ctx, dropIn, { info, name }) === null) {
    log.warn("left {path} in place: it holds rules that are not only for {name}", {
      path: dropIn,
      name,
    });
    return [`left ${dropIn} in place because it holds rules for others`];
  }
  await ctx.run.check(["rm", "-f", "--", dropIn], { privileged: true });
  return [`removed administrator rights (${dropIn})`];
}

/** The content of a drop-in if it is a regular file holding only rules for `name`, else null. */
async function readOwnDropIn(
  ctx: AccountsContext,
  path: string,
  of: { info: PathInfo; name: string },
): Promise<string | null> {
  if (of.info.kind !== "file") return null;
  const content = (await ctx.run.check(["cat", "--", path], { privileged: true })).stdout;
  return isOwnDropIn(content, of.name) ? content : null;
}

async function visudo(ctx: AccountsContext, stagedPath: string, name: string): Promise<void> {
  const result = await ctx.run.run(["visudo", "-c", "-q", "-f", stagedPath], {
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
