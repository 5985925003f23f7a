/**
 * External executable plugins end to end: the real agent offers `type = exe`
 * sections of plugin.conf to the development manager and runs them; bad
 * plugins fail clearly; `dcm-agent plugins add|remove|list` edits plugin.conf
 * and a SIGHUP makes the agent hand the manager a new command list.
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/wait.ts";
import { runProgram } from "../helpers/run.ts";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess, REPO_ROOT } from "../../scripts/agent_process.ts";
import { pluginsMain } from "../../lib/cli/plugins.ts";

/** The example plugin of the README, taken from it so that the documented one is the tested one. */
function readmeExample(): string {
  const readme = Deno.readTextFileSync(`${REPO_ROOT}/README.md`);
  const m = /```sh\n(#!\/bin\/sh\n# greet:[\s\S]*?)```/.exec(readme);
  if (!m) throw new Error("README.md has no example plugin 'greet' in a ```sh block");
  return m[1];
}
const GREET = readmeExample();

function script(dir: string, name: string, body: string): string {
  const path = `${dir}/${name}`;
  Deno.writeTextFileSync(path, body.startsWith("#!") ? body : `#!/bin/sh\n${body}\n`, {
    mode: 0o755,
  });
  return path;
}

const payload = (f: Frame) => f.payload as Record<string, unknown>;
const errorText = (f: Frame) => decodeURIComponent(String(payload(f).error_message));

function gone(pid: number): boolean {
  try {
    Deno.kill(pid, "SIGCONT");
    return false;
  } catch {
    return true;
  }
}

