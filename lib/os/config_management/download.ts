/**
 * Downloads a file (an installer, a playbook archive) to disk with a size
 * limit, and checks its SHA-256 before anything runs it: never a pipe from
 * the network into a shell.
 */
import { createHash } from "node:crypto";

/** Largest file accepted (installers and playbook archives are far smaller). */
const MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024;

/** Options for {@linkcode downloadFile}. */
export interface DownloadOptions {
  /** Aborts the download (CANCEL or the time limit). */
  signal?: AbortSignal;
  /** Expected SHA-256 hex digest; the file is deleted and an error thrown when it differs. */
  sha256?: string;
  /** File mode; default 0600. */
  mode?: number;
}

/** Downloads `url` to `dest`; throws an error naming the URL and what to do. */
export async function downloadFile(
  url: string,
  dest: string,
  options: DownloadOptions = {},
): Promise<void> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new Error(`'${url}' is not a valid URL; give an http or https URL`);
  }
  if (parsed.protocol !== "http:" && parsed.protocol !== "https:") {
    throw new Error(`'${url}' is not an http or https URL; give an http or https URL`);
  }
  let response: Response;
  try {
    response = await fetch(parsed, { signal: options.signal });
  } catch (err) {
    throw new Error(`cannot download ${url}: ${(err as Error).message}`);
  }
  if (!response.ok || response.body === null) {
    await response.body?.cancel();
    throw new Error(
      `cannot download ${url}: the server answered ${response.status} ${response.statusText}`,
    );
  }
  const file = await Deno.open(dest, {
    write: true,
    create: true,
    truncate: true,
    mode: options.mode ?? 0o600,
  });
  // Streamed: an installer can be large, and node:crypto is loaded only on this path.
  const hasher = createHash("sha256");
  let size = 0;
  try {
    for await (const chunk of response.body) {
      size += chunk.length;
      if (size > MAX_DOWNLOAD_BYTES) {
        throw new Error(`${url} is larger than ${MAX_DOWNLOAD_BYTES} bytes; refusing it`);
      }
      hasher.update(chunk);
      let written = 0;
      while (written < chunk.length) written += await file.write(chunk.subarray(written));
    }
  } catch (err) {
    file.close();
    await Deno.remove(dest).catch(() => {});
    if (options.signal?.aborted) throw new Error(`the download of ${url} was stopped`);
    throw err instanceof Error && err.message.includes(url)
      ? err
      : new Error(`cannot download ${url}: ${(err as Error).message}`);
  }
  file.close();
  if (options.sha256) {
    const actual = hasher.digest("hex");
    if (actual !== options.sha256.trim().toLowerCase()) {
      await Deno.remove(dest).catch(() => {});
      throw new Error(
        `the file downloaded from ${url} has SHA-256 ${actual}, not the configured ` +
          `${options.sha256}; it was deleted and not run. Check the URL and the checksum`,
      );
    }
  }
}
