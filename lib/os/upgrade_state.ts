/**
 * Two small files in the secure directory that let `dcm-agent upgrade-binary`
 * see the new agent reach the manager, and `dcm-agent status` show it:
 * `handshake.json` (the last accepted handshake: when, which process, which
 * version) and `upgrade.json` (the last upgrade: pending, upgraded, rolling
 * back, rolled back). The agent confirms a pending upgrade itself, at its
 * first handshake, so the confirmation needs no other channel.
 */
import { join } from "node:path";
import { writeFileAtomic } from "./atomic_file.ts";

/** The last accepted handshake. */
export interface HandshakeRecord {
  /** ISO time of the handshake. */
  at: string;
  pid: number;
  version: string;
  /** ISO time the agent process started. */
  started: string;
}

/** Where an upgrade stands. */
export type UpgradeState = "pending" | "upgraded" | "rolling_back" | "rolled_back" | "failed";

/** The last upgrade of the executable. */
export interface UpgradeRecord {
  state: UpgradeState;
  /** The executable that was replaced. */
  target: string;
  fromVersion: string;
  toVersion: string;
  /** ISO time of the last swap (the new one, or the rollback); a process started after it confirms. */
  swappedAt: string;
  /** ISO time the state last changed. */
  updatedAt: string;
  /** Why it rolled back or failed. */
  reason?: string;
}

function handshakeFile(baseDir: string): string {
  return join(baseDir, "secure", "handshake.json");
}

function upgradeFile(baseDir: string): string {
  return join(baseDir, "secure", "upgrade.json");
}

function readJson<T>(path: string): T | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(path)) as T;
  } catch {
    return undefined;
  }
}

/** The last handshake record, if any. */
export function readHandshake(baseDir: string): HandshakeRecord | undefined {
  return readJson<HandshakeRecord>(handshakeFile(baseDir));
}

/** The last upgrade record, if any. */
export function readUpgrade(baseDir: string): UpgradeRecord | undefined {
  return readJson<UpgradeRecord>(upgradeFile(baseDir));
}

/** Writes the upgrade record (0600). */
export function writeUpgrade(baseDir: string, record: UpgradeRecord): void {
  writeFileAtomic(upgradeFile(baseDir), JSON.stringify(record, null, 1) + "\n", { mode: 0o600 });
}

/**
 * Records an accepted handshake; when an upgrade or rollback is waiting for
 * this process (started after the swap), marks it done and returns the record.
 */
export function recordHandshake(
  baseDir: string,
  record: Omit<HandshakeRecord, "at">,
): UpgradeRecord | undefined {
  const now = new Date().toISOString();
  writeFileAtomic(handshakeFile(baseDir), JSON.stringify({ at: now, ...record }) + "\n", {
    mode: 0o600,
  });
  const upgrade = readUpgrade(baseDir);
  if (!upgrade || Date.parse(record.started) < Date.parse(upgrade.swappedAt)) return undefined;
  if (upgrade.state !== "pending" && upgrade.state !== "rolling_back") return undefined;
  const done: UpgradeRecord = {
    ...upgrade,
    state: upgrade.state === "pending" ? "upgraded" : "rolled_back",
    updatedAt: now,
  };
  writeUpgrade(baseDir, done);
  return done;
}
