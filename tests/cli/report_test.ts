import assert from "node:assert/strict";
import { buildReport } from "../../lib/cli/report.ts";
import { configFromValues } from "../../lib/config/agent_conf.ts";
import { runProgram } from "../helpers/run.ts";

Deno.test("report: a tarball of the base dir, metadata and processes, without secure/", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-report-" });
  try {
    const base = `${dir}/dcm`;
    Deno.mkdirSync(`${base}/etc`, { recursive: true });
    Deno.mkdirSync(`${base}/secure`, { recursive: true });
    Deno.writeTextFileSync(`${base}/etc/agent.conf`, "[connection]\n");
    Deno.writeTextFileSync(`${base}/secure/token`, "s3cret-token\n");
    const config = configFromValues({
      connection: { agentmanager_url: "ws://127.0.0.1:1/x" },
      storage: { base_dir: base },
      platform: { name: "debian", version: "12" },
      system: { user: "root" },
    });
    const file = await buildReport(config, { output: `${dir}/report.tar.gz` });
    assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
    const list = await runProgram("tar", ["-tzf", file]);
    const names = list.stdout.split("\n");
    assert.ok(names.includes("dcm/etc/agent.conf"), list.stdout);
    assert.ok(names.includes("meta_info.txt") && names.includes("process_info.txt"), list.stdout);
    assert.ok(!names.some((n) => n.includes("secure")), `secure/ must be left out: ${list.stdout}`);
    const meta = await runProgram("tar", ["-xzOf", file, "meta_info.txt"]);
    assert.match(meta.stdout, /platform name: debian\nplatform version: 12\nagent version: \d/);
    assert.match(meta.stdout, /protocol version: 104/);
    const procs = await runProgram("tar", ["-xzOf", file, "process_info.txt"]);
    assert.match(
      procs.stdout,
      /^processes of user root \(uid 0\)$/m,
      "the user's uid is found, so only its processes are listed",
    );
    assert.match(procs.stdout, new RegExp(`^${Deno.pid}\\t`, "m"), "this process (root) is listed");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
