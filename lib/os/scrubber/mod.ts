/**
 * The image scrubber (`dcm-agent scrub`, and `clean_image`): deletes
 * histories, keys, leases, logs and the agent's traces from a system root
 * before it becomes an image, after saving every file in a recovery archive
 * when asked. Loaded by path, on first use.
 */
import { getLogger } from "../../logging/mod.ts";
import { join } from "node:path";
import { type PlanOptions, planScrub, resolveNoLinks, type SkippedPath } from "./plan.ts";
import { buildRecoveryArchive } from "./recovery.ts";

export type { PlanOptions, ScrubPlan, ScrubSelection, SkippedPath } from "./plan.ts";
export { planScrub } from "./plan.ts";
export { publicKeyPem } from "./recovery.ts";

const log = getLogger(["dcm", "agent", "scrubber"]);

/** Options for {@linkcode scrub}. */
export interface ScrubOptions extends PlanOptions {
  /** List what would be deleted; delete nothing and write no archive. */
  dryRun?: boolean;
  /** Save every file in this recovery archive (a host path) before deleting it. */
  rescueFile?: string | null;
  /** RSA public key text (ssh-rsa line or PEM) that encrypts the archive. */
  publicKey?: string | null;
  /** Directory for staging files. */
  tempDir?: string;
}

/** What a scrub did (or, in a dry run, would do). */
export interface ScrubResult {
  /** Absolute paths inside the root, sorted: deleted, or to be deleted in a dry run. */
  files: string[];
  skipped: SkippedPath[];
  /** The archive written, if any, and whether it is encrypted. */
  rescueFile: string | null;
  encrypted: boolean;
}

/** Scrubs the root; throws (having deleted nothing) if the archive cannot be written, or after trying every file if some could not be deleted. */
export async function scrub(options: ScrubOptions): Promise<ScrubResult> {
  if (options.publicKey && !options.rescueFile) {
    throw new Error("a public key was given without a rescue file; add -r FILE or drop -e");
  }
  const plan = planScrub(options);
  const result: ScrubResult = {
    files: plan.files,
    skipped: plan.skipped,
    rescueFile: null,
    encrypted: false,
  };
  if (options.dryRun) return result;
  if (options.rescueFile) {
    const { encrypted } = await buildRecoveryArchive(options.root, plan.files, {
      rescueFile: options.rescueFile,
      publicKey: options.publicKey,
      tempDir: options.tempDir,
    });
    result.rescueFile = options.rescueFile;
    result.encrypted = encrypted;
  }
  const failures: string[] = [];
  for (const path of plan.files) {
    // Checked again just before the delete: a link swapped in since the plan is refused.
    const r = resolveNoLinks(options.root, path);
    try {
      if ("link" in r) throw new Error(`the path now goes through the symbolic link ${r.link}`);
      if (!Deno.lstatSync(r.host).isFile) throw new Error("it is no longer a regular file");
      Deno.removeSync(r.host);
      log.debug("scrub deleted {path}", { path });
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) continue;
      failures.push(`${path}: ${(err as Error).message}`);
    }
  }
  if (failures.length) {
    throw new Error(
      `the scrubber could not delete ${failures.length} file(s): ${failures.join("; ")}`,
    );
  }
  return result;
}

/**
 * Empties the agent's log files in `logsDir` (the files stay, as the agent
 * holds them open) and deletes rotated ones (`name.1`, `name.2.gz`, …).
 */
export function truncateAgentLogs(logsDir: string): string[] {
  const done: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(logsDir)];
  } catch {
    return done;
  }
  for (const e of entries) {
    if (!e.isFile) continue;
    const path = join(logsDir, e.name);
    if (/\.\d+(\.gz)?$|\.gz$/.test(e.name)) {
      Deno.removeSync(path);
    } else {
      Deno.truncateSync(path, 0);
    }
    done.push(path);
  }
  return done.sort();
}
