/**
 * Downloads an installer or a playbook archive with the agent's downloader and
 * checks its SHA-256 before anything runs it: never a pipe from the network
 * into a shell.
 */
import { downloadOrThrow, sha256File } from "../download.ts";

/** Largest file accepted (installers and playbook archives are far smaller). */
const MAX_DOWNLOAD_BYTES = 512 * 1024 * 1024;

/** How long the server may stay silent, before the headers and between chunks. */
const STALL_TIMEOUT_MS = 60_000;

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
  await downloadOrThrow(parsed, dest, {
    connectTimeoutMs: STALL_TIMEOUT_MS,
    signal: options.signal,
    maxBytes: MAX_DOWNLOAD_BYTES,
    mode: options.mode,
  });
  if (options.sha256) {
    const actual = await sha256File(dest);
    if (actual !== options.sha256.trim().toLowerCase()) {
      await Deno.remove(dest).catch(() => {});
      throw new Error(
        `the file downloaded from ${url} has SHA-256 ${actual}, not the configured ` +
          `${options.sha256}; it was deleted and not run. Check the URL and the checksum`,
      );
    }
  }
}
