/** Writing the planned install tree: directories, all files at once, and ownership by the system user. */
import { dirname, join } from "node:path";
import { isDirectory, pathExists } from "../os/mod.ts";
import { type ConfigureArgs, UsageError } from "./options.ts";
import type { Plan } from "./plan.ts";
import {
  chownTree,
  isInside,
  lookupUser,
  makeDirectories,
  plannedDirectories,
  StagedFiles,
} from "./tree.ts";
import { renderAgentConf } from "./writer.ts";

/** Creates the tree, writes every file at once, and gives the tree to the system user. */
export function writeTree(
  plan: Plan,
  parsed: ConfigureArgs,
  hooks: { detail: (line: string) => void; warn: (w: string) => void },
): void {
  const scriptDir = plan.values.get("storage.script_dir") as string;
  const tempPath = plan.values.get("storage.temppath") ?? "/tmp";
  if (pathExists(plan.base) && !isDirectory(plan.base)) {
    throw new UsageError(
      `-p/--base-path: ${plan.base} exists and is not a directory; choose another base path`,
    );
  }
  const parents = [...plan.extraFiles.keys(), plan.logfile].map((f) => dirname(f));
  const dirs = plannedDirectories(plan.base, { scriptDir, tempPath, extraParents: parents });
  for (const dir of makeDirectories(dirs)) hooks.detail(`directory ${dir}`);

  const files = new StagedFiles();
  try {
    files.stage(plan.confFile, renderAgentConf(plan.values), 0o644);
    for (const [file, text] of plan.extraFiles) files.stage(file, text, 0o644);
    files.stage(join(scriptDir, "variables.sh"), variablesSh(plan.user, plan.base), 0o550);
    files.commit();
  } catch (error) {
    files.discard();
    throw new Error(
      `cannot write the configuration: ${
        (error as Error).message
      }; the previous files are unchanged. Run configure as root or check the base path`,
    );
  }
  for (const file of [plan.confFile, ...plan.extraFiles.keys(), join(scriptDir, "variables.sh")]) {
    hooks.detail(`wrote ${file}`);
  }
  giveToUser(plan, dirs.map((d) => d.path), parsed, hooks);
}

/** `chown -R user:user` of the tree (README, Installing on a VM); the base itself only, not whatever else is in it. */
function giveToUser(
  plan: Plan,
  dirs: string[],
  parsed: ConfigureArgs,
  hooks: { detail: (line: string) => void; warn: (w: string) => void },
): void {
  if (plan.user === "root") return;
  const ids = lookupUser(plan.user);
  if (!ids) {
    if (!parsed.initial) {
      hooks.warn(
        `system user '${plan.user}' does not exist, so ${plan.base} stays owned by ${
          Deno.uid() === 0 ? "root" : "you"
        }; create it (useradd --system --home-dir ${
          join(plan.base, "home")
        } --shell /bin/false ${plan.user}) and run configure again, or pass -U root`,
      );
    }
    return;
  }
  if (Deno.uid() !== 0) {
    if (ids.uid !== Deno.uid()) {
      hooks.warn(`cannot give ${plan.base} to '${plan.user}': configure is not running as root`);
    }
    return;
  }
  Deno.chownSync(plan.base, ids.uid, ids.gid);
  // Only the agent's own directories: a base path such as /opt may hold other software.
  for (const dir of dirs) {
    if (dir !== plan.base && isInside(dir, plan.base) && isDirectory(dir)) chownTree(dir, ids);
  }
  hooks.detail(`gave ${plan.base} to ${plan.user}`);
}

/** `bin/variables.sh`, sourced by scripts (README, Installing on a VM). */
function variablesSh(user: string, base: string): string {
  const quote = (v: string) => /^[A-Za-z0-9_./-]+$/.test(v) ? v : `'${v.replaceAll("'", `'\\''`)}'`;
  return `DCM_USER=${quote(user)}\nDCM_BASEDIR=${quote(base)}\n`;
}
