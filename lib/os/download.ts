/**
 * The agent's one http(s) downloader: a file streamed to disk with a stall
 * timeout, a size limit and cancellation (scripts, upgrades, installers,
 * playbook archives, new executables), and a streaming SHA-256 of a file so
 * a download is checked before anything runs it.
 */
import { makeReply, type ReplyPayload } from "../protocol/mod.ts";
import { METADATA_REQUEST_HEADERS } from "./cloud_metadata.ts";

/** Default largest file downloaded; a bigger body is refused rather than filling the disk. */
const MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024;

/** Options of {@linkcode download}. */
export interface DownloadOptions {
  /** Longest wait for the response headers and, later, for each body chunk. */
  connectTimeoutMs: number;
  signal?: AbortSignal;
  /** Largest body accepted; default 64 MiB. */
  maxBytes?: number;
  /** Mode of a file the download creates; default 0600. */
  mode?: number;
}

/** Streams the URL into `file`; returns null when it is complete, else the failure reply. */
export async function download(
  url: URL,
  file: string,
  options: DownloadOptions,
): Promise<ReplyPayload | null> {
  const maxBytes = options.maxBytes ?? MAX_DOWNLOAD_BYTES;
  const signal = options.signal ?? new AbortController().signal;
  const failed = (reason: string) =>
    makeReply(1, { error_message: `Failed to download the URL ${url.href}: ${reason}` });
  const stall = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const arm = () => {
    clearTimeout(timer);
    timer = setTimeout(() => stall.abort(), options.connectTimeoutMs);
  };
  let out: Deno.FsFile | undefined;
  try {
    arm();
    const response = await fetch(url, {
      headers: METADATA_REQUEST_HEADERS,
      signal: AbortSignal.any([stall.signal, signal]),
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      return failed(`the server answered HTTP ${response.status} ${response.statusText}`.trim());
    }
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > maxBytes || response.body === null) {
      await response.body?.cancel();
      return failed(
        response.body === null
          ? "the response has no body"
          : `the file is ${declared} bytes, more than the limit of ${maxBytes}`,
      );
    }
    out = await Deno.open(file, {
      write: true,
      create: true,
      truncate: true,
      mode: options.mode ?? 0o600,
    });
    let size = 0;
    for await (const chunk of response.body) {
      arm();
      size += chunk.length;
      if (size > maxBytes) return failed(`the file is larger than the limit of ${maxBytes} bytes`);
      await writeAll(out, chunk);
    }
    return null;
  } catch (err) {
    if (signal.aborted) {
      return makeReply(1, { error_message: `the download of ${url.href} was cancelled` });
    }
    if (stall.signal.aborted) {
      return failed(`no answer from the server within ${options.connectTimeoutMs / 1000} s`);
    }
    return failed(describeError(err));
  } finally {
    clearTimeout(timer);
    out?.close();
  }
}

/** Like {@linkcode download}, but throws the failure's text; an incomplete file is removed. */
export async function downloadOrThrow(
  url: URL,
  file: string,
  options: DownloadOptions,
): Promise<void> {
  const failure = await download(url, file, options);
  if (failure === null) return;
  await Deno.remove(file).catch(() => {});
  throw new Error(failure.error_message);
}

/** The SHA-256 hex digest of a file, read as a stream (a new executable can be large). */
export async function sha256File(path: string): Promise<string> {
  // node:crypto streams but costs resident memory: loaded only by the callers that need it.
  const { createHash } = await import("node:crypto");
  const hash = createHash("sha256");
  const file = await Deno.open(path);
  for await (const chunk of file.readable) hash.update(chunk); // the stream closes the file

  return hash.digest("hex");
}

/** The error's message followed by its causes' ("fetch failed" alone says little). */
function describeError(err: unknown): string {
  const parts: string[] = [];
  for (let e = err; e !== undefined && e !== null && parts.length < 4;) {
    parts.push(e instanceof Error ? e.message : String(e));
    e = e instanceof Error ? e.cause : undefined;
  }
  return parts.join(": ");
}

async function writeAll(file: Deno.FsFile, data: Uint8Array): Promise<void> {
  let offset = 0;
  while (offset < data.length) offset += await file.write(data.subarray(offset));
}
