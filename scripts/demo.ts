/**
 * `deno task demo`: runs the agent against a development manager on loopback
 * and walks through a few commands (heartbeat, get_agent_data, run_script and
 * the system-stat commands), printing the handshake and every reply.
 * Exits 0 when every step worked, 1 with the reason otherwise.
 */
import { sha256Hex } from "../lib/os/script_runner.ts";
import { AgentExitedError, AgentProcess, killAllAgents } from "./agent_process.ts";
import { DevManager, type Frame, type RequestResult } from "./dev_manager.ts";

const HANDSHAKE_TIMEOUT_MS = 60_000;
const REQUEST_TIMEOUT_MS = 30_000;

const DEMO_SCRIPT = `#!/bin/sh
echo "hello from run_script"
echo "running as $(id -un) on $(uname -sr)"
echo "temp dir: \${DCM_TMP_DIR:-unset}"
`;

/** Thrown for a failed step; the message is shown as is. */
class DemoError extends Error {}

/** Encodes bytes as standard base64. */
function toBase64(bytes: Uint8Array): string {
  let binary = "";
  for (const b of bytes) binary += String.fromCharCode(b);
  return btoa(binary);
}

function indent(text: string, prefix = "    "): string {
  return text.replace(/\n$/, "").split("\n").map((l) => prefix + l).join("\n");
}

function describeExit(status: Deno.CommandStatus): string {
  return status.signal ? `signal ${status.signal}` : `exit code ${status.code}`;
}

function printHandshake(doc: Frame): void {
  const token = typeof doc.token === "string" ? doc.token : "";
  const features = (doc.features ?? {}) as Record<string, unknown>;
  const plugins = Array.isArray(features.plugins) ? features.plugins : [];
  const otherFeatures = Object.keys(features).filter((k) => k !== "plugins");
  console.log("== handshake from the agent");
  console.log(`    version:          ${String(doc.version)}`);
  console.log(`    protocol_version: ${String(doc.protocol_version)}`);
  console.log(`    platform:         ${String(doc.platform)} ${String(doc.platform_version)}`);
  console.log(`    agent_id:         ${JSON.stringify(doc.agent_id)}`);
  // The token is a credential: show only enough to recognise it.
  console.log(`    token:            ${token.slice(0, 4)}... (${token.length} characters)`);
  console.log(`    ipv4:             ${JSON.stringify(doc.ipv4)}`);
  console.log(`    vm_instance:      ${JSON.stringify(doc.vm_instance)}`);
  console.log(`    injected_id:      ${JSON.stringify(doc.injected_id)}`);
  console.log(
    `    features:         ${otherFeatures.length ? otherFeatures.join(", ") : "(none)"}`,
  );
  console.log(`    plugins (${plugins.length}):      ${plugins.join(", ")}`);
}

/** Sends one command, prints its reply and fails unless return_code is 0. */
async function step(
  manager: DevManager,
  agent: AgentProcess,
  command: string,
  args: Record<string, unknown> = {},
): Promise<Record<string, unknown>> {
  console.log(`\n== ${command} ${JSON.stringify(args).slice(0, 120)}`);
  const started = performance.now();
  let result: RequestResult;
  try {
    result = await agent.whileRunning(
      manager.request(command, args, { timeoutMs: REQUEST_TIMEOUT_MS, retransmitSeconds: 5 }),
      `waiting for the reply to ${command}`,
    );
  } catch (err) {
    if (err instanceof DemoError || err instanceof AgentExitedError) throw err;
    throw new DemoError(`${command}: ${(err as Error).message}`);
  }
  const ms = (performance.now() - started).toFixed(1);
  const payload = result.reply.payload;
  if (typeof payload !== "object" || payload === null) {
    throw new DemoError(
      `${command}: the REPLY has no payload object: ${JSON.stringify(result.reply)}`,
    );
  }
  const p = payload as Record<string, unknown>;
  console.log(
    `    return_code: ${String(p.return_code)}   reply_type: ${String(p.reply_type)}   (${ms} ms)`,
  );
  if (p.reply_object !== null && p.reply_object !== undefined) {
    console.log(`    reply_object:\n${indent(JSON.stringify(p.reply_object, null, 2), "      ")}`);
  }
  if (typeof p.message === "string" && p.message !== "") {
    console.log(`    message (stdout):\n${indent(p.message, "      | ")}`);
  }
  if (typeof p.error_message === "string" && p.error_message !== "") {
    console.log(`    error_message:\n${indent(p.error_message, "      | ")}`);
  }
  if (p.return_code !== 0) {
    throw new DemoError(`${command} failed with return_code ${String(p.return_code)}`);
  }
  return p;
}

async function runDemo(manager: DevManager, agent: AgentProcess): Promise<void> {
  const handshake = await agent.whileRunning(
    manager.waitForHandshake({ timeoutMs: HANDSHAKE_TIMEOUT_MS }),
    "waiting for its handshake",
  ).catch((err: Error) => {
    if (err instanceof DemoError || err instanceof AgentExitedError) throw err;
    throw new DemoError(
      `no handshake from the agent within ${HANDSHAKE_TIMEOUT_MS / 1000} s (${err.message})`,
    );
  });
  printHandshake(handshake);

  await step(manager, agent, "heartbeat");
  await step(manager, agent, "get_agent_data");

  const script = new TextEncoder().encode(DEMO_SCRIPT);
  await step(manager, agent, "run_script", {
    b64script: toBase64(script),
    checksum: await sha256Hex(script),
  });

  const statName = "demo-cpu-idle";
  await step(manager, agent, "init_system_stat", {
    statType: "cpu-idle",
    statName,
    holdCount: 3,
    checkInterval: 0.2,
  });
  console.log("    (waiting 1 s for samples)");
  await new Promise((resolve) => setTimeout(resolve, 1000));
  await step(manager, agent, "get_system_stat", { statName });
  await step(manager, agent, "delete_system_stat", { statName });
}

async function main(): Promise<number> {
  const manager = await DevManager.start();
  console.log(`== dev manager listening on ${manager.url}`);
  let agent: AgentProcess | undefined;
  let failed = false;
  // Ctrl-C must not leave the agent running or its temp dir behind.
  const onSigint = () => {
    killAllAgents();
    try {
      if (agent) Deno.removeSync(agent.baseDir, { recursive: true });
    } catch {
      // Already removed.
    }
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSigint);
  try {
    agent = await AgentProcess.start({ managerUrl: manager.url });
    console.log(`== started the agent (pid ${agent.pid}): ${agent.commandLine}`);
    console.log(`    base dir: ${agent.baseDir}`);
    await runDemo(manager, agent);

    console.log("\n== stopping the agent (SIGTERM)");
    const status = await agent.stop();
    if (status.success) {
      console.log("    the agent exited cleanly");
    } else {
      throw new DemoError(`the agent did not exit cleanly on SIGTERM (${describeExit(status)})`);
    }
  } catch (err) {
    failed = true;
    console.error(`\ndemo FAILED: ${(err as Error).message}`);
    if (agent) {
      const lines = agent.output().trimEnd().split("\n").slice(-40).join("\n");
      console.error(`--- last agent output ---\n${lines || "(no output)"}\n---`);
    }
  } finally {
    await agent?.cleanup();
    await manager.close();
    Deno.removeSignalListener("SIGINT", onSigint);
  }
  if (!failed) console.log("\n== demo finished: every step succeeded; the temp dir was removed");
  return failed ? 1 : 0;
}

if (import.meta.main) {
  Deno.exit(await main());
}
