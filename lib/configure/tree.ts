/**
 * The install tree (README, Where every file lives): directories with their modes, files written
 * all-or-nothing (every file is staged next to its target first, then all are
 * renamed into place), and ownership by the system user.
 */
import { join } from "node:path";
import { isDirectory, pathExists } from "../os/mod.ts";
import { lookupUser as lookupPasswdUser, writeTempBeside } from "../os/mod.ts";

/** A directory of the install tree. */
export interface TreeDirectory {
  path: string;
  mode: number;
  /** Only create it (and set the mode then); never chmod an existing one. */
  createOnly?: boolean;
}

/** Options for {@linkcode plannedDirectories}. */
export interface TreeOptions {
  scriptDir: string;
  tempPath: string;
  /** Directories of files written outside the tree (e.g. a -l log file elsewhere). */
  extraParents?: readonly string[];
}

/** The directories and modes (README, Where every file lives) for base path `base`. */
export function plannedDirectories(base: string, options: TreeOptions): TreeDirectory[] {
  const dirs: TreeDirectory[] = [
    { path: base, mode: 0o755 },
    { path: join(base, "bin"), mode: 0o750 },
    { path: options.scriptDir, mode: 0o750 },
    { path: join(base, "etc"), mode: 0o700 },
    { path: join(base, "logs"), mode: 0o700 },
    { path: join(base, "home"), mode: 0o750 },
    { path: join(base, "secure"), mode: 0o700 },
    // The temp path is world-writable and sticky like /tmp. An existing one
    // outside the base (by default /tmp itself) is shared and left alone.
    { path: options.tempPath, mode: 0o1777, createOnly: !isInside(options.tempPath, base) },
  ];
  for (const parent of options.extraParents ?? []) {
    dirs.push({ path: parent, mode: 0o755, createOnly: true });
  }
  // script_dir is usually base/bin: the first entry for a path decides its mode.
  return dirs.filter((d, i) => dirs.findIndex((e) => e.path === d.path) === i);
}

/** Whether `path` is `dir` or lies below it. */
export function isInside(path: string, dir: string): boolean {
  return path === dir || path.startsWith(dir.endsWith("/") ? dir : `${dir}/`);
}

/** Creates the directories and sets their modes; returns the paths it created or chmod'ed. */
export function makeDirectories(dirs: readonly TreeDirectory[]): string[] {
  const touched: string[] = [];
  for (const dir of dirs) {
    const existed = isDirectory(dir.path);
    if (!existed) {
      try {
        Deno.mkdirSync(dir.path, { recursive: true });
      } catch (err) {
        throw new Error(
          `cannot create directory ${dir.path}: ${
            (err as Error).message
          }; run configure as root or choose another path`,
        );
      }
    }
    if (existed && dir.createOnly) continue;
    // chmod after mkdir because the umask narrows the mode given to mkdir.
    Deno.chmodSync(dir.path, dir.mode);
    touched.push(dir.path);
  }
  return touched;
}

interface StagedFile {
  target: string;
  temp: string;
}

/**
 * Files written together: `stage` writes each one to a temporary file in its
 * target directory, `commit` renames them all into place. A failure while
 * staging leaves every target untouched.
 */
export class StagedFiles {
  #files: StagedFile[] = [];

  /** Writes `text` to a temporary file beside `target`, with `mode`, synced to disk. */
  stage(target: string, text: string, mode: number): void {
    // A target that is a directory would only fail at commit, after other files were replaced.
    if (pathExists(target) && !Deno.statSync(target).isFile) {
      throw new Error(
        `${target} exists and is not a regular file; remove it or choose another path`,
      );
    }
    this.#files.push({ target, temp: writeTempBeside(target, text, mode) });
  }

  /** Renames every staged file onto its target. */
  commit(): void {
    for (const f of this.#files) Deno.renameSync(f.temp, f.target);
    this.#files = [];
  }

  /** Removes the staged files that were not committed. */
  discard(): void {
    for (const f of this.#files) {
      try {
        Deno.removeSync(f.temp);
      } catch { /* never created, or already renamed */ }
    }
    this.#files = [];
  }
}

/** A system user's ids. */
export interface UserIds {
  uid: number;
  gid: number;
}

/** Looks a user up with getent (so NSS users count), else in /etc/passwd; undefined if unknown. */
export function lookupUser(name: string): UserIds | undefined {
  const entry = lookupPasswdUser(name);
  return entry && { uid: entry.uid, gid: entry.gid };
}

/** `chown -R uid:gid dir`, without following symbolic links. */
export function chownTree(dir: string, ids: UserIds): void {
  Deno.chownSync(dir, ids.uid, ids.gid);
  for (const entry of Deno.readDirSync(dir)) {
    const path = join(dir, entry.name);
    if (entry.isDirectory) chownTree(path, ids);
    else if (!entry.isSymlink) Deno.chownSync(path, ids.uid, ids.gid);
  }
}
