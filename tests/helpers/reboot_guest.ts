/**
 * Runs inside the throw-away VM of tests/agent/reboot_test.ts, once per boot,
 * with the journal's disk mounted at the base directory given as the first
 * argument and the boot number as the second. The manager and the agent speak
 * over loopback inside the guest.
 *
 * Boot 1: a quick command is answered but its REPLY is never acknowledged, so
 * it stays owed in the journal; a long command starts (it marks a file, then
 * sleeps); the driver then hard-resets the guest, with no sync and no shutdown.
 * Boot 2: the agent starts on the same journal; the owed REPLY must be
 * delivered without being asked for, the long command must be reported as
 * interrupted when the manager sends it again, and nothing may have run twice.
 * Results go to /vmout/boot<N>.json. The commands mark their runs (one line
 * each, with the boot id) under /vmout/marks, the host's share: a mark on the
 * journal's disk could be lost with the page cache at the power cut, and a
 * sync there would also flush the journal for the agent.
 */
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";

const [baseDir, boot] = Deno.args;
const marks = "/vmout/marks";
const AGENT_ID = "reboot-test-agent";
const BOOT_ID_FILE = "/proc/sys/kernel/random/boot_id";
/** How long any one step may take: generous, the guest is emulated on a loaded machine. */
const WAIT_MS = 120_000;

async function sha256(text: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text));
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function script(body: string): Promise<Record<string, unknown>> {
  const text = `#!/bin/sh\n${body}\n`;
  return { b64script: btoa(text), checksum: await sha256(text) };
}

function lines(file: string): string[] {
  try {
    return Deno.readTextFileSync(file).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}

function report(result: Record<string, unknown>): void {
  Deno.writeTextFileSync(`/vmout/boot${boot}.json`, JSON.stringify(result));
}

/** Waits for the agent's handshake (returns ms since it was spawned); shows its output if none comes. */
async function handshake(manager: DevManager, agent: AgentProcess): Promise<number> {
  try {
    await manager.waitForHandshake({ timeoutMs: WAIT_MS });
    return Math.round(performance.now() - agent.spawnedAt);
  } catch (err) {
    console.error(`agent output:\n${agent.output()}`);
    throw err;
  }
}

/** Waits until the command has marked its run. */
async function waitForMark(name: string): Promise<void> {
  const deadline = performance.now() + WAIT_MS;
  while (lines(`${marks}/${name}`).length === 0) {
    if (performance.now() > deadline) {
      throw new Error(`the '${name}' command did not start within ${WAIT_MS} ms`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

const conf = { connection: { heartbeat_frequency: "30" } };

if (boot === "1") {
  Deno.mkdirSync(marks, { recursive: true });
  const manager = await DevManager.start({ agentId: AGENT_ID, autoAckReplies: false });
  const agent = await AgentProcess.start({ managerUrl: manager.url, baseDir, conf });
  const handshakeMs = await handshake(manager, agent);
  const quick = await manager.request(
    "run_script",
    await script(`echo "run $(cat ${BOOT_ID_FILE})" >> '${marks}/quick'`),
    { requestId: "quick-1", timeoutMs: WAIT_MS },
  );
  await manager.request(
    "run_script",
    await script(`echo "run $(cat ${BOOT_ID_FILE})" >> '${marks}/long'\nsleep 600`),
    { requestId: "long-1", timeoutMs: 1 },
  ).catch(() => {}); // It never finishes in this boot.
  await manager.waitForFrame((f) => f.type === "ACK" && f.request_id === "long-1", {
    timeoutMs: WAIT_MS,
  });
  await waitForMark("long");
  report({
    quickReply: quick.reply.payload,
    agentPid: agent.pid,
    bootId: Deno.readTextFileSync(BOOT_ID_FILE).trim(),
    handshakeMs,
  });
  // A power cut: the kernel restarts at once, nothing is flushed or stopped.
  Deno.writeTextFileSync("/proc/sys/kernel/sysrq", "1");
  Deno.writeTextFileSync("/proc/sysrq-trigger", "b");
} else {
  const manager = await DevManager.start({ agentId: AGENT_ID });
  const agent = await AgentProcess.start({ managerUrl: manager.url, baseDir, conf });
  try {
    const handshakeMs = await handshake(manager, agent);
    // The REPLY owed from before the reset arrives without the manager asking.
    const owed = await manager.waitForFrame(
      (f) => f.type === "REPLY" && f.request_id === "quick-1",
      { timeoutMs: WAIT_MS },
    ).catch((err) => {
      throw new Error(`the REPLY owed from before the power cut never arrived: ${err.message}`);
    });
    const owedMs = Math.round(performance.now() - agent.spawnedAt);
    // A restart that re-ran the interrupted command would have marked it again by now.
    if (lines(`${marks}/long`).length !== 1) {
      throw new Error(
        `the interrupted command ran again after the reboot: ${lines(`${marks}/long`)}`,
      );
    }
    // The manager retransmits the long command: it is reported as interrupted, not run.
    const again = await manager.request(
      "run_script",
      await script(`echo "run $(cat ${BOOT_ID_FILE})" >> '${marks}/long'\nsleep 600`),
      { requestId: "long-1", timeoutMs: WAIT_MS },
    );
    await new Promise((r) => setTimeout(r, 2000)); // time for a wrong second run to show
    report({
      owedReply: (owed as Frame).payload,
      longReply: again.reply.payload,
      handshakeMs,
      owedMs,
    });
  } finally {
    await agent.stop();
    await manager.close();
  }
}
