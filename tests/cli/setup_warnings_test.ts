/**
 * A clean checkout prints no "Ignored build scripts for packages: npm:deno"
 * box: package.json installs Deno itself through npm, and Deno, which reads
 * package.json too, would warn once per checkout that it skipped npm:deno's
 * install script. deno.json denies that script, which silences the warning.
 * A fresh directory stands for a fresh clone (Deno remembers per directory
 * that it warned).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT } from "../../scripts/agent_process.ts";
import { runProgram } from "../helpers/run.ts";

Deno.test("a first run in a fresh checkout prints no 'Ignored build scripts' warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-fresh-checkout-" });
  try {
    for (const file of ["deno.json", "deno.lock", "package.json", "package-lock.json"]) {
      await Deno.copyFile(join(REPO_ROOT, file), join(dir, file));
    }
    await Deno.writeTextFile(join(dir, "hello.ts"), 'import "ws";\nconsole.log("hello");\n');
    const run = await runProgram(Deno.execPath(), ["run", "-A", "hello.ts"], { cwd: dir });
    assert.equal(run.code, 0, run.stderr);
    assert.equal(run.stdout, "hello\n");
    assert.doesNotMatch(run.stderr, /Ignored build scripts|Warning/, run.stderr);
    // The run must not have changed the lock either.
    assert.equal(
      await Deno.readTextFile(join(dir, "deno.lock")),
      await Deno.readTextFile(join(REPO_ROOT, "deno.lock")),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
