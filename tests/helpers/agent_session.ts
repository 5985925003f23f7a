/**
 * One development manager with one real agent process, and the assertions the
 * end-to-end command tests make on replies.
 */
import assert from "node:assert/strict";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";

/** A REPLY payload. */
export interface Payload {
  return_code: number;
  reply_type: string;
  reply_object: unknown;
  message: string;
  error_message: string;
}

/** A running manager and agent. */
export interface AgentSession {
  manager: DevManager;
  agent: AgentProcess;
  handshake: Frame;
  /** Sends a command and returns the REPLY payload. */
  ask(command: string, args?: Record<string, unknown>): Promise<Payload>;
  close(): Promise<void>;
}

/** Starts a manager and an agent with extra agent.conf sections; waits for the handshake. */
export async function startAgent(
  conf: Record<string, Record<string, string>>,
): Promise<AgentSession> {
  const manager = await DevManager.start();
  const agent = await AgentProcess.start({ managerUrl: manager.url, conf });
  const handshake = await manager.waitForHandshake({ timeoutMs: 30_000 }).catch((err) => {
    throw new Error(`${err.message}\nagent output:\n${agent.output()}`);
  });
  return {
    manager,
    agent,
    handshake,
    ask: async (command, args = {}) =>
      (await manager.request(command, args, { timeoutMs: 120_000 })).reply.payload as Payload,
    close: async () => {
      await agent.stop();
      await agent.cleanup();
      await manager.close();
    },
  };
}

/** Asserts return_code 0 and returns the reply. */
export function ok(reply: Payload, what: string): Payload {
  assert.equal(reply.return_code, 0, `${what}: ${JSON.stringify(reply).slice(0, 2000)}`);
  return reply;
}

/** Asserts return_code 1 with an error matching `pattern`; returns the decoded error text. */
export function failed(reply: Payload, pattern: RegExp): string {
  assert.equal(reply.return_code, 1, JSON.stringify(reply).slice(0, 2000));
  const text = decodeURIComponent(reply.error_message);
  assert.match(text, pattern);
  return text;
}
