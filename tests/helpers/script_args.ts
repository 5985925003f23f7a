/** run_script arguments for test scripts: the script in base64 and its SHA-256. */
import { sha256Hex } from "../../lib/os/script_runner.ts";

/** The SHA-256 hex digest of `text` (UTF-8). */
export function sha256Text(text: string): Promise<string> {
  return sha256Hex(new TextEncoder().encode(text));
}

/** run_script arguments for the whole script `text` (ASCII). */
export async function scriptArgs(text: string): Promise<Record<string, unknown>> {
  return { b64script: btoa(text), checksum: await sha256Text(text) };
}

/** run_script arguments for a /bin/sh script made of `body`. */
export function shellScript(body: string): Promise<Record<string, unknown>> {
  return scriptArgs(`#!/bin/sh\n${body}\n`);
}
