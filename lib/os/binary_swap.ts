/**
 * Replaces the agent's executable safely (`dcm-agent upgrade-binary`): the
 * new file is staged beside the old one, checked (SHA-256, answers
 * `--version`), swapped in by rename with the previous executable kept as
 * `<target>.previous`, and the service is restarted. The new agent confirms
 * by recording its first handshake in secure/upgrade.json; without that
 * confirmation in time the previous executable is put back and restarted.
 * Loaded by path, on first use.
 */
import { basename, dirname, join } from "node:path";
import { syncDirectory } from "./atomic_file.ts";
import { downloadOrThrow, sha256File } from "./download.ts";
import { runProcess } from "./process_runner.ts";
import { serviceAction, type ServiceManager } from "./service.ts";
import { readUpgrade, type UpgradeRecord, writeUpgrade } from "./upgrade_state.ts";

const VERSION_TIMEOUT_MS = 60_000;
/** How long the server may stay silent while a new executable downloads. */
const DOWNLOAD_STALL_MS = 60_000;
/** Largest executable accepted (the agent's binary is about 100 MB). */
const MAX_BINARY_BYTES = 1024 * 1024 * 1024;
const POLL_MS = 250;

/** A checked new executable, staged beside the target. */
export interface StagedBinary {
  /** `<target>.new` */
  path: string;
  /** What it answered to `--version`. */
  version: string;
}

/** Options for {@linkcode stageBinary}. */
export interface StageOptions {
  /** The executable to replace. */
  target: string;
  /** Expected SHA-256 hex digest; a mismatch refuses. */
  sha256?: string | null;
}

/** Fetches (path, file:// or http(s) URL) and checks the new executable; throws, leaving nothing behind, when it is not fit. */
export async function stageBinary(source: string, options: StageOptions): Promise<StagedBinary> {
  const staged = `${options.target}.new`;
  try {
    if (/^https?:\/\//i.test(source)) {
      await downloadOrThrow(new URL(source), staged, {
        connectTimeoutMs: DOWNLOAD_STALL_MS,
        maxBytes: MAX_BINARY_BYTES,
      });
    } else {
      const path = source.startsWith("file://")
        ? decodeURIComponent(new URL(source).pathname)
        : source;
      await Deno.copyFile(path, staged);
    }
    if (options.sha256) {
      const actual = await sha256File(staged);
      if (actual !== options.sha256.trim().toLowerCase()) {
        throw new Error(
          `the checksum does not match: expected ${options.sha256}, got ${actual}; nothing was changed`,
        );
      }
    }
    await Deno.chmod(staged, 0o755);
    const r = await runProcess([staged, "--version"], {
      env: {},
      timeoutMs: VERSION_TIMEOUT_MS,
      maxOutputBytes: 4096,
    });
    const version = /^Version (\S+)/m.exec(r.stdout)?.[1];
    if (r.code !== 0 || !version) {
      throw new Error(
        `the new executable does not answer '--version' as dcm-agent does (exit ${r.code}: ` +
          `${(r.stdout + r.stderr).trim().slice(0, 200)}); nothing was changed`,
      );
    }
    return { path: staged, version };
  } catch (err) {
    await Deno.remove(staged).catch(() => {});
    throw err;
  }
}

/**
 * Takes `<target>.upgrade-lock` for this process, waiting up to `waitMs`
 * while a live upgrade-binary holds it (a stale one, of a dead process, is
 * taken over); throws when it stays held. Returns the release function.
 */
