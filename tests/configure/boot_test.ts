/**
 * Boot integration (`configure -B`) into throw-away roots: the systemd unit
 * (checked by systemd-analyze when it is installed), the SysV init script and
 * its rc links, and the init script really starting, reporting and stopping a
 * stand-in agent while leaving the jobs it started running. The test
 * machine's own init system is never touched.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { configureMain } from "../../lib/configure/mod.ts";
import { detectInitSystem, installBoot, renderUnit } from "../../lib/configure/boot.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

async function withDir(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-boot-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Runs configure -B into `root`; returns the exit code and stderr lines. */
async function configureBoot(dir: string, root: string, initSystem?: "systemd" | "sysv") {
  await Deno.writeTextFile(join(dir, "ca.pem"), PEM);
  const err: string[] = [];
  const code = await configureMain(
    [
      "-p",
      join(dir, "dcm"),
      "-u",
      "ws://127.0.0.1:1/agentManager",
      "-c",
      "Other",
      "-U",
      "root",
      "-A",
      join(dir, "ca.pem"),
      "-B",
      "--root",
      root,
    ],
    {
      err: (l) => err.push(l),
      out: () => {},
      agentProgram: ["/usr/local/bin/dcm-agent"],
      initSystem,
    },
  );
  return { code, err };
}

function hasProgram(name: string): boolean {
  return (Deno.env.get("PATH") ?? "").split(":").some((d) => {
    try {
      return Deno.statSync(join(d, name)).isFile;
    } catch {
      return false;
    }
  });
}

Deno.test("the unit runs the agent with the installed paths, restarts it, and spares its jobs", () => {
  const unit = renderUnit({
    program: ["/opt/bin/dcm-agent"],
    confFile: "/srv/dcm/etc/agent.conf",
    base: "/srv/dcm",
  });
  assert.match(unit, /^ExecStart=\/opt\/bin\/dcm-agent run -c \/srv\/dcm\/etc\/agent.conf$/m);
  // systemd's watchdog restarts a hung agent; the agent says when it is ready.
  assert.match(unit, /^Type=notify$/m);
  assert.match(unit, /^WatchdogSec=\d+$/m);
  // Only the agent touches its pid file: a refused second agent's unit must not remove it.
  assert.doesNotMatch(unit, /^Exec(StartPost|StopPost)=/m);
  assert.match(unit, /^Restart=always$/m);
  assert.match(unit, /^RestartSec=10$/m);
  assert.match(unit, /^KillMode=process$/m);
  assert.match(unit, /^WantedBy=multi-user.target$/m);
  // None of the template's default paths is left.
  assert.doesNotMatch(unit, /[= ]\/dcm\/|\/usr\/local\/bin/);
  // A run from source puts deno and the main module in front.
  const dev = renderUnit({
    program: ["/usr/bin/deno", "run", "-A", "/src/main.ts"],
    confFile: "/c/agent.conf",
    base: "/c",
  });
  assert.match(dev, /^ExecStart=\/usr\/bin\/deno run -A \/src\/main.ts run -c \/c\/agent.conf$/m);
  assert.throws(
    () =>
      renderUnit({ program: ["/opt/my agent/dcm-agent"], confFile: "/c/agent.conf", base: "/c" }),
    /contains ' ', which the unit and init script cannot quote/,
  );
});

Deno.test({
  name: "systemd-analyze verify accepts the rendered unit",
  ignore: !hasProgram("systemd-analyze"),
  fn: async () => {
    await withDir(async (dir) => {
      const program = join(dir, "dcm-agent");
      await Deno.writeTextFile(program, "#!/bin/sh\nexit 0\n");
      await Deno.chmod(program, 0o755);
      const file = join(dir, "dcm-agent.service");
      await Deno.writeTextFile(
        file,
        renderUnit({ program: [program], confFile: join(dir, "agent.conf"), base: dir }),
      );
      const out = await new Deno.Command("systemd-analyze", {
        args: ["verify", file],
        stdout: "piped",
        stderr: "piped",
      })
        .output();
      const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
      assert.equal(out.code, 0, text);
      // In a container without a booted systemd the target units may look absent; nothing else may be reported.
      const complaints = text.split("\n").filter((l) =>
        l.trim() !== "" && !/non-existent unit|multi-user.target/.test(l)
      );
      assert.deepEqual(complaints, []);
    });
  },
});

if (!hasProgram("systemd-analyze")) {
  console.warn(
    "boot_test: systemd-analyze is not installed (apt-get install systemd); the unit verification is skipped",
  );
}

Deno.test("configure -B with systemd writes and enables the unit under --root", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "root");
    const { code, err } = await configureBoot(dir, root, "systemd");
    assert.equal(code, 0, err.join("\n"));
    const unitFile = join(root, "etc/systemd/system/dcm-agent.service");
    const unit = await Deno.readTextFile(unitFile);
    assert.match(
      unit,
      new RegExp(`^ExecStart=/usr/local/bin/dcm-agent run -c ${dir}/dcm/etc/agent.conf$`, "m"),
    );
    assert.equal(((await Deno.stat(unitFile)).mode ?? 0) & 0o777, 0o644);
    const link = join(root, "etc/systemd/system/multi-user.target.wants/dcm-agent.service");
    assert.equal(await Deno.readLink(link), "/etc/systemd/system/dcm-agent.service");
    // Idempotent: a second run replaces the same files.
    assert.equal((await configureBoot(dir, root, "systemd")).code, 0);
    assert.equal(await Deno.readTextFile(unitFile), unit);
    await assert.rejects(Deno.stat(join(root, "etc/init.d/dcm-agent")));
  });
});

