/**
 * A log sink (lib/log.ts) that appends formatted records to a file with Python
 * `RotatingFileHandler` semantics, using Deno's synchronous file API only: `node:fs`
 * costs about 10 MB of idle memory, and synchronous writes mean a record is in the
 * file (the page cache) as soon as the log call returns, so nothing is lost when the
 * sink is disposed or the process exits.
 */
import { dirname } from "node:path";
import type { LogRecord, Sink } from "./logger.ts";

/** Options for {@linkcode createRotatingFileSink}. */
export interface RotatingFileSinkOptions {
  /** Turns a record into the text written for it, line end included. */
  formatter: (record: LogRecord) => string;
  /** Size in bytes the file must stay below; 0 (default) never rotates, as in Python. */
  maxBytes?: number;
  /** Number of backups kept as `path.1` … `path.N`; 0 (default) never rotates, as in Python. */
  backupCount?: number;
  /** User and group given to every file a rotation creates (the caller owns the first file). */
  owner?: { uid: number; gid: number };
}

/** A sink that also closes its file when disposed; later records are dropped. */
export type RotatingFileSink = Sink & Disposable;

/** A failing log file is reported on stderr at most this often (ms). */
const WRITE_FAILURE_REPORT_MS = 60_000;

/** Opens (creating it and its directory if needed) a log file and returns a sink appending to it; throws if the file cannot be opened. */
export function createRotatingFileSink(
  path: string,
  options: RotatingFileSinkOptions,
): RotatingFileSink {
  const { formatter, owner } = options;
  const maxBytes = options.maxBytes ?? 0;
  const backupCount = options.backupCount ?? 0;
  const rotates = maxBytes > 0 && backupCount > 0;
  const encoder = new TextEncoder();
  Deno.mkdirSync(dirname(path), { recursive: true });
  let file: Deno.FsFile | null = openAppend(path);
  // Tracked in memory rather than by an fstat per record; the file is ours alone.
  let size = file.statSync().size;
  let quietUntil = 0;

  function rotate(current: Deno.FsFile): Deno.FsFile {
    // Shifting before closing keeps `current` usable if a rename fails: on Linux an
    // open descriptor follows its file, and the next record simply tries again.
    for (let n = backupCount - 1; n >= 1; n--) renameIfExists(`${path}.${n}`, `${path}.${n + 1}`);
    Deno.renameSync(path, `${path}.1`);
    current.close();
    const fresh = openAppend(path);
    if (owner) {
      try {
        Deno.chownSync(path, owner.uid, owner.gid);
      } catch {
        // A log file with the wrong owner is still written; only root can chown anyway.
      }
    }
    size = 0;
    return fresh;
  }

  const sink = (record: LogRecord): void => {
    if (file === null) return;
    const bytes = encoder.encode(formatter(record));
    // As Python: rotate when the record would reach maxBytes, but never an empty file,
    // so a single record longer than maxBytes is still written.
    try {
      if (rotates && size > 0 && size + bytes.length >= maxBytes) file = rotate(file);
      for (let done = 0; done < bytes.length;) done += file.writeSync(bytes.subarray(done));
      size += bytes.length;
    } catch (err) {
      // A full or failing log disk drops records; it must never stop the agent's work.
      const now = performance.now();
      if (now >= quietUntil) {
        quietUntil = now + WRITE_FAILURE_REPORT_MS;
        console.error(
          `dcm-agent: cannot write the log file ${path}: ${(err as Error).message}; ` +
            "log records are dropped until it can be written (reported once a minute)",
        );
      }
    }
  };
  return Object.assign(sink, {
    [Symbol.dispose]: (): void => {
      file?.close();
      file = null;
    },
  });
}

function openAppend(path: string): Deno.FsFile {
  return Deno.openSync(path, { append: true, create: true });
}

function renameIfExists(from: string, to: string): void {
  try {
    Deno.renameSync(from, to);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
}
