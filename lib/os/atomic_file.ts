/**
 * Crash-safe file replacement: readers see either the old or the new content,
 * never a mix (the original rewrote its token file in place
 * without truncating it).
 */
import { basename, dirname, join } from "node:path";

/** Options for {@linkcode writeFileAtomic}. */
export interface AtomicWriteOptions {
  /** File mode of the result; default: the old file's mode, or 0644 for a new file. */
  mode?: number;
}

/** Replaces `path` with `data` atomically: temp file, fsync, chmod, rename, fsync directory. */
export function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  options: AtomicWriteOptions = {},
): void {
  const dir = dirname(path);
  const mode = options.mode ?? existingMode(path) ?? 0o644;
  let tmp: string | undefined;
  try {
    tmp = writeTempBeside(path, data, mode);
    Deno.renameSync(tmp, path);
  } catch (err) {
    if (tmp) {
      try {
        Deno.removeSync(tmp);
      } catch { /* already gone */ }
    }
    throw new Error(
      `cannot write ${path}: ${(err as Error).message}; check that ${dir} exists and is writable`,
      { cause: err },
    );
  }
  syncDirectory(dir);
}

/**
 * Writes `data` to a new temporary file in `path`'s directory (so a rename
 * stays on one file system), synced to disk with `mode`; returns its name.
 * A failure leaves no temporary file behind.
 */
export function writeTempBeside(path: string, data: string | Uint8Array, mode: number): string {
  const bytes = typeof data === "string" ? new TextEncoder().encode(data) : data;
  const tmp = join(dirname(path), `.${basename(path)}.${crypto.randomUUID()}.tmp`);
  try {
    const file = Deno.openSync(tmp, { write: true, createNew: true, mode: 0o600 });
    try {
      let written = 0;
      while (written < bytes.length) written += file.writeSync(bytes.subarray(written));
      file.syncSync();
    } finally {
      file.close();
    }
    // chmod after creation because the umask may have narrowed the create mode.
    Deno.chmodSync(tmp, mode);
    return tmp;
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch { /* never created */ }
    throw err;
  }
}

function existingMode(path: string): number | undefined {
  try {
    const mode = Deno.statSync(path).mode;
    return mode === null ? undefined : mode & 0o7777;
  } catch {
    return undefined;
  }
}

/** Makes a rename in `dir` durable (best effort: some file systems refuse fsync on directories). */
export function syncDirectory(dir: string): void {
  let handle: Deno.FsFile | undefined;
  try {
    handle = Deno.openSync(dir, { read: true });
    handle.syncSync();
  } catch {
    /* best effort: the data itself is already on disk */
  } finally {
    handle?.close();
  }
}
