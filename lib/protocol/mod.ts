/**
 * The wire protocol (version 104): message types, frame parsing and building, argument conversion. Imports nothing of the agent.
 */
export * from "./arguments.ts";
export * from "./messages.ts";
export * from "./version.ts";
