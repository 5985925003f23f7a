/**
 * systemd notifications (unit Type=notify with WatchdogSec): the test binds
 * its own unix datagram socket and gives it to the agent as NOTIFY_SOCKET,
 * as systemd does. READY=1, STATUS= (connection, commands running),
 * WATCHDOG=1 and STOPPING=1 from the real agent process; the pings stop
 * while the agent's event loop is blocked (in-process: a busy loop; the real
 * agent: SIGSTOP) and resume after.
 *
 * No systemd runs on the build machines, so a real systemd is not part of the
 * suite. Checked by hand once (systemd 252 as PID 1 in a QEMU guest, the unit
 * from config/ with WatchdogSec=10): READY=1 made it active, `systemctl
 * status` showed the STATUS= line, and after SIGSTOP it logged "Watchdog
 * timeout", killed the agent with SIGABRT and restarted it.
 */
import assert from "node:assert/strict";
import { waitFor } from "../helpers/wait.ts";
import { NotifySocket } from "../helpers/notify_socket.ts";
import { scriptArgs } from "../helpers/script_args.ts";
import { ServiceNotify, watchdogInterval } from "../../lib/agent/service_notify.ts";
import { socketAddress } from "../../lib/os/sd_notify.ts";
import { DevManager } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

Deno.test("watchdog: pings come from the event loop, so a blocked loop sends none", async () => {
  const sock = new NotifySocket();
  const env = (n: string) =>
    ({ NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: "200000" } as Record<string, string>)[n];
  const notify = await ServiceNotify.open(() => "testing", env);
  assert.ok(notify, "NOTIFY_SOCKET is set");
  try {
    assert.equal(notify.watchdogMs, 100);
    notify.ready();
    assert.deepEqual(sock.drain().map((n) => n.message), ["READY=1\nSTATUS=testing"]);
    await sleep(600);
    assert.ok(sock.drain().filter((n) => n.message === "WATCHDOG=1").length >= 3);
    // Block the loop for ten ping intervals, then read the socket without yielding.
    const until = performance.now() + 1000;
    while (performance.now() < until) { /* a hung agent */ }
    assert.deepEqual(sock.drain(), [], "no ping while the event loop is blocked");
    await sleep(500);
    assert.ok(sock.drain().some((n) => n.message === "WATCHDOG=1"), "pings resume");
    notify.stopping();
    assert.match(sock.drain().at(-1)!.message, /^STOPPING=1\n/);
    // A shutdown that hangs is caught as well: the pings go on, the status stays.
    await sleep(300);
    const late = sock.drain().map((n) => n.message);
    assert.ok(late.length > 0 && late.every((m) => m === "WATCHDOG=1"), late.join("|"));
  } finally {
    notify.close();
    sock.close();
  }
});

Deno.test("watchdog: nothing without NOTIFY_SOCKET, and no pings meant for another process", async () => {
  assert.equal(await ServiceNotify.open(() => "x", () => undefined), null);
  // sockaddr_un: family AF_UNIX, then a NUL-terminated path or NUL + abstract name.
  assert.deepEqual([...socketAddress("/a")], [1, 0, 47, 97, 0]);
  assert.deepEqual([...socketAddress("@a")], [1, 0, 0, 97]);
  assert.throws(() => socketAddress("/" + "x".repeat(200)), /longer than/);
  const env = (vars: Record<string, string>) => (n: string) => vars[n];
  assert.equal(watchdogInterval(env({})), 0);
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "60000000" })), 30_000);
  assert.equal(watchdogInterval(env({ WATCHDOG_USEC: "60000000", WATCHDOG_PID: "1" })), 0);
  assert.equal(
    watchdogInterval(env({ WATCHDOG_USEC: "60000000", WATCHDOG_PID: String(Deno.pid) })),
    30_000,
  );
});

Deno.test("agent: READY=1, STATUS= lines, WATCHDOG=1 that stop while it is frozen, STOPPING=1", async () => {
  const sock = new NotifySocket();
  sock.startPolling();
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({
    managerUrl: manager.url,
    env: { NOTIFY_SOCKET: sock.path, WATCHDOG_USEC: "400000" },
  });
  const has = (text: string) => sock.matching(text).length > 0;
  try {
    await agent.whileRunning(waitFor(() => has("READY=1"), 15000, "READY=1"), "starting");
    await manager.waitForHandshake({ timeoutMs: 15000 });
    await waitFor(
      () => has(`STATUS=connected to ${manager.url} since `),
      5000,
      "the connected STATUS",
    );
    await waitFor(() => sock.matching("WATCHDOG=1").length >= 3, 5000, "watchdog pings");

    // A running command shows in the status line.
    const text = "#!/bin/sh\nsleep 2\n";
    const run = manager.request("run_script", await scriptArgs(text));
    await waitFor(
      () =>
        has("STATUS=") && /1 command running/.test(
          sock.matching("STATUS=").at(-1)!.message,
        ),
      5000,
      "STATUS with 1 command running",
    );
    await run;
    await waitFor(
      () => /0 commands running/.test(sock.matching("STATUS=").at(-1)!.message),
      5000,
      "STATUS back to 0 commands",
    );

    // A frozen agent stops pinging; systemd would kill it after WatchdogSec.
    Deno.kill(agent.pid, "SIGSTOP");
    await sleep(150); // what was in flight arrives
    const before = sock.matching("WATCHDOG=1").length;
    await sleep(1500);
    assert.equal(sock.matching("WATCHDOG=1").length, before, "no ping from a stopped agent");
    Deno.kill(agent.pid, "SIGCONT");
    await waitFor(() => sock.matching("WATCHDOG=1").length > before, 5000, "pings to resume");

    await agent.stop();
    await sleep(100);
    assert.ok(has("STOPPING=1"), "STOPPING=1 at shutdown");
    assert.equal(agent.exitStatus?.code, 0);
  } finally {
    await agent.cleanup();
    await manager.close();
    sock.close();
  }
});
