/**
 * What every OS adapter takes: a system root ("/" in production, a throw-away
 * directory in tests), the sudo program and a staging directory.
 */
import { join } from "node:path";
import type { AgentConfig } from "../config/mod.ts";

/** Options every OS adapter accepts. */
export interface SystemAdapterOptions {
  /** The system root: "/" in production, a throw-away directory in tests. */
  root: string;
  /** The sudo program to use when the agent is not root; null when it is root. */
  sudo?: string | null;
  /** Directory for private staging files; default: the system temp directory. */
  tempDir?: string;
}

/** `path` (absolute) inside the system root `root`. */
export function pathUnderRoot(root: string, path: string): string {
  return root === "/" ? path : join(root, path);
}

/** Options of a live adapter for "/", using [system] sudo when the agent is not root. */
export function liveAdapterOptions(config: AgentConfig): SystemAdapterOptions {
  return {
    root: "/",
    sudo: Deno.uid() === 0 ? null : config.system.sudo,
    tempDir: config.storage.temppath ?? undefined,
  };
}