export async function lockUpgrade(
  target: string,
  options: { waitMs?: number } = {},
): Promise<() => void> {
  const lock = `${target}.upgrade-lock`;
  const deadline = Date.now() + (options.waitMs ?? 0);
  for (;;) {
    try {
      Deno.writeTextFileSync(lock, `${Deno.pid}\n`, { createNew: true });
      return () => {
        try {
          if (Deno.readTextFileSync(lock).trim() === String(Deno.pid)) Deno.removeSync(lock);
        } catch { /* already gone */ }
      };
    } catch (err) {
      if (!(err instanceof Deno.errors.AlreadyExists)) throw err;
    }
    let holder = 0;
    try {
      holder = Number(Deno.readTextFileSync(lock).trim());
    } catch { /* released meanwhile */ }
    if (!(holder > 0 && isAlive(holder))) {
      await Deno.remove(lock).catch(() => {});
    } else if (Date.now() >= deadline) {
      throw new Error(
        `another upgrade-binary (pid ${holder}) is replacing ${target}; wait for it to finish`,
      );
    } else {
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
  }
}

function isAlive(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return true;
  } catch {
    return false;
  }
}

/** Options for {@linkcode swapAndWatch}. */
export interface SwapOptions {
  target: string;
  /** The agent's base directory (secure/upgrade.json). */
  baseDir: string;
  service: ServiceManager;
  /** The running agent's version. */
  fromVersion: string;
  /** How long the new agent has to reach the manager. */
  timeoutMs: number;
  /** Progress lines. */
  log(line: string): void;
}

/** Swaps the staged executable in, restarts, waits for the handshake, rolls back otherwise; returns the final record. */
export async function swapAndWatch(
  staged: StagedBinary,
  options: SwapOptions,
): Promise<UpgradeRecord> {
  const { target, baseDir } = options;
  const previous = `${target}.previous`;
  replaceByLink(target, previous);
  const record = (state: UpgradeRecord["state"], reason?: string): UpgradeRecord => {
    const now = new Date().toISOString();
    const r: UpgradeRecord = {
      state,
      target,
      fromVersion: options.fromVersion,
      toVersion: staged.version,
      swappedAt: now,
      updatedAt: now,
      ...(reason ? { reason } : {}),
    };
    writeUpgrade(baseDir, r);
    return r;
  };
  Deno.renameSync(staged.path, target);
  syncDirectory(dirname(target));
  // Written after the swap: a crash before it leaves no claim of an upgrade.
  record("pending");
  options.log(`swapped in ${target} (version ${staged.version}); previous kept as ${previous}`);

  let reason = await restartAndWait(options, "upgraded");
  if (reason === null) {
    options.log("the new agent reached the manager: upgrade complete");
    return readUpgrade(baseDir)!;
  }
  options.log(`${reason}; rolling back to ${previous}`);
  Deno.renameSync(target, `${target}.failed`);
  replaceByLink(previous, target);
  syncDirectory(dirname(target));
  record("rolling_back", reason);
  const again = await restartAndWait(options, "rolled_back");
  if (again === null) {
    options.log("the previous agent is back and reached the manager: rolled back");
    return readUpgrade(baseDir)!;
  }
  reason = `${reason}; after the rollback: ${again}`;
  options.log(reason);
  return record("failed", reason);
}

/** Restarts the service and waits for upgrade.json to reach `state`; null on success, else why not. */
async function restartAndWait(
  options: SwapOptions,
  state: "upgraded" | "rolled_back",
): Promise<string | null> {
  try {
    await serviceAction(options.service, "restart");
  } catch (err) {
    // The agent's own confirmation wins over a restart command that complained late.
    if (readUpgrade(options.baseDir)?.state === state) return null;
    return `the restart failed: ${(err as Error).message}`;
  }
  const deadline = Date.now() + options.timeoutMs;
  while (Date.now() < deadline) {
    if (readUpgrade(options.baseDir)?.state === state) return null;
    await new Promise((r) => setTimeout(r, POLL_MS));
  }
  return `the agent did not complete a handshake with the manager within ${
    options.timeoutMs / 1000
  } s`;
}

/** Makes `link` the same file as `existing` (hard link, else copy), replacing it atomically. */
function replaceByLink(existing: string, link: string): void {
  const tmp = join(dirname(link), `.${basename(link)}.tmp`);
  try {
    Deno.removeSync(tmp);
  } catch { /* not there */ }
  try {
    Deno.linkSync(existing, tmp);
  } catch {
    Deno.copyFileSync(existing, tmp);
  }
  Deno.renameSync(tmp, link);
}
