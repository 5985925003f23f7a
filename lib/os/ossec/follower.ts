/**
 * Follows an OSSEC/Wazuh alert file by position, like `tail -F`, without
 * losing alerts across restarts or log rotation. The position (a cursor:
 * inode, byte offset, and a hash of the file's first bytes) only ever points
 * just after a complete record, and the caller stores it together with the
 * alerts it read, so a crash re-reads at most what was not yet stored.
 *
 * Rotation is noticed when the file at the path is another inode, is shorter
 * than the position, or starts with other bytes. The rest of the old file is
 * then read first, from the handle still open on it, from a rotated copy next
 * to it (`alerts.log.1`, `alerts.log-20250101`, found by inode or by its first
 * bytes), or from OSSEC's compressed daily file
 * (`<dir>/<year>/<Mon>/ossec-alerts-<day>.log.gz`); then the new file is read
 * from its start.
 */
import { basename, dirname, join } from "node:path";
import { createHash } from "node:crypto";
import type { AlertFields } from "../../protocol/mod.ts";
import type { AlertFormat } from "./alert.ts";
import { recordParser } from "./formats.ts";

/** Where reading stopped: just after the last complete record. */
export interface FileCursor {
  inode: number;
  offset: number;
  /** Bytes covered by `headHash` (the first min(256, offset) bytes of the file). */
  headLen: number;
  headHash: string;
}

/** Alerts read in one step and the cursor after them. */
export interface AlertBatch {
  alerts: AlertFields[];
  cursor: FileCursor;
}

/** Options of {@linkcode AlertFileFollower}. */
export interface FollowerOptions {
  format: AlertFormat;
  /** The stored position; null reads the current file from its start. */
  cursor: FileCursor | null;
  /** Largest number of bytes read in one step (default 256 KiB). */
  chunkBytes?: number;
  /** Hears about waiting, rotation and unreadable lines (the caller logs them). */
  onNotice: (message: string) => void;
}

const HEAD_BYTES = 256;
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

/** Something the rest of an alert file can be read from. */
interface Source {
  inode: number;
  readAt(offset: number, max: number): Promise<Uint8Array>;
  close(): void;
}

/** Reads new complete alerts from one alert file path. */
export class AlertFileFollower {
  #path: string;
  #format: AlertFormat;
  #cursor: FileCursor | null;
  #chunk: number;
  #notice: (m: string) => void;
  #open: { source: Source; inode: number } | null = null;
  /** The old file being drained after a rotation. */
  #old: Source | null = null;
  #waitingSaid = false;
  /** End of the data seen at the last step when it ended inside a record. */
  #stalledAt = -1;

  constructor(path: string, options: FollowerOptions) {
    this.#path = path;
    this.#format = options.format;
    this.#cursor = options.cursor;
    this.#chunk = options.chunkBytes ?? 256 << 10;
    this.#notice = options.onNotice;
  }

  /** The position after the last committed batch. */
  get cursor(): FileCursor | null {
    return this.#cursor;
  }

  /** Moves the position once the caller has stored a batch. */
  commit(cursor: FileCursor): void {
    this.#cursor = cursor;
  }