Deno.test("configure -B without systemd writes the init script and rc links under --root", async () => {
  await withDir(async (dir) => {
    const root = join(dir, "root");
    await Deno.mkdir(root);
    assert.equal(detectInitSystem(root), "sysv");
    const { code, err } = await configureBoot(dir, root);
    assert.equal(code, 0, err.join("\n"));
    const script = join(root, "etc/init.d/dcm-agent");
    const text = await Deno.readTextFile(script);
    assert.equal(((await Deno.stat(script)).mode ?? 0) & 0o777, 0o755);
    assert.match(text, /^DAEMON=\/usr\/local\/bin\/dcm-agent$/m);
    assert.match(text, new RegExp(`^DAEMON_ARGS="run -c ${dir}/dcm/etc/agent.conf"$`, "m"));
    assert.match(text, new RegExp(`^PIDFILE=${dir}/dcm/dcm-agent.pid$`, "m"));
    assert.match(text, /^# Default-Start:\s+2 3 4 5$/m);
    assert.match(text, /^# chkconfig: 2345 60 40$/m);
    for (const level of ["2", "3", "4", "5"]) {
      assert.equal(
        await Deno.readLink(join(root, `etc/rc${level}.d/S20dcm-agent`)),
        "../init.d/dcm-agent",
      );
    }
    for (const level of ["0", "1", "6"]) {
      assert.equal(
        await Deno.readLink(join(root, `etc/rc${level}.d/K20dcm-agent`)),
        "../init.d/dcm-agent",
      );
    }
    const syntax = await new Deno.Command("sh", { args: ["-n", script] }).output();
    assert.equal(syntax.code, 0, "the init script parses with sh -n");
  });
});

Deno.test("init system detection looks under the root", async () => {
  await withDir(async (dir) => {
    assert.equal(detectInitSystem(dir), "sysv");
    await Deno.mkdir(join(dir, "run/systemd/system"), { recursive: true });
    assert.equal(detectInitSystem(dir), "systemd");
    const installed = join(dir, "image");
    await Deno.mkdir(join(installed, "usr/lib/systemd"), { recursive: true });
    await Deno.writeTextFile(join(installed, "usr/lib/systemd/systemd"), "");
    assert.equal(detectInitSystem(installed), "systemd");
  });
});

Deno.test("the init script starts, reports and stops the agent and leaves its jobs running", async () => {
  await withDir(async (dir) => {
    const base = join(dir, "dcm");
    await Deno.mkdir(join(base, "logs"), { recursive: true });
    // A stand-in agent: records its arguments, starts a long "job", and exits on SIGTERM.
    const fake = join(dir, "fake-agent");
    await Deno.writeTextFile(
      fake,
      `#!/bin/sh\necho "$@" > ${dir}/args\nsleep 300 &\necho $! > ${dir}/job.pid\ntrap 'exit 0' TERM\nwhile :; do sleep 0.1; done\n`,
    );
    await Deno.chmod(fake, 0o755);
    const root = join(dir, "root");
    installBoot({ program: [fake], confFile: join(base, "etc/agent.conf"), base }, {
      root,
      initSystem: "sysv",
    });
    const script = join(root, "etc/init.d/dcm-agent");
    const init = async (action: string) => {
      const out = await new Deno.Command("sh", {
        args: [script, action],
        stdout: "piped",
        stderr: "piped",
      }).output();
      return {
        code: out.code,
        text: new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr),
      };
    };
    let jobPid = 0;
    try {
      assert.equal((await init("status")).code, 3);
      const started = await init("start");
      assert.equal(started.code, 0, started.text);
      const pid = Number(await Deno.readTextFile(join(base, "dcm-agent.pid")));
      assert.ok(pid > 0);
      assert.equal(
        (await Deno.readTextFile(join(dir, "args"))).trim(),
        `run -c ${base}/etc/agent.conf`,
      );
      const status = await init("status");
      assert.equal(status.code, 0);
      assert.match(status.text, new RegExp(`running \\(pid ${pid}\\)`));
      assert.match((await init("start")).text, /already running/);
      jobPid = Number(await Deno.readTextFile(join(dir, "job.pid")));
      const stopped = await init("stop");
      assert.equal(stopped.code, 0, stopped.text);
      assert.throws(() => Deno.kill(pid, "SIGCONT"), "the agent is gone");
      await assert.rejects(Deno.stat(join(base, "dcm-agent.pid")));
      Deno.kill(jobPid, "SIGCONT"); // throws if the job died with the agent
      assert.equal((await init("status")).code, 3);
      assert.equal((await init("bogus")).code, 2);
    } finally {
      await init("stop");
      if (jobPid > 0) {
        try {
          Deno.kill(jobPid, "SIGKILL");
        } catch { /* already gone */ }
      }
    }
  });
});
