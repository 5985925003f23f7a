/**
 * agent.conf and its schema, and the INI and YAML readers. Imports only protocol/.
 */
export * from "./agent_conf.ts";
export * from "./ini.ts";
export * from "./runtime_flags.ts";
export * from "./schema.ts";
export * from "./yaml.ts";
