/**
 * `deno task compile`: builds the single-file release dist/dcm-agent with
 * `deno compile`, then runs it once and ships it only if it answers
 * `--version` exactly as the agent does. A `deno compile` whose runtime base
 * is a full deno instead of denort "succeeds" but gives a REPL, so that check
 * is not optional.
 *
 *   deno run -A scripts/compile.ts [--entry main.ts] [--output dist/dcm-agent]
 *
 * Exit codes: 0 built, 3 no denort runtime available (one line says how to
 * provide one; CI reports "compile skipped"), 1 any other failure.
 */
import { basename, dirname, join, resolve } from "node:path";
import { parseArgs } from "node:util";
import { AGENT_RUNTIME_FLAGS } from "../lib/config/runtime_flags.ts";
import { isFile } from "../lib/os/fs_stat.ts";
import { REPO_ROOT } from "./agent_process.ts";

/** Exit code when no runtime base is available. */
const NO_RUNTIME_EXIT = 3;

/** A failure with its exit code; the message is one line saying what to do. */
class CompileError extends Error {
  constructor(message: string, readonly code: number) {
    super(message);
  }
}

/** Where deno compile will take its runtime base from (see the toolchain notes). */
function findRuntime(): string {
  const version = Deno.version.deno;
  const fromEnv = Deno.env.get("DENORT_BIN");
  if (fromEnv !== undefined) {
    if (!isFile(fromEnv)) {
      throw new CompileError(
        `DENORT_BIN=${fromEnv} does not exist; point DENORT_BIN at a denort ${version} executable`,
        NO_RUNTIME_EXIT,
      );
    }
    return `DENORT_BIN=${fromEnv}`;
  }
  const deno = Deno.execPath();
  const beside = join(dirname(deno), "denort");
  if (deno.split("/").includes("target") && isFile(beside)) return beside;
  const zip = join(denoDir(), "dl", "release", `v${version}`, `denort-${Deno.build.target}.zip`);
  if (isFile(zip)) return zip;
  throw new CompileError(
    `no denort ${version} runtime found (deno compile would try to download one): set DENORT_BIN to a denort ${version} executable, or put denort-${Deno.build.target}.zip in ${
      dirname(zip)
    }/`,
    NO_RUNTIME_EXIT,
  );
}

/** $DENO_DIR, else the cache directory deno reports. */
function denoDir(): string {
  const fromEnv = Deno.env.get("DENO_DIR");
  if (fromEnv) return fromEnv;
  const out = new Deno.Command(Deno.execPath(), {
    args: ["info", "--json"],
    stdout: "piped",
    stderr: "null",
  })
    .outputSync();
  const dir = out.success ? JSON.parse(new TextDecoder().decode(out.stdout)).denoDir : undefined;
  return typeof dir === "string" ? dir : join(Deno.env.get("HOME") ?? "/root", ".cache", "deno");
}

/** The first line a program prints for `--version`; runs with no stdin and a time limit. */
async function versionLine(
  command: string,
  args: string[],
): Promise<{ ok: boolean; line: string }> {
  const out = await new Deno.Command(command, {
    args: [...args, "--version"],
    cwd: REPO_ROOT,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const text = new TextDecoder().decode(out.stdout).trim() ||
    new TextDecoder().decode(out.stderr).trim();
  return { ok: out.success, line: text.split("\n")[0] ?? "" };
}

async function compile(entry: string, output: string): Promise<string> {
  const runtime = findRuntime();
  // What the agent answers when run from source: the binary must answer the same.
  const expected = await versionLine(Deno.execPath(), ["run", "-A", entry]);
  if (!expected.ok || expected.line === "") {
    throw new CompileError(
      `${entry} --version failed (${
        expected.line || "no output"
      }); fix the entry point before compiling`,
      1,
    );
  }
  Deno.mkdirSync(dirname(output), { recursive: true });
  const temp = join(dirname(output), `.${basename(output)}.${Deno.pid}.tmp`);
  try {
    const built = await new Deno.Command(Deno.execPath(), {
      args: ["compile", "-A", ...AGENT_RUNTIME_FLAGS, "--output", temp, entry],
      cwd: REPO_ROOT,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!built.success) {
      const detail = new TextDecoder().decode(built.stderr).trim().split("\n").at(-1) ?? "";
      // Defensive: if deno found no runtime after all, it tries to download one.
      if (/download/i.test(detail)) {
        throw new CompileError(
          `deno compile could not get a denort runtime (${detail}); set DENORT_BIN to a denort ${Deno.version.deno} executable`,
          NO_RUNTIME_EXIT,
        );
      }
      throw new CompileError(`deno compile failed: ${detail}`, 1);
    }
    const answer = await versionLine(temp, []).catch((e) => ({
      ok: false,
      line: (e as Error).message,
    }));
    if (!answer.ok || answer.line !== expected.line) {
      throw new CompileError(
        `refusing to ship ${output}: it answered '${answer.line}' to --version instead of '${expected.line}', so its runtime base (${runtime}) is not denort ${Deno.version.deno} (a full deno gives a REPL); point DENORT_BIN at denort`,
        1,
      );
    }
    Deno.renameSync(temp, output);
    return expected.line;
  } finally {
    try {
      Deno.removeSync(temp);
    } catch { /* renamed into place, or never written */ }
  }
}

async function main(args: string[]): Promise<number> {
  let values: { entry?: string; output?: string };
  try {
    ({ values } = parseArgs({
      args,
      options: { entry: { type: "string" }, output: { type: "string" } },
    }));
  } catch (error) {
    console.error(
      `compile: ${(error as Error).message}; usage: compile.ts [--entry FILE] [--output FILE]`,
    );
    return 2;
  }
  const entry = resolve(REPO_ROOT, values.entry ?? "main.ts");
  const output = resolve(REPO_ROOT, values.output ?? "dist/dcm-agent");
  try {
    const version = await compile(entry, output);
    console.log(`built ${output} (${version})`);
    return 0;
  } catch (error) {
    if (error instanceof CompileError) {
      console.error(`compile: ${error.message}`);
      return error.code;
    }
    throw error;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
