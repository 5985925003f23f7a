/**
 * The always-loaded base of the OS layer: processes, files, platform, /proc, cloud metadata, the secure directory.
 * Adapters that change the system (accounts/, host_identity.ts, run_tool.ts, script_runner.ts,
 * download.ts, scrubber/, binary_swap.ts) are imported by path,
 * on first use, so an idle agent does not load them.
 */
export * from "./atomic_file.ts";
export * from "./cloud_metadata.ts";
export * from "./fs_stat.ts";
export * from "./passwd.ts";
export * from "./platform.ts";
export * from "./proc_stats.ts";
export * from "./process_runner.ts";
export * from "./service.ts";
export * from "./system_adapter.ts";
export * from "./token.ts";
export * from "./instance_lock.ts";
export * from "./upgrade_state.ts";
