/**
 * Mistakes on the `dcm-agent` command line are caught: an unknown option to
 * `run` exits 2 naming it (the original's -v is still accepted), and a
 * $DCM_AGENT_CONF naming a missing file is an error, as -c is.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { REPO_ROOT } from "../../scripts/agent_process.ts";
import { runProgram } from "../helpers/run.ts";

const main = join(REPO_ROOT, "main.ts");
const run = (args: string[], env: Record<string, string> = {}) =>
  runProgram(Deno.execPath(), ["run", "-A", main, ...args], { env });

Deno.test("dcm-agent run: an unknown option exits 2; -v is accepted; a missing $DCM_AGENT_CONF is an error", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-main-cli-" });
  try {
    const bogus = await run(["run", "--bogus", "-c", join(dir, "agent.conf")]);
    assert.equal(bogus.code, 2);
    assert.equal(bogus.stdout, "");
    assert.equal(
      bogus.stderr.trim(),
      "dcm-agent: unknown option '--bogus'; see 'dcm-agent --help'",
    );

    // -v passes the option check and reaches the configuration, which is missing.
    const verbose = await run(["run", "-vv", "-c", join(dir, "nope.conf")]);
    assert.equal(verbose.code, 2);
    assert.match(verbose.stderr, /cannot read the file given with -c, .*nope\.conf/);

    const env = await run(["run"], { DCM_AGENT_CONF: join(dir, "missing.conf") });
    assert.equal(env.code, 2);
    assert.match(
      env.stderr,
      /^dcm-agent: configuration error: cannot read the file named by \$DCM_AGENT_CONF, .*missing\.conf: .*unset DCM_AGENT_CONF/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
