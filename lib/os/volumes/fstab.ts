/**
 * /etc/fstab and mdadm.conf edits as pure text functions: one fstab line per
 * mount point, by UUID, with `nofail` so a missing volume never stops a boot;
 * one ARRAY line per md array UUID.
 */

/** What one fstab line mounts. */
export interface FstabEntry {
  /** `UUID=...` or a device path (/dev/mapper/<name> for an encrypted volume). */
  spec: string;
  mountPoint: string;
  fsType: string;
  /** Encrypted volumes are opened by the manager's key, never at boot: `noauto`. */
  encrypted: boolean;
}

/** The options the agent writes, marked so a person sees who wrote the line. */
export function fstabOptions(encrypted: boolean): string {
  // nofail + a short device timeout: systemd neither fails nor waits long for a
  // missing volume (what cloud-init writes for its mounts). An encrypted volume
  // has no key at boot, so it is not mounted then at all.
  return encrypted
    ? "defaults,noauto,nofail,noatime,comment=dcm-agent"
    : "defaults,nofail,x-systemd.device-timeout=10s,comment=dcm-agent";
}

/** fstab escapes a space as \040 (and tab, newline, backslash likewise). */
function escapeField(value: string): string {
  return value.replace(/[\s\\]/g, (c) => `\\${c.charCodeAt(0).toString(8).padStart(3, "0")}`);
}

function unescapeField(value: string): string {
  return value.replace(/\\([0-7]{3})/g, (_, oct) => String.fromCharCode(parseInt(oct, 8)));
}

/** The mount point of an fstab line, or null for comments and blank lines. */
function mountPointOf(line: string): string | null {
  const t = line.trim();
  if (t === "" || t.startsWith("#")) return null;
  const fields = t.split(/\s+/);
  return fields.length >= 2 ? unescapeField(fields[1]).replace(/(.)\/+$/, "$1") : null;
}

/** fstab text without any line for `mountPoint`. */
export function withoutMountPoint(text: string, mountPoint: string): string {
  const lines = text.split("\n");
  const kept = lines.filter((l) => mountPointOf(l) !== mountPoint);
  return kept.join("\n");
}

/** fstab text with exactly one line for the entry's mount point (the new one, at the end). */
export function withEntry(text: string, entry: FstabEntry): string {
  let kept = withoutMountPoint(text, entry.mountPoint);
  if (kept !== "" && !kept.endsWith("\n")) kept += "\n";
  const pass = entry.encrypted ? 0 : 2;
  return kept +
    `${entry.spec} ${escapeField(entry.mountPoint)} ${entry.fsType} ${
      fstabOptions(entry.encrypted)
    } 0 ${pass}\n`;
}

/** The fstab lines for a mount point (for tests and checks). */
export function linesFor(text: string, mountPoint: string): string[] {
  return text.split("\n").filter((l) => mountPointOf(l) === mountPoint);
}

/** The UUID= of an mdadm ARRAY line. */
function arrayUuid(line: string): string | null {
  if (!/^\s*ARRAY\s/.test(line)) return null;
  return /\bUUID=([0-9a-fA-F:]+)/.exec(line)?.[1].toLowerCase() ?? null;
}

/** mdadm.conf text with `arrayLine` (from `mdadm --detail --brief`) replacing any line of the same UUID. */
export function withArray(text: string, arrayLine: string): string {
  const uuid = arrayUuid(arrayLine);
  let kept = text.split("\n").filter((l) => uuid === null || arrayUuid(l) !== uuid).join("\n");
  if (kept !== "" && !kept.endsWith("\n")) kept += "\n";
  return kept + arrayLine.trim() + "\n";
}

/** mdadm.conf text without the ARRAY line of this UUID. */
export function withoutArray(text: string, uuid: string): string {
  return text.split("\n").filter((l) => arrayUuid(l) !== uuid.toLowerCase()).join("\n");
}
