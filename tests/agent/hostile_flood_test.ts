/**
 * 100,000 malformed, oversized and hostile frames at full speed
 * (scripts/hostile_flood.ts): the agent answers the heartbeats sent through
 * the flood, keeps its connection, stays within 1.5 times its idle RSS and
 * settles back near idle. `deno task bench` reports the same figures.
 */
import assert from "node:assert/strict";
import { DevManager } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { measureFlood } from "../../scripts/hostile_flood.ts";

Deno.test("agent: 100,000 hostile frames: heartbeats answered, RSS at most 1.5 x idle, settles back", async () => {
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({
    managerUrl: manager.url,
    // Production timings, and run as the compiled binary is (no deno.json).
    conf: {
      connection: { heartbeat_frequency: "30" },
      messaging: { retransmission_timeout: "5" },
    },
    noConfig: true,
  });
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 20000 }), "connecting");
    const m = await agent.whileRunning(
      measureFlood(manager, agent.pid, {
        count: 100_000,
        idleSeconds: 3,
        settleSeconds: 40,
        settleRatio: 1.3,
      }),
      "taking the flood",
    );
    console.log(`hostile flood: ${JSON.stringify(m)}`);
    assert.equal(manager.handshakes.length, 1, "the connection survived the flood");
    assert.ok(m.heartbeats >= 10, "the heartbeats sent through the flood were answered");
    assert.ok(m.peak_ratio <= 1.5, `RSS peaked at ${m.peak_ratio} x idle`);
    assert.ok(m.settled_ratio <= 1.3, `RSS settled at ${m.settled_ratio} x idle`);
    const out = agent.output();
    assert.ok(
      (out.match(/rejected a malformed message/g)?.length ?? 0) <= 20,
      "bad frames are not logged one by one",
    );
  } finally {
    await agent.stop().catch(() => {});
    await agent.cleanup().catch(() => {});
    await manager.close();
  }
});
