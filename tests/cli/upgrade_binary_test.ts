/**
 * `dcm-agent upgrade-binary` in a throw-away root, under a real SysV init
 * script (the one `configure -B` installs) standing in for the service
 * manager, since systemd does not run here. The "executables" are small
 * wrappers that run the agent from source with the pinned deno (a compiled
 * binary cannot be built here): a good one, one that does not start, one
 * that starts but never reaches the manager. Covers success, both
 * rollbacks, a checksum mismatch, and requests in flight across a swap
 * started by the `upgrade` command (answered once, run once).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { REPO_ROOT } from "../../scripts/agent_process.ts";
import { renderIni } from "../../lib/config/ini.ts";
import { AGENT_RUNTIME_FLAGS } from "../../lib/config/runtime_flags.ts";
import { installBoot } from "../../lib/configure/boot.ts";
import { readUpgrade } from "../../lib/os/upgrade_state.ts";
import { waitFor } from "../helpers/wait.ts";

const DENO = Deno.execPath();

async function denoDir(): Promise<string> {
  const out = await new Deno.Command(DENO, { args: ["info", "--json"], stdout: "piped" }).output();
  return JSON.parse(new TextDecoder().decode(out.stdout)).denoDir;
}

async function sha256File(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

type Kind = "good" | "nostart" | "nomanager";

interface Box {
  root: string;
  base: string;
  conf: string;
  target: string;
  init: string;
  manager: DevManager;
  wrapper(kind: Kind, tag: string): Promise<string>;
  upgrade(source: string, extra?: string[]): Promise<{ code: number; output: string }>;
  logLines(): string[];
}

async function makeBox(manager: DevManager): Promise<Box> {
  const root = await Deno.makeTempDir({ prefix: "dcm-upgrade-root-" });
  const base = join(root, "dcm");
  for (const d of ["bin", "etc", "logs", "tmp", "secure"]) {
    await Deno.mkdir(join(base, d), { recursive: true, mode: 0o700 });
  }
  await Deno.mkdir(join(root, "usr/local/bin"), { recursive: true });
  const confValues = (url: string) => ({
    connection: { agentmanager_url: url, backoff: "100", max_backoff: "1000" },
    storage: { base_dir: base, temppath: join(base, "tmp"), script_dir: join(base, "bin") },
    messaging: { retransmission_timeout: "1" },
    platform: { name: "debian", version: "12" },
    system: { user: "root" },
    cloud: { type: "UNKNOWN" },
    workers: { shutdown_grace: "20" },
  });
  const conf = join(base, "etc/agent.conf");
  await Deno.writeTextFile(conf, renderIni(confValues(manager.url)));
  // The same settings, but a manager that is not there.
  const deadConf = join(base, "etc/dead.conf");
  await Deno.writeTextFile(deadConf, renderIni(confValues("ws://127.0.0.1:9/agentManager")));
  const env =
    `export DENO_DIR='${await denoDir()}' HOME='${root}' NO_COLOR=1 DENO_NO_UPDATE_CHECK=1`;
  const run = `cd '${REPO_ROOT}' && exec '${DENO}' run -A ${AGENT_RUNTIME_FLAGS.join(" ")} main.ts`;
  const box: Box = {
    root,
    base,
    conf,
    target: join(root, "usr/local/bin/dcm-agent"),
    init: join(root, "etc/init.d/dcm-agent"),
    manager,
    async wrapper(kind, tag) {
      const file = join(root, `dcm-agent-${tag}`);
      const body = kind === "good"
        ? `${run} "$@"`
        : kind === "nostart"
        ? `case "$1" in -V|--version) echo "Version 9.0.0"; exit 0;; esac\necho "cannot start" >&2\nexit 1`
        : `case "$1" in -V|--version) ${run} "$@";; esac\n${run} run -c '${deadConf}'`;
      await Deno.writeTextFile(file, `#!/bin/sh\n# ${tag}\n${env}\n${body}\n`, { mode: 0o755 });
      return file;
    },
    async upgrade(source, extra = []) {
      const out = await new Deno.Command(DENO, {
        args: [
          "run",
          "-A",
          "main.ts",
          "upgrade-binary",
          source,
          "--target",
          box.target,
          "-c",
          conf,
          "--root",
          root,
          ...extra,
        ],
        cwd: REPO_ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return { code: out.code, output: dec.decode(out.stdout) + dec.decode(out.stderr) };
    },
    logLines() {
      return manager.frames
        .map((r) => r.frame)
        .filter((f): f is Frame => typeof f === "object" && f.type === "LOG")
        .map((f) => `${f.level} ${decodeURIComponent(String(f.message))}`);
    },
  };
  await Deno.copyFile(await box.wrapper("good", "v1"), box.target);
  installBoot({ program: [box.target], confFile: conf, base }, { root, initSystem: "sysv" });
  return box;
}

async function initScript(box: Box, action: string): Promise<string> {
  const out = await new Deno.Command(box.init, { args: [action], stdout: "piped", stderr: "piped" })
    .output();
  return new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
}

/** SIGKILLs the processes this test started that may outlive a failure (their command lines name `root`). */
function killProcessesUsing(root: string): void {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmdline.includes(root)) Deno.kill(Number(e.name), "SIGKILL");
    } catch { /* gone */ }
  }
}

