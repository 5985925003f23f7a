/**
 * `upgrade.json` in the secure directory: the last upgrade of the executable
 * (pending, upgraded, rolling back, rolled back, failed). It lets
 * `dcm-agent upgrade-binary` see the new agent reach the manager and
 * `dcm-agent status` show the outcome. The agent confirms a pending upgrade
 * itself, at its first handshake, so the confirmation needs no other channel.
 */
import { join } from "node:path";
import { writeFileAtomic } from "./atomic_file.ts";

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

/** The last upgrade record, if any. */
export function readUpgrade(baseDir: string): UpgradeRecord | undefined {
  return readJson<UpgradeRecord>(upgradeFile(baseDir));
}

/** Writes the upgrade record (0600). */
export function writeUpgrade(baseDir: string, record: UpgradeRecord): void {
  writeFileAtomic(upgradeFile(baseDir), JSON.stringify(record, null, 1) + "\n", { mode: 0o600 });
}

/**
 * At an accepted handshake: when an upgrade or rollback is waiting for this
 * process (started after the swap), marks it done and returns the record.
 */
export function confirmUpgrade(baseDir: string, startedAt: string): UpgradeRecord | undefined {
  const upgrade = readUpgrade(baseDir);
  if (!upgrade || Date.parse(startedAt) < Date.parse(upgrade.swappedAt)) return undefined;
  if (upgrade.state !== "pending" && upgrade.state !== "rolling_back") return undefined;
  const done: UpgradeRecord = {
    ...upgrade,
    state: upgrade.state === "pending" ? "upgraded" : "rolled_back",
    updatedAt: new Date().toISOString(),
  };
  writeUpgrade(baseDir, done);
  return done;
}
