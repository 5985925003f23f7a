/**
 * What an operator meets on the VM, with the real agent process, the
 * development manager and a real journal: one agent per base directory,
 * `status` (text and --json) that says whether the agent is connected and
 * counts rejected requests, and a foreground `run` that logs to stderr under
 * systemd or with --log-stderr although logging.yaml writes to files.
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/wait.ts";
import { runProgram } from "../helpers/run.ts";
import { DevManager, RequestNackedError } from "../../scripts/dev_manager.ts";
import { AgentProcess, REPO_ROOT } from "../../scripts/agent_process.ts";
import { SYSTEM_CONFIG_FILE } from "../../lib/config/mod.ts";
import type { StatusFacts } from "../../lib/cli/status.ts";

function cliArgs(args: string[]): string[] {
  const entry = Deno.env.get("DCM_AGENT_TEST_ENTRY") ?? "main.ts";
  const flags = entry.endsWith(".js") ? ["--no-config", "--cached-only"] : [];
  return ["run", "-A", ...flags, entry, ...args];
}

async function runCli(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; out: string; stdout: string }> {
  const r = await runProgram(Deno.execPath(), cliArgs(args), {
    env: { NO_COLOR: "1", ...env },
    timeoutMs: 30_000,
  });
  return { code: r.code, out: r.stdout + r.stderr, stdout: r.stdout };
}

async function statusJson(conf: string): Promise<StatusFacts> {
  const r = await runCli(["status", "-c", conf, "--json"]);
  try {
    return JSON.parse(r.stdout);
  } catch {
    throw new Error(`status --json did not print JSON:\n${r.out}`);
  }
}

Deno.test("agent: a second run on the same base directory is refused and leaves the first alone", async () => {
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({ managerUrl: manager.url });
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 15000 }), "connecting");
    const pidFile = `${agent.baseDir}/dcm-agent.pid`;
    const second = await runCli(["run", "-c", agent.confFile]);
    assert.equal(second.code, 1, second.out);
    assert.match(second.out, new RegExp(`another agent \\(pid ${agent.pid}\\) is already running`));
    assert.ok(second.out.includes(agent.confFile), second.out);
    assert.equal(second.out.trim().split("\n").length, 1, second.out);
    // It neither connected nor touched the pid file.
    assert.equal(manager.connections, 1);
    assert.equal(Deno.readTextFileSync(pidFile).trim(), String(agent.pid));
    const status = await runCli(["status", "-c", agent.confFile]);
    assert.equal(status.code, 0, status.out);
    assert.match(status.out, new RegExp(`agent process:\\s+RUNNING \\(pid ${agent.pid},`));
    // The owner removes its own pid file when it stops; the lock goes with it.
    assert.equal((await agent.stop()).code, 0);
    assert.throws(() => Deno.statSync(pidFile));
    const after = await runCli(["status", "-c", agent.confFile]);
    assert.equal(after.code, 1);
    assert.match(after.out, /agent process:\s+NOT RUNNING \(no pid file /);
  } finally {
    await agent.cleanup();
    await manager.close();
  }
});

Deno.test("status: labelled lines, manager URL, connected since, rejected requests, --json", async () => {
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({ managerUrl: manager.url });
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 15000 }), "connecting");
    await manager.request("heartbeat", {});
    await assert.rejects(manager.request("no_such_command", {}), RequestNackedError);
    await assert.rejects(manager.request("no_such_command", {}), RequestNackedError);
    // The count is written at most once a second.
    await new Promise((r) => setTimeout(r, 1500));

    const text = await runCli(["status", "-c", agent.confFile]);
    assert.equal(text.code, 0, text.out);
    const lines = text.stdout.trimEnd().split("\n");
    for (const line of lines) {
      assert.match(line, /^[a-z][a-zA-Z' ()]+:\s+\S/, `unlabelled: ${line}`);
    }
    assert.match(text.out, new RegExp(`manager URL:\\s+${manager.url.replaceAll("/", "\\/")}\n`));
    assert.match(
      text.out,
      /connection:\s+CONNECTED since \d{4}-\d\d-\d\d \d\d:\d\d:\d\d \(agent version \d+\.\d+\.\d+\)\n/,
    );
    assert.match(text.out, /agent state:\s+UNKNOWN \(no initialize received yet\)/);
    assert.match(text.out, /requests processed:\s+1\n/);
    assert.match(text.out, /requests rejected \(NACK sent\):\s+2\n/);
    assert.doesNotMatch(text.out, /being replying/);
    assert.ok(!text.out.includes("\x1b["), "no colours when NO_COLOR is set");

    const json = await statusJson(agent.confFile);
    assert.equal(json.process.running, true);
    assert.equal(json.process.pid, agent.pid);
    assert.deepEqual(json.process.config_files, [agent.confFile]);
    assert.equal(json.manager_url, manager.url);
    assert.equal(json.connection.connected, true);
    assert.match(json.connection.since!, /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d$/);
    assert.match(json.connection.version!, /^\d+\.\d+\.\d+$/);
    assert.deepEqual(json.requests, {
      processed: 1,
      rejected: 2,
      running: 0,
      replying: 0,
      replies_rejected: 0,
    });
    assert.equal(json.agent_state.state, "UNKNOWN");
    assert.equal(json.journal.found, true);

    // The manager goes away: the agent still runs but is not connected.
    await manager.close();
    await waitFor(
      async () => (await statusJson(agent.confFile)).connection.connected === false,
      15000,
      "status to show the disconnection",
    );
    const down = await runCli(["status", "-c", agent.confFile]);
    assert.equal(down.code, 0, down.out);
    assert.match(down.out, /connection:\s+NOT CONNECTED since \d{4}-.* \(.+\)\n/);
  } finally {
    await agent.cleanup();
    await manager.close();
  }
});

Deno.test("status needs no manager URL and says when nothing is configured", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-status-" });
  try {
    Deno.writeTextFileSync(`${dir}/agent.conf`, `[storage]\nbase_dir=${dir}\n`);
    const r = await runCli(["status", "-c", `${dir}/agent.conf`]);
    assert.equal(r.code, 1, r.out);
    assert.doesNotMatch(r.out, /configuration error|required/);
    assert.match(r.out, /manager URL:\s+not set/);
    assert.match(r.out, /agent process:\s+NOT RUNNING/);
    assert.match(r.out, /agent state:\s+UNKNOWN \(the agent has not run here yet\)/);
    const json = JSON.parse((await runCli(["status", "-c", `${dir}/agent.conf`, "--json"])).stdout);
    assert.equal(json.manager_url, null);
    assert.equal(json.journal.found, false);

    // No agent.conf anywhere (only checkable where the system file is absent).
    try {
      Deno.statSync(SYSTEM_CONFIG_FILE);
    } catch {
      const none = await runCli(["status"], { DCM_AGENT_CONF: "" });
      assert.equal(none.code, 1, none.out);
      assert.match(none.out, /configuration:\s+NONE FOUND \(looked at \/dcm\/etc\/agent.conf/);
      assert.match(none.out, /manager URL:\s+not set/);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

const NOT_SYSTEMD = { INVOCATION_ID: "", JOURNAL_STREAM: "" };

/** An agent.conf section that sends the log to files through the shipped logging.yaml. */
function fileLogging(dir: string): Record<string, Record<string, string>> {
  const yaml = Deno.readTextFileSync(`${REPO_ROOT}/config/logging.yaml`)
    .replaceAll("@LOGFILE_PATH@", `${dir}/agent.log`).replaceAll("@LOG_LEVEL@", "INFO")
    .replaceAll("@DCM_USER@", "root");
  Deno.writeTextFileSync(`${dir}/logging.yaml`, yaml);
  return { logging: { configfile: `${dir}/logging.yaml` } };
}

