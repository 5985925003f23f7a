/**
 * One agent per base directory: `run` takes an exclusive advisory lock
 * (flock) on `<base>/dcm-agent.lock` before anything else and keeps it for
 * the life of the process. The kernel drops the lock when the process dies,
 * however it dies, so a stale lock file never blocks a restart. Deno opens
 * files close-on-exec, so scripts the agent starts (which may outlive it) do
 * not inherit the lock. The file holds the owner's pid and config files so a
 * second `run` can say who is running.
 */
import { join } from "node:path";

/** The lock file's name inside the base directory. */
export const LOCK_FILE_NAME = "dcm-agent.lock";

/** Who holds the lock, as written in the lock file. */
export interface LockOwner {
  pid: number | null;
  configFiles: string[];
}

/** An acquired lock; release it (or exit) to let another agent start. */
export interface InstanceLock {
  /** The lock file. */
  file: string;
  /** Releases the lock (the file stays: removing it would race with a starting agent). */
  release(): void;
}

/** The lock is held by another process. */
export class AlreadyRunningError extends Error {
  /** The running agent, as its lock file says (pid null when it could not be read). */
  owner: LockOwner;
  constructor(file: string, owner: LockOwner) {
    const who = owner.pid === null ? "another agent" : `another agent (pid ${owner.pid})`;
    const conf = owner.configFiles.length
      ? ` with ${owner.configFiles.join(", ")}`
      : " (its config file is not known)";
    super(
      `${who} is already running on this base directory${conf} (lock ${file}); ` +
        "stop it first (systemctl stop dcm-agent, or kill that pid), or give this agent " +
        "its own [storage] base_dir",
    );
    this.name = "AlreadyRunningError";
    this.owner = owner;
  }
}

/** Takes the base directory's lock or throws {@linkcode AlreadyRunningError}; creates the directory if needed. */
export function acquireInstanceLock(
  baseDir: string,
  options: { configFiles: string[] },
): InstanceLock {
  Deno.mkdirSync(baseDir, { recursive: true });
  const file = join(baseDir, LOCK_FILE_NAME);
  // No truncate on open: the owner's details must survive a failed attempt.
  const fh = Deno.openSync(file, { read: true, write: true, create: true, mode: 0o644 });
  if (!fh.tryLockSync(true)) {
    fh.close();
    throw new AlreadyRunningError(file, readLockOwner(file));
  }
  const text = `pid=${Deno.pid}\n` + options.configFiles.map((f) => `config=${f}\n`).join("");
  fh.truncateSync(0);
  fh.seekSync(0, Deno.SeekMode.Start);
  const bytes = new TextEncoder().encode(text);
  for (let done = 0; done < bytes.length;) done += fh.writeSync(bytes.subarray(done));
  let released = false;
  return {
    file,
    release() {
      if (released) return;
      released = true;
      try {
        fh.truncateSync(0);
      } catch { /* read-only or gone: the lock still goes with the descriptor */ }
      fh.close();
    },
  };
}

/** Reads the owner written in a lock file; fields it cannot read are null/empty. */
export function readLockOwner(file: string): LockOwner {
  let text = "";
  try {
    text = Deno.readTextFileSync(file);
  } catch { /* not there */ }
  const pid = /^pid=(\d+)$/m.exec(text)?.[1];
  const configFiles = [...text.matchAll(/^config=(.*)$/gm)].map((m) => m[1]);
  return { pid: pid ? Number(pid) : null, configFiles };
}

/** Removes the pid file only when it holds this process's pid (never another agent's). */
export function removeOwnPidFile(file: string): void {
  try {
    if (Deno.readTextFileSync(file).trim() === String(Deno.pid)) Deno.removeSync(file);
  } catch { /* already gone */ }
}
