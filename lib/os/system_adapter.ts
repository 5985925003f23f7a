/**
 * How commands find their OS adapter: the one registered in
 * `ctx.services.adapters` (tests register throw-away-root adapters), else a
 * live adapter for `/` that uses [system] sudo when the agent is not root.
 */
import { join } from "node:path";
import type { CommandContext } from "../command.ts";

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

/** The adapter registered under `name`, or a live one for `/`. */
export function systemAdapter<T>(
  ctx: CommandContext,
  options: { name: string; type: new (options: SystemAdapterOptions) => T },
): T {
  const injected = ctx.services.adapters[options.name];
  if (injected === undefined) {
    return new options.type({
      root: "/",
      sudo: Deno.uid() === 0 ? null : ctx.config.system.sudo,
      tempDir: ctx.config.storage.temppath ?? undefined,
    });
  }
  if (!(injected instanceof options.type)) {
    throw new Error(
      `services.adapters.${options.name} is set but is not a ${options.type.name} adapter`,
    );
  }
  return injected;
}
