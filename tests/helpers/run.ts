/** Runs a program to completion for tests and returns what it printed. */
import { REPO_ROOT } from "../../scripts/agent_process.ts";

/** Exit code and decoded output of a finished program. */
export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Options for {@linkcode runProgram}. */
export interface RunProgramOptions {
  env?: Record<string, string>;
  /** Start from an empty environment plus `env`. */
  clearEnv?: boolean;
  /** Default: the repository root. */
  cwd?: string;
  /** Default: 60 s; a hung program fails the test instead of stalling it. */
  timeoutMs?: number;
}

/** Runs `command` with `args`, stdin closed, and collects its output. */
export async function runProgram(
  command: string,
  args: string[],
  options: RunProgramOptions = {},
): Promise<RunResult> {
  const out = await new Deno.Command(command, {
    args,
    cwd: options.cwd ?? REPO_ROOT,
    env: options.env,
    clearEnv: options.clearEnv ?? false,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(options.timeoutMs ?? 60_000),
  }).output();
  const decode = (b: Uint8Array) => new TextDecoder().decode(b);
  return { code: out.code, stdout: decode(out.stdout), stderr: decode(out.stderr) };
}

/**
 * Starts `command` with `args` in its own process group, resolves with what
 * `until` resolves with, and then kills the whole group. Rejects with the
 * program's output when it exits first. For agents run on an agent.conf that
 * the test wrote itself, which AgentProcess (it writes its own) cannot run.
 */
export async function runUntil<T>(
  command: string,
  args: string[],
  until: () => Promise<T>,
  options: { cwd?: string } = {},
): Promise<T> {
  const child = new Deno.Command(command, {
    args,
    cwd: options.cwd ?? REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true,
  }).spawn();
  const output = Promise.all([child.stdout.text(), child.stderr.text()]);
  try {
    return await Promise.race([
      until(),
      child.status.then(async (s) => {
        throw new Error(`${args.join(" ")} exited with ${s.code}: ${(await output).join("\n")}`);
      }),
    ]);
  } finally {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* already gone */ }
    await child.status;
    await output;
  }
}