function agentPid(box: Box): number {
  return Number(Deno.readTextFileSync(join(box.base, "dcm-agent.pid")).trim());
}

Deno.test("upgrade-binary: success, checksum mismatch, rollbacks, and requests in flight across the swap", async (t) => {
  const manager = await DevManager.start();
  const box = await makeBox(manager);
  try {
    await initScript(box, "start");
    await manager.waitForHandshake({ count: 1, timeoutMs: 30000 });
    const v1 = Deno.readTextFileSync(box.target);

    await t.step("a checksum mismatch changes nothing; one upgrade at a time", async () => {
      const v2 = await box.wrapper("good", "v2");
      const r = await box.upgrade(v2, ["--sha256", "0".repeat(64)]);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, /checksum does not match/);
      assert.equal(Deno.readTextFileSync(box.target), v1);
      assert.throws(() => Deno.statSync(`${box.target}.new`), Deno.errors.NotFound);
      assert.equal(readUpgrade(box.base), undefined);
      // A live upgrade-binary's lock refuses a second one; a stale lock is taken over.
      const lock = `${box.target}.upgrade-lock`;
      await Deno.writeTextFile(lock, `${Deno.pid}\n`);
      const busy = await box.upgrade(v2, ["--sha256", "0".repeat(64)]);
      assert.equal(busy.code, 1);
      assert.match(busy.output, new RegExp(`another upgrade-binary \\(pid ${Deno.pid}\\)`));
      await Deno.writeTextFile(lock, "4194304\n");
      const stale = await box.upgrade(v2, ["--sha256", "0".repeat(64)]);
      assert.match(stale.output, /checksum does not match/);
      assert.throws(() => Deno.statSync(lock), Deno.errors.NotFound);
    });

    await t.step("success: swapped, restarted, the new agent reached the manager", async () => {
      const before = manager.handshakes.length;
      const oldPid = agentPid(box);
      const v2 = await box.wrapper("good", "v2");
      const r = await box.upgrade(v2, ["--sha256", await sha256File(v2), "--timeout", "60"]);
      assert.equal(r.code, 0, r.output);
      assert.equal(Deno.readTextFileSync(box.target), Deno.readTextFileSync(v2));
      assert.equal(Deno.readTextFileSync(`${box.target}.previous`), v1);
      assert.equal(readUpgrade(box.base)?.state, "upgraded");
      assert.ok(manager.handshakes.length > before);
      assert.notEqual(agentPid(box), oldPid);
      await waitFor(
        () => box.logLines().some((l) => l.startsWith("INFO") && l.includes("upgraded from")),
        10000,
        "the LOG line of the upgrade",
      );
      const status = await new Deno.Command(DENO, {
        args: ["run", "-A", "main.ts", "status", "-c", box.conf],
        cwd: REPO_ROOT,
        env: { NO_COLOR: "1" },
        stdout: "piped",
      }).output();
      const text = new TextDecoder().decode(status.stdout);
      assert.match(text, /last upgrade:\s+UPGRADED/);
      assert.match(text, /connection:\s+CONNECTED since .* \(agent version /);
    });

    await t.step("a new executable that does not start is rolled back", async () => {
      const good = Deno.readTextFileSync(box.target);
      const bad = await box.wrapper("nostart", "broken");
      const r = await box.upgrade(bad, ["--timeout", "60"]);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, /the restart failed/);
      assert.equal(Deno.readTextFileSync(box.target), good);
      assert.equal(Deno.readTextFileSync(`${box.target}.failed`), Deno.readTextFileSync(bad));
      assert.equal(readUpgrade(box.base)?.state, "rolled_back");
      await waitFor(
        () => box.logLines().some((l) => l.startsWith("WARNING") && l.includes("rolled back")),
        10000,
        "the LOG line of the rollback",
      );
    });

    await t.step("a new executable that never reaches the manager is rolled back", async () => {
      const good = Deno.readTextFileSync(box.target);
      const lost = await box.wrapper("nomanager", "lost");
      const r = await box.upgrade(lost, ["--timeout", "8"]);
      assert.equal(r.code, 1, r.output);
      assert.match(r.output, /did not complete a handshake with the manager within 8 s/);
      assert.equal(Deno.readTextFileSync(box.target), good);
      const rec = readUpgrade(box.base)!;
      assert.equal(rec.state, "rolled_back");
      assert.match(rec.reason!, /within 8 s/);
    });

    await t.step(
      "requests in flight across a swap started by 'upgrade' run and are answered once",
      async () => {
        const counter = join(box.root, "runs");
        const slow = `#!/bin/sh\necho run >> '${counter}'\nsleep 6\necho slow-done\n`;
        const slowDigest = [
          ...new Uint8Array(
            await crypto.subtle.digest("SHA-256", new TextEncoder().encode(slow)),
          ),
        ].map((b) => b.toString(16).padStart(2, "0")).join("");
        const v3 = await box.wrapper("good", "v3");
        const script = join(box.root, "upgrade.sh");
        await Deno.writeTextFile(
          script,
          `#!/bin/sh\nexec '${box.target}' upgrade-binary "$4" --sha256 "$5" --target '${box.target}' ` +
            `-c '${box.conf}' --root '${box.root}' --timeout 60\n`,
        );
        const upgradeHandshakes = manager.handshakes.length;
        const running = manager.request("run_script", {
          b64script: btoa(slow),
          checksum: slowDigest,
        }, {
          timeoutMs: 60000,
          retransmitSeconds: 2,
        });
        await waitFor(
          () => {
            try {
              return Deno.readTextFileSync(counter).includes("run");
            } catch {
              return false;
            }
          },
          20000,
          "the slow script to start",
        );
        const up = await manager.request("upgrade", {
          newVersion: "2.0.1",
          url: `file://${script}`,
          args: [v3, await sha256File(v3)],
        }, { timeoutMs: 60000, retransmitSeconds: 2 });
        const upReply = up.reply.payload as Frame;
        assert.equal(upReply.return_code, 0, String(upReply.error_message));
        assert.match(String(upReply.message), /continue in the background/);
        const slowReply = await running;
        const slowAnsweredAt = Date.now();
        assert.equal((slowReply.reply.payload as Frame).message, "slow-done\n");
        await waitFor(() => readUpgrade(box.base)?.state === "upgraded", 60000, "the upgrade");
        // The detached finisher logs the outcome once its restart has returned.
        const finisherLog = join(box.base, "logs/upgrade-binary.log");
        await waitFor(
          () => Deno.readTextFileSync(finisherLog).includes("upgrade complete"),
          30000,
          `the finisher to report in ${finisherLog}`,
        );
        // The swap and restart began while the script still ran: the old agent waited for it.
        assert.ok(Date.parse(readUpgrade(box.base)!.swappedAt) < slowAnsweredAt);
        assert.ok(manager.handshakes.length > upgradeHandshakes);
        assert.equal(Deno.readTextFileSync(box.target), Deno.readTextFileSync(v3));
        // Each ran once; every REPLY the agent sent for them carries the same answer.
        assert.equal(Deno.readTextFileSync(counter), "run\n");
        for (const res of [slowReply, up]) {
          const replies = manager.frames.map((r) => r.frame).filter((f): f is Frame =>
            typeof f === "object" && f.type === "REPLY" && f.request_id === res.requestId
          );
          assert.ok(replies.length >= 1);
          for (const f of replies) assert.deepEqual(f.payload, res.reply.payload);
        }
        // After the restart the new agent still answers both from its journal.
        const again = await manager.request("run_script", {
          b64script: btoa(slow),
          checksum: slowDigest,
        }, {
          requestId: slowReply.requestId,
        });
        assert.equal(again.reply.type, "REPLY");
        assert.equal(Deno.readTextFileSync(counter), "run\n");
      },
    );
  } finally {
    await initScript(box, "stop").catch(() => "");
    try {
      Deno.kill(agentPid(box), "SIGKILL");
    } catch { /* stopped */ }
    killProcessesUsing(box.root);
    await manager.close();
    await Deno.remove(box.root, { recursive: true }).catch(() => {});
  }
});
