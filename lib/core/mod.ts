/**
 * Requests: admission and journal (at most once), dispatch to commands, jobs, reply delivery.
 */
export * from "./alert_sender.ts";
export * from "./command.ts";
export * from "./dispatch.ts";
export * from "./exe_plugin.ts";
export * from "./jobs.ts";
export * from "./journal.ts";
export * from "./plugin_conf.ts";
export * from "./request_listener.ts";
export * from "./worker_pool.ts";
export * from "./run_state.ts";
