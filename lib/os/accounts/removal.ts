/**
 * Deleting a user: its processes are killed (userdel refuses while any run),
 * then userdel -r removes the account with its home and mail spool.
 */
import { getLogger } from "../../logging/mod.ts";
import type { PasswdEntry } from "../passwd.ts";
import { type AccountsContext, rootArgs } from "./context.ts";
import { AccountError } from "./errors.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

/** Kills the user's processes and runs userdel -r; returns what was done. */
export async function deleteUser(ctx: AccountsContext, user: PasswdEntry): Promise<string> {
  const name = user.name;
  // userdel refuses while the user has processes; kill them first (the original's pkill -9).
  for (let attempt = 1;; attempt++) {
    await killProcesses(ctx, user);
    const result = await ctx.run.check(["userdel", ...rootArgs(ctx), "-r", "--", name], {
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

/** Kills every process whose effective or real uid is the user's, until none is left. */
async function killProcesses(ctx: AccountsContext, user: PasswdEntry): Promise<void> {
  for (let round = 0; round < 20; round++) {
    let found = false;
    for (const flag of ["-u", "-U"]) {
      const result = await ctx.run.check(["pkill", "-KILL", flag, String(user.uid)], {
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