  /** Reads the next batch; null when there is nothing new. Never reads past the committed cursor twice. */
  async read(): Promise<AlertBatch | null> {
    const st = statOrNull(this.#path);
    if (!st) {
      if (this.#cursor && this.#old === null && this.#open?.inode === this.#cursor.inode) {
        // Renamed away and not yet replaced: finish the old file first.
        this.#old = this.#open.source;
        this.#open = null;
      }
      if (this.#old) return await this.#drainOld(null);
      if (!this.#waitingSaid) {
        this.#notice(`waiting for the alert file ${this.#path}, which does not exist yet`);
        this.#waitingSaid = true;
      }
      return null;
    }
    if (this.#waitingSaid) {
      this.#notice(`the alert file ${this.#path} exists now; following it`);
      this.#waitingSaid = false;
    }
    if (!this.#cursor) this.#cursor = { inode: st.ino!, offset: 0, headLen: 0, headHash: "" };
    if (this.#old) return await this.#drainOld(st);
    if (await this.#replaced(st)) {
      this.#old = await this.#findOld(st.ino!);
      if (!this.#old) {
        this.#notice(
          `the alert file ${this.#path} was rotated and its old content was not found; alerts written to it after the last read may be missing`,
        );
        return this.#switchTo(st.ino!);
      }
      this.#notice(`the alert file ${this.#path} was rotated; reading the rest of the old file`);
      return await this.#drainOld(st);
    }
    return await this.#readFrom(this.#current(st.ino!), this.#cursor, st.size, false);
  }

  /** Closes open files. */
  close(): void {
    this.#open?.source.close();
    this.#old?.close();
    this.#open = null;
    this.#old = null;
  }

  #current(inode: number): Source {
    if (this.#open?.inode !== inode) {
      this.#open?.source.close();
      this.#open = { source: openPlain(this.#path, inode), inode };
    }
    return this.#open.source;
  }

  /**
   * Whether the file at the path is no longer the one the cursor points into.
   * The handle on the old file stays open until then: after a rename it may
   * be the only way to the rest of the old file.
   */
  async #replaced(st: Deno.FileInfo): Promise<boolean> {
    const c = this.#cursor!;
    if (st.ino !== c.inode || st.size < c.offset) return true;
    if (c.headLen === 0) return false;
    return (await headHash(this.#current(st.ino!), c.headLen)) !== c.headHash;
  }

  async #drainOld(st: Deno.FileInfo | null): Promise<AlertBatch | null> {
    const batch = await this.#readFrom(this.#old!, this.#cursor!, Infinity, true);
    if (batch) return batch;
    // Nothing more in the old file: continue with the new one.
    this.#old?.close();
    if (this.#open?.source === this.#old) this.#open = null;
    this.#old = null;
    if (!st) return null;
    return this.#switchTo(st.ino!);
  }

  /** Starts the new file at offset 0; the empty batch carries the new cursor to store. */
  #switchTo(inode: number): AlertBatch {
    this.#stalledAt = -1;
    return { alerts: [], cursor: { inode, offset: 0, headLen: 0, headHash: "" } };
  }

  /** Finds the rest of the rotated file: the open handle, a copy by inode, or a copy by its first bytes. */
  async #findOld(newInode: number): Promise<Source | null> {
    const c = this.#cursor!;
    if (this.#open && this.#open.inode === c.inode && c.inode !== newInode) {
      const s = this.#open.source;
      this.#open = null;
      return s;
    }
    for (const file of rotatedCandidates(this.#path)) {
      const st = statOrNull(file);
      if (!st?.isFile) continue;
      const gz = file.endsWith(".gz");
      if (!gz && st.ino === c.inode && st.ino !== newInode) return openPlain(file, st.ino!);
      if (c.headLen === 0) continue;
      const source = gz ? openGzip(file) : openPlain(file, st.ino!);
      try {
        if ((await headHash(source, c.headLen)) === c.headHash) return source;
      } catch { /* unreadable candidate */ }
      source.close();
    }
    return null;
  }

  /**
   * Parses complete records after `cursor`; null when there is nothing new.
   * A `final` file (rotated away) gets no more lines, so its last record is complete.
   */
  async #readFrom(
    source: Source,
    cursor: FileCursor,
    size: number,
    final: boolean,
  ): Promise<AlertBatch | null> {
    if (cursor.offset >= size) return null;
    const bytes = await source.readAt(cursor.offset, this.#chunk);
    if (bytes.length === 0) return null;
    const atEnd = bytes.length < this.#chunk || cursor.offset + bytes.length >= size;
    const decoder = new TextDecoder();
    const parser = recordParser(this.#format, (why) => this.#notice(`${this.#path}: ${why}`));
    const alerts: AlertFields[] = [];
    let safe = 0;
    let start = 0;
    for (let nl = bytes.indexOf(10); nl !== -1; nl = bytes.indexOf(10, start)) {
      const out = parser.line(decoder.decode(bytes.subarray(start, nl)));
      if (out.alerts.length && !out.idle) safe = start; // A header ended the previous record.
      alerts.push(...out.alerts);
      start = nl + 1;
      if (out.idle) safe = start;
    }
    const end = cursor.offset + bytes.length;
    if (safe < bytes.length && atEnd) {
      // The file ends inside a record. Once it has stopped growing for one
      // step, the record is complete: the last alert is never held back.
      if (final || this.#stalledAt === end) {
        if (start < bytes.length) parser.line(decoder.decode(bytes.subarray(start)));
        alerts.push(...parser.flush());
        safe = bytes.length;
      } else {
        this.#stalledAt = end;
      }
    } else if (safe === 0 && start === 0 && !atEnd) {
      // One line longer than a whole chunk: skip it rather than stall for ever.
      this.#notice(`${this.#path}: skipped a line longer than ${this.#chunk} bytes`);
      safe = bytes.length;
    }
    if (safe === 0) return null;
    const offset = cursor.offset + safe;
    if (offset >= end) this.#stalledAt = -1;
    let { headLen, headHash: hh } = cursor;
    if (headLen < HEAD_BYTES && offset > headLen) {
      headLen = Math.min(HEAD_BYTES, offset);
      hh = await headHash(source, headLen);
    }
    return { alerts, cursor: { inode: cursor.inode, offset, headLen, headHash: hh } };
  }
}

function statOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.statSync(path);
  } catch {
    return null;
  }
}

async function headHash(source: Source, len: number): Promise<string> {
  const head = await source.readAt(0, len);
  return createHash("sha256").update(head).digest("hex");
}

/** Rotated copies of `path` that may hold the rest of the old file, newest first. */
function rotatedCandidates(path: string): string[] {
  const dir = dirname(path);
  const base = basename(path);
  const out: string[] = [];
  try {
    const near = [...Deno.readDirSync(dir)]
      .filter((e) => e.isFile && e.name !== base && e.name.startsWith(base))
      .map((e) => join(dir, e.name));
    out.push(...near.sort().reverse());
  } catch { /* unreadable dir */ }
  // OSSEC's daily archive: <dir>/<year>/<Mon>/ossec-alerts-<day>.<ext>[.gz], today and yesterday.
  const ext = base.endsWith(".json") ? "json" : "log";
  for (const back of [0, 1]) {
    const d = new Date(Date.now() - back * 86_400_000);
    const day = String(d.getDate()).padStart(2, "0");
    const stem = join(dir, String(d.getFullYear()), MONTHS[d.getMonth()], `ossec-alerts-${day}`);
    out.push(`${stem}.${ext}`, `${stem}.${ext}.gz`);
  }
  return out;
}

function openPlain(path: string, inode: number): Source {
  const file = Deno.openSync(path, { read: true });
  return {
    inode,
    async readAt(offset: number, max: number): Promise<Uint8Array> {
      await file.seek(offset, Deno.SeekMode.Start);
      const buf = new Uint8Array(Math.min(max, 1 << 20));
      let filled = 0;
      while (filled < buf.length) {
        const n = await file.read(buf.subarray(filled));
        if (n === null) break;
        filled += n;
      }
      return buf.subarray(0, filled);
    },
    close: () => {
      try {
        file.close();
      } catch { /* already closed */ }
    },
  };
}

/** A gzip file read by decompressing from its start (only used once, after a rotation). */
function openGzip(path: string): Source {
  return {
    inode: -1,
    async readAt(offset: number, max: number): Promise<Uint8Array> {
      const file = await Deno.open(path, { read: true });
      const stream = file.readable.pipeThrough(new DecompressionStream("gzip"));
      const out = new Uint8Array(Math.min(max, 1 << 20));
      let pos = 0;
      let filled = 0;
      const reader = stream.getReader();
      try {
        while (filled < out.length) {
          const { value, done } = await reader.read();
          if (done) break;
          const from = Math.max(0, offset - pos);
          if (from < value.length) {
            const part = value.subarray(from, from + out.length - filled);
            out.set(part, filled);
            filled += part.length;
          }
          pos += value.length;
        }
      } finally {
        await reader.cancel().catch(() => {});
      }
      return out.subarray(0, filled);
    },
    close: () => {},
  };
}