Deno.test("run logs to stderr under systemd (INVOCATION_ID) although logging.yaml writes files", async () => {
  const manager = await DevManager.start();
  const dir = Deno.makeTempDirSync({ prefix: "dcm-stderr-" });
  // The test itself may run under systemd: the plain agent must not inherit that.
  const plain = await AgentProcess.start({
    managerUrl: manager.url,
    conf: fileLogging(dir),
    env: NOT_SYSTEMD,
  });
  const systemd = await AgentProcess.start({
    managerUrl: manager.url,
    conf: fileLogging(dir),
    env: { INVOCATION_ID: "0123456789abcdef" },
  });
  try {
    await systemd.whileRunning(
      waitFor(() => /INFO .*dcm-agent .* started/.test(systemd.output()), 15000, "stderr log"),
      "starting",
    );
    await manager.waitForHandshake({ timeoutMs: 15000, count: 2 });
    await waitFor(() => /connected to the manager/.test(systemd.output()), 15000, "connect log");
    assert.match(Deno.readTextFileSync(`${dir}/agent.log`), /started/);
    // Without systemd or the flag a foreground run stays quiet, as before.
    await plain.whileRunning(new Promise((r) => setTimeout(r, 500)), "running");
    assert.equal(plain.output().trim(), "");
    assert.doesNotMatch(systemd.output(), /token|DEBUG/i);
  } finally {
    await plain.cleanup();
    await systemd.cleanup();
    await manager.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("run --log-stderr logs to stderr at the configured level", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-stderr-" });
  try {
    const conf = fileLogging(dir);
    Deno.writeTextFileSync(
      `${dir}/agent.conf`,
      `[connection]\nagentmanager_url=ws://127.0.0.1:9/nowhere\n[storage]\nbase_dir=${dir}\n` +
        `[logging]\nconfigfile=${conf.logging.configfile}\n[cloud]\ntype=UNKNOWN\n`,
    );
    const child = new Deno.Command(Deno.execPath(), {
      args: cliArgs(["run", "-c", `${dir}/agent.conf`, "--log-stderr"]),
      cwd: REPO_ROOT,
      env: { NO_COLOR: "1", ...NOT_SYSTEMD },
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).spawn();
    let text = "";
    const reader = child.stderr.pipeThrough(new TextDecoderStream()).getReader();
    const timer = setTimeout(() => child.kill("SIGKILL"), 20_000);
    while (!/cannot reach the manager/.test(text)) {
      const { value, done } = await reader.read();
      if (done) break;
      text += value;
    }
    child.kill("SIGTERM");
    while (!(await reader.read()).done) { /* drain */ }
    clearTimeout(timer);
    await child.status;
    assert.match(text, /^INFO .*dcm-agent .* started/m);
    assert.match(text, /^WARNING .*cannot reach the manager at ws:\/\/127\.0\.0\.1:9\/nowhere/m);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
