/**
 * The release build: `scripts/compile.ts` refuses what it cannot ship (no
 * runtime base: exit 3 with one line; a full deno as runtime base: exit 1,
 * nothing written), `scripts/ci_compile.sh` turns exit 3 into "compile
 * skipped", and the bundle (the module graph `deno compile` embeds) can
 * configure a base path and run the agent against the development manager
 * with no file of the repository at hand. None of this needs a denort.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfigText } from "../../lib/config/agent_conf.ts";
import { DevManager } from "../../scripts/dev_manager.ts";
import { runProgram, type RunResult, runUntil } from "../helpers/run.ts";

/** Runs a command with the caller's environment minus DENORT_BIN. */
function run(
  command: string,
  args: string[],
  options: { env?: Record<string, string>; cwd?: string } = {},
): Promise<RunResult> {
  // The caller's DENORT_BIN must not leak into a test that is about its absence.
  const env: Record<string, string> = { ...Deno.env.toObject(), NO_COLOR: "1" };
  delete env.DENORT_BIN;
  Object.assign(env, options.env);
  return runProgram(command, args, { env, clearEnv: true, cwd: options.cwd });
}

/** Runs scripts/compile.ts for `entry` into `output` with extra environment. */
function compile(entry: string, output: string, env: Record<string, string>): Promise<RunResult> {
  return run(Deno.execPath(), [
    "run",
    "-A",
    "scripts/compile.ts",
    "--entry",
    entry,
    "--output",
    output,
  ], {
    env,
  });
}

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-compile-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A tiny entry point that answers --version like the agent. */
async function fixtureEntry(dir: string): Promise<string> {
  const entry = join(dir, "entry.ts");
  await Deno.writeTextFile(
    entry,
    'console.log(Deno.args.includes("--version") ? "Version 9.9.9-test" : "hello");\n',
  );
  return entry;
}

Deno.test("compile without any runtime base exits 3 with one line saying how to provide one", async () => {
  await withDir(async (dir) => {
    const entry = await fixtureEntry(dir);
    const output = join(dir, "out/dcm-agent");
    const res = await compile(entry, output, { DENO_DIR: join(dir, "empty-deno-dir") });
    assert.equal(res.code, 3, res.stderr);
    const lines = res.stderr.trim().split("\n");
    assert.equal(lines.length, 1, res.stderr);
    assert.match(
      lines[0],
      /^compile: no denort .* runtime found .*set DENORT_BIN to a denort .* executable, or put denort-.*\.zip in /,
    );
    await assert.rejects(Deno.stat(output));

    const missing = await compile(entry, output, { DENORT_BIN: join(dir, "no-such-denort") });
    assert.equal(missing.code, 3);
    assert.match(
      missing.stderr,
      /DENORT_BIN=.*no-such-denort does not exist; point DENORT_BIN at a denort/,
    );
  });
});

Deno.test("compile refuses a binary built on a full deno (it answers as deno, not as the agent)", async () => {
  await withDir(async (dir) => {
    const entry = await fixtureEntry(dir);
    const output = join(dir, "out/dcm-agent");
    const res = await compile(entry, output, { DENORT_BIN: Deno.execPath() });
    assert.equal(res.code, 1, res.stderr);
    assert.match(
      res.stderr,
      /refusing to ship .*: it answered 'deno .*' to --version instead of 'Version 9\.9\.9-test'/,
    );
    assert.match(res.stderr, /point DENORT_BIN at denort/);
    // Nothing is left behind: neither the output nor the temporary build.
    assert.deepEqual([...Deno.readDirSync(join(dir, "out"))], []);
  });
});

Deno.test("ci_compile.sh reports 'compile skipped: ...' and succeeds when no runtime base exists", async () => {
  await withDir(async (dir) => {
    const res = await run("sh", ["scripts/ci_compile.sh", "--output", join(dir, "dcm-agent")], {
      env: { DENO: Deno.execPath(), DENO_DIR: join(dir, "empty-deno-dir") },
    });
    assert.equal(res.code, 0, res.stderr);
    assert.match(res.stdout, /^compile skipped: no denort .* runtime found .*DENORT_BIN/);
  });
});

Deno.test("the bundle configures a base path and runs the agent against the dev manager", async () => {
  await withDir(async (dir) => {
    const bundle = join(dir, "dcm-agent.js");
    const built = await run(Deno.execPath(), [
      "bundle",
      "--platform=deno",
      "-o",
      bundle,
      "main.ts",
    ]);
    assert.equal(built.code, 0, built.stderr);
    // Run from an empty directory with no config, as on a customer's VM: every file the
    // agent reads at run time must be inside the bundle or written by configure.
    const work = join(dir, "work");
    await Deno.mkdir(work);
    const deno = (
      ...args: string[]
    ) => ["run", "-A", "--no-config", "--cached-only", bundle, ...args];
    const version = await run(Deno.execPath(), deno("--version"), { cwd: work });
    assert.match(version.stdout, /^Version \S+/);

    await using manager = await DevManager.start();
    const base = join(dir, "dcm");
    const configured = await run(
      Deno.execPath(),
      deno(
        "configure",
        "-p",
        base,
        "-u",
        manager.url,
        "-c",
        "Other",
        "-Z",
        "-U",
        "root",
        "-t",
        join(base, "tmp"),
      ),
      { cwd: work },
    );
    assert.equal(configured.code, 0, configured.stderr);
    const confFile = join(base, "etc/agent.conf");
    assert.equal(
      parseConfigText(await Deno.readTextFile(confFile), confFile).connection.agentmanager_url,
      manager.url,
    );
    assert.match(await Deno.readTextFile(join(base, "etc/logging.yaml")), /^version: 1$/m);
    assert.match(await Deno.readTextFile(join(base, "etc/plugin.conf")), /^\[plugin:heartbeat\]$/m);

    await runUntil(
      Deno.execPath(),
      deno("run", "-c", confFile),
      () => manager.waitForHandshake({ timeoutMs: 30_000 }),
      { cwd: work },
    );
  });
});
