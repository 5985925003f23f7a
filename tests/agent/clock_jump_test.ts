/**
 * The wall clock jumps (a VM restored from a snapshot, an NTP step): the agent
 * runs under libfaketime (Debian package `faketime`) with only the wall clock
 * faked and re-read from a file, so the test moves the agent's time by hours
 * while it runs. Heartbeats, reply retransmission and reconnect back-off run
 * on the monotonic clock: a jump neither stalls nor floods the manager.
 */
import assert from "node:assert/strict";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { FaultProxy } from "../helpers/fault_proxy.ts";
import { delay, waitFor } from "../helpers/wait.ts";

const LIBFAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1";

function libfaketime(): string {
  try {
    Deno.statSync(LIBFAKETIME);
  } catch {
    throw new Error(
      `${LIBFAKETIME} is missing: install the Debian package 'faketime' (scripts/test.sh does)`,
    );
  }
  return LIBFAKETIME;
}

Deno.test({
  name:
    "agent: wall-clock jumps of hours neither stall nor flood heartbeats, retransmission or back-off",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "dcm-clock-jump-" });
    const clock = `${dir}/faketime`;
    /** Moves the agent's wall clock to `offset` from the real time ("-3h", "+5h"). */
    const setClock = (offset: string) => Deno.writeTextFileSync(clock, `${offset}\n`);
    setClock("+0");
    const manager = await DevManager.start();
    const proxy = FaultProxy.start(manager.port);
    let agent: AgentProcess | undefined;
    try {
      agent = await AgentProcess.start({
        managerUrl: proxy.rewrite(manager.url),
        conf: {
          connection: { heartbeat_frequency: "1", backoff: "200", max_backoff: "1000" },
          messaging: { retransmission_timeout: "1" },
        },
        env: {
          LD_PRELOAD: libfaketime(),
          FAKETIME_TIMESTAMP_FILE: clock,
          FAKETIME_NO_CACHE: "1",
          FAKETIME_DONT_FAKE_MONOTONIC: "1",
        },
      });
      await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 20000 }), "connecting");

      // A REPLY the manager never ACKs is retransmitted every second.
      manager.setAutoAck(false);
      const { reply } = await manager.request("heartbeat", {}, { requestId: "unacked" });
      const replies = () =>
        manager.frames.filter((r) =>
          r.dir === "in" && typeof r.frame === "object" && r.frame.type === "REPLY" &&
          r.frame.request_id === "unacked"
        ).length;
      await waitFor(() => replies() >= 2, 10000, "a retransmitted REPLY");

      const windowS = 5;
      for (const offset of ["-3h", "+5h"]) {
        const replies0 = replies();
        const pings0 = manager.pings;
        setClock(offset);
        await delay(windowS * 1000);
        const sent = replies() - replies0;
        const pings = manager.pings - pings0;
        console.log(`clock ${offset}: ${sent} retransmissions and ${pings} pings in ${windowS} s`);
        assert.ok(sent >= 2, `retransmission stalled after a jump of ${offset} (${sent})`);
        assert.ok(
          sent <= windowS + 3,
          `retransmission flooded after a jump of ${offset} (${sent})`,
        );
        assert.ok(pings >= 2 && pings <= windowS + 3, `heartbeat pings after ${offset}: ${pings}`);
        assert.equal(manager.handshakes.length, 1, "the connection survived the jump");
      }
      manager.send({ type: "ACK", request_id: "unacked", message_id: (reply as Frame).message_id });

      // Back-off: failures while the clock is ahead, then a step back by 8 hours.
      proxy.cut();
      await waitFor(
        () => (agent!.output().match(/cannot reach the manager/g)?.length ?? 0) >= 2,
        15000,
        "failed reconnects",
      );
      setClock("-3h");
      await delay(500);
      const t0 = performance.now();
      proxy.heal();
      await manager.waitForHandshake({ count: 2, timeoutMs: 10000 });
      const backS = (performance.now() - t0) / 1000;
      console.log(`reconnected ${backS.toFixed(2)} s after the network came back, clock -8 h`);
      assert.ok(backS < 5, `the back-off was not stretched by the clock step (${backS} s)`);
      manager.setAutoAck(true);
      const hb = await manager.request("heartbeat", {});
      assert.equal((hb.reply.payload as Frame).return_code, 0);
    } finally {
      await agent?.stop().catch(() => {});
      await agent?.cleanup().catch(() => {});
      await proxy.close();
      await manager.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
