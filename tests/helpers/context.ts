/**
 * A real CommandContext for tests that call a command module directly:
 * in-memory state, no jobs, the given stat registry and adapters, and a log
 * that records what the command reported.
 */
import type { CommandContext, CommandModule, CommandServices } from "../../lib/core/command.ts";
import { type AgentConfig, configFromValues } from "../../lib/config/agent_conf.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import type { LogLevel } from "../../lib/protocol/messages.ts";

/** What a test context recorded. */
export interface TestContext extends CommandContext {
  details: string[];
  consoleLines: { level: LogLevel; message: string }[];
}

/** Options for {@linkcode makeTestContext}. */
export interface TestContextOptions {
  config?: AgentConfig;
  /** agent.conf values layered over a minimal valid config. */
  conf?: Record<string, Record<string, string>>;
  services?: Partial<CommandServices>;
  signal?: AbortSignal;
  /** Commands `ctx.invoke` may run. */
  commands?: CommandModule[];
}

/** Builds a context whose services are simple in-memory implementations. */
export function makeTestContext(options: TestContextOptions = {}): TestContext {
  const config = options.config ?? configFromValues({
    connection: { agentmanager_url: "ws://127.0.0.1:1/agentManager" },
    ...(options.conf ?? {}),
  });
  let state = "STARTING";
  const details: string[] = [];
  const consoleLines: { level: LogLevel; message: string }[] = [];
  const services: CommandServices = {
    state: { get: () => state, set: (s) => void (state = s) },
    jobs: { describe: () => undefined },
    stats: {
      init: () => {
        throw new Error("no stat registry in this test context");
      },
      get: () => {
        throw new Error("no stat registry in this test context");
      },
      delete: () => {
        throw new Error("no stat registry in this test context");
      },
    },
    host: {
      version: "0.0.0-test",
      platformName: "debian",
      platformVersion: "12",
      ipv4Addresses: () => Promise.resolve(["127.0.0.1"]),
      customerId: () => null,
    },
    adapters: {},
    ...(options.services ?? {}),
  };
  const ctx: TestContext = {
    requestId: crypto.randomUUID(),
    config,
    signal: options.signal ?? new AbortController().signal,
    log: {
      detail: (line) => void details.push(line),
      console: (level, message) => void consoleLines.push({ level, message }),
    },
    services,
    invoke: (command, args) =>
      executeCommand(findCommand(options.commands ?? [], command), args, ctx),
    details,
    consoleLines,
  };
  return ctx;
}

function findCommand(commands: CommandModule[], name: string): CommandModule {
  const c = commands.find((m) => m.name === name);
  if (!c) throw new Error(`test context has no command '${name}'`);
  return c;
}