Deno.test("exe plugins: example plugin, bad replies, time limit, CANCEL, missing executables, plugins add/remove/list with SIGHUP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-exe-plugins-" });
  const manager = await DevManager.start();
  let agent: AgentProcess | undefined;
  try {
    const greet = script(dir, "greet", GREET);
    const badJson = script(dir, "bad_json", "cat > /dev/null\necho 'this is not json'");
    const noJson = script(dir, "no_json", "cat > /dev/null\necho 'it broke' >&2\nexit 3");
    const hang = script(dir, "hang", `cat > /dev/null\necho $$ > '${dir}/hang.pid'\nsleep 60`);
    const slow = script(dir, "slow", `cat > /dev/null\necho $$ > '${dir}/slow.pid'\nsleep 60`);
    const args = script(
      dir,
      "args",
      'cat > "$0.stdin"\necho \'{"return_code": 0, "reply_type": "void"}\'',
    );
    Deno.writeTextFileSync(`${dir}/not_executable`, "#!/bin/sh\n", { mode: 0o644 });
    const pluginConf = `${dir}/plugin.conf`;
    Deno.writeTextFileSync(
      pluginConf,
      [
        "# plugins for the test",
        "[plugin:heartbeat]",
        "type = python_module",
        "module_name = dcm.agent.plugins.builtin.heartbeat",
        "",
        "[plugin:greet]",
        "type = exe",
        `path = ${greet}`,
        "describe = true",
        "",
        "[plugin:bad_json]\ntype = exe",
        `path = ${badJson}`,
        "",
        "[plugin:no_json]\ntype = exe",
        `path = ${noJson}`,
        "",
        "[plugin:hang]\ntype = exe\ntimeout = 1",
        `path = ${hang}`,
        "",
        "[plugin:slow]\ntype = exe",
        `path = ${slow}`,
        "",
        "[plugin:args]\ntype = exe",
        `path = ${args}`,
        "arg.count = int; required",
        'arg.label = str; default="none"',
        "",
        "# a plugin whose file is missing: skipped, the handshake still works",
        "[plugin:missing]\ntype = exe\npath = /nonexistent/plugin",
        "",
        "[plugin:not_executable]\ntype = exe",
        `path = ${dir}/not_executable`,
        "",
      ].join("\n"),
    );
    agent = await AgentProcess.start({
      managerUrl: manager.url,
      conf: { plugin: { configfile: pluginConf } },
    });
    const hs = await agent.whileRunning(
      manager.waitForHandshake({ timeoutMs: 15000 }),
      "handshake",
    );
    assert.deepEqual((hs.features as Frame).plugins, [
      "heartbeat",
      "greet",
      "bad_json",
      "no_json",
      "hang",
      "slow",
      "args",
    ]);
    assert.match(agent.output(), /plugin\.conf .*\[plugin:missing\] is skipped: .*does not exist/);
    assert.match(agent.output(), /\[plugin:not_executable\] is skipped: .*not executable/);

    // The example plugin, with its arguments from --describe.
    const ok = await manager.request("greet", { name: "world" });
    assert.deepEqual(payload(ok.reply), {
      return_code: 0,
      reply_type: "string",
      reply_object: "hello world",
      message: "",
      error_message: "",
    });
    const missingArg = await manager.request("greet", {});
    assert.equal(payload(missingArg.reply).return_code, 1);
    assert.match(errorText(missingArg.reply), /name/);

    // Arguments converted exactly as for built-in commands, then sent on stdin.
    const conv = await manager.request("args", { count: "42" }, { requestId: "args-1" });
    assert.equal(payload(conv.reply).return_code, 0);
    assert.deepEqual(JSON.parse(Deno.readTextFileSync(`${args}.stdin`)), {
      command: "args",
      arguments: { count: 42, label: "none" },
      request_id: "args-1",
    });
    const badArg = await manager.request("args", { count: "many" });
    assert.equal(payload(badArg.reply).return_code, 1);
    assert.match(errorText(badArg.reply), /count.*whole number/);

    const bad = await manager.request("bad_json", {});
    assert.equal(payload(bad.reply).return_code, 1);
    assert.match(errorText(bad.reply), /bad_json.*other than one JSON object.*this is not json/);
    const failed = await manager.request("no_json", {});
    assert.equal(payload(failed.reply).return_code, 1);
    assert.match(errorText(failed.reply), /exited with code 3 .*printed nothing.*it broke/);

    const started = performance.now();
    const hung = await manager.request("hang", {});
    assert.match(errorText(hung.reply), /ran longer than 1 s and was stopped/);
    assert.ok(performance.now() - started < 10000);
    const hangPid = Number(Deno.readTextFileSync(`${dir}/hang.pid`));
    await waitFor(() => gone(hangPid), 5000, "the hung plugin to be killed");

    // CANCEL ends the process tree; the manager still gets a REPLY.
    const slowReq = manager.request("slow", {}, { requestId: "slow-1" });
    const slowPid = await waitFor(
      () => {
        try {
          return Number(Deno.readTextFileSync(`${dir}/slow.pid`)) || null;
        } catch {
          return null;
        }
      },
      10000,
      "the slow plugin to start",
    );
    manager.send({ type: "CANCEL", request_id: "slow-1", message_id: "c1" });
    const cancelled = await slowReq;
    assert.equal(payload(cancelled.reply).return_code, 1);
    assert.match(errorText(cancelled.reply), /cancelled/);
    await waitFor(() => gone(slowPid), 5000, "the cancelled plugin to be killed");

    // plugins list / add / remove on the agent's own agent.conf, then SIGHUP.
    const out: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => out.push(l) };
    assert.equal(await pluginsMain(["list", "-c", agent.confFile], io), 0);
    assert.ok(out.some((l) => l.startsWith("greet\texe\tnormal\t")));
    assert.ok(out.some((l) => l.startsWith("missing\texe") && l.includes("SKIPPED")));

    out.length = 0;
    const hello = script(dir, "hello", GREET);
    assert.equal(await pluginsMain(["add", "hello", "/nonexistent", "-c", agent.confFile], io), 1);
    assert.match(out.join("\n"), /does not exist/);
    assert.equal(
      await pluginsMain(["add", "hello", hello, "--arg", "name=strr", "-c", agent.confFile], io),
      2,
    );
    assert.equal(
      await pluginsMain(
        ["add", "hello", hello, "--arg", "name=str; required", "--long", "--reload"].concat([
          "-c",
          agent.confFile,
        ]),
        io,
      ),
      0,
    );
    assert.equal(await pluginsMain(["add", "hello", hello, "-c", agent.confFile], io), 1);
    assert.match(out.join("\n"), /already has \[plugin:hello\]/);
    const edited = Deno.readTextFileSync(pluginConf);
    assert.ok(edited.startsWith("# plugins for the test\n[plugin:heartbeat]"), "comments kept");
    assert.match(edited, /# a plugin whose file is missing/);
    assert.match(
      edited,
      /\[plugin:hello\]\ntype = exe\npath = .*\/hello\nlonger_runner = True\narg\.name = str; required\n/,
    );

    // The SIGHUP that --reload sent: a new handshake offers the new command.
    const hs2 = await agent.whileRunning(
      manager.waitForHandshake({ count: 2, timeoutMs: 15000 }),
      "the handshake after SIGHUP",
    );
    assert.ok(((hs2.features as Frame).plugins as string[]).includes("hello"));
    const job = await manager.request("hello", { name: "again" });
    assert.equal(payload(job.reply).return_code, 0); // A long runner replies with its job.

    assert.equal(await pluginsMain(["remove", "greet", "-c", agent.confFile], io), 0);
    assert.equal(await pluginsMain(["remove", "greet", "-c", agent.confFile], io), 1);
    const after = Deno.readTextFileSync(pluginConf);
    assert.doesNotMatch(after, /\[plugin:greet\]/);
    assert.match(after, /\[plugin:bad_json\]/);

    // Through the real command line, then a plain SIGHUP.
    const cli = await runProgram(Deno.execPath(), [
      "run",
      "-A",
      "main.ts",
      "plugins",
      "list",
      "-c",
      agent.confFile,
    ]);
    assert.equal(cli.code, 0, cli.stderr);
    assert.doesNotMatch(cli.stdout, /^greet\t/m);
    assert.match(cli.stdout, /^hello\texe\tlong\t/m);
    agent.kill("SIGHUP");
    const hs3 = await agent.whileRunning(
      manager.waitForHandshake({ count: 3, timeoutMs: 15000 }),
      "the handshake after the second SIGHUP",
    );
    assert.ok(!((hs3.features as Frame).plugins as string[]).includes("greet"));
  } finally {
    await agent?.stop();
    await agent?.cleanup();
    await manager.close();
    await Deno.remove(dir, { recursive: true });
  }
});
