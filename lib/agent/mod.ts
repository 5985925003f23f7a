/**
 * The agent process: wires config, logging, journal, transport, listener and commands together.
 */
export * from "./run_agent.ts";
