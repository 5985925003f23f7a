/**
 * Command-line tools besides `run`: `status`, `--report`, `scrub` and `upgrade-binary`.
 */
export * from "./report.ts";
export * from "./scrub.ts";
export * from "./status.ts";
export * from "./upgrade_binary.ts";
