/**
 * Downloads a script or upgrade package over http(s) into a file, with a
 * stall timeout, a size limit and cancellation (fetch_run, upgrade).
 */
import { makeReply, type ReplyPayload } from "../protocol/mod.ts";
import { METADATA_REQUEST_HEADERS } from "./cloud_metadata.ts";

/** Largest file downloaded; a bigger body is refused rather than filling the disk. */
const MAX_DOWNLOAD_BYTES = 64 * 1024 * 1024;

/** Options of {@linkcode download}. */
export interface DownloadOptions {
  /** Longest wait for the response headers and, later, for each body chunk. */
  connectTimeoutMs: number;
  signal: AbortSignal;
}

/** Streams the URL into `file`; returns null when it is complete, else the failure reply (fetch_run, upgrade). */
export async function download(
  url: URL,
  file: string,
  options: DownloadOptions,
): Promise<ReplyPayload | null> {
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
      signal: AbortSignal.any([stall.signal, options.signal]),
    });
    if (response.status !== 200) {
      await response.body?.cancel();
      return failed(`the server answered HTTP ${response.status} ${response.statusText}`.trim());
    }
    const declared = Number(response.headers.get("content-length") ?? "0");
    if (declared > MAX_DOWNLOAD_BYTES || response.body === null) {
      await response.body?.cancel();
      return failed(
        response.body === null
          ? "the response has no body"
          : `the script is ${declared} bytes, more than the limit of ${MAX_DOWNLOAD_BYTES}`,
      );
    }
    out = await Deno.open(file, { write: true, truncate: true });
    let size = 0;
    for await (const chunk of response.body) {
      arm();
      size += chunk.length;
      if (size > MAX_DOWNLOAD_BYTES) {
        return failed(`the script is larger than the limit of ${MAX_DOWNLOAD_BYTES} bytes`);
      }
      await writeAll(out, chunk);
    }
    return null;
  } catch (err) {
    if (options.signal.aborted) {
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
