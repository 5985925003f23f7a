/**
 * Command-line tools besides `run`: `status`, `--report`, `scrub`, `upgrade-binary` and `plugins`.
 */
export * from "./plugins.ts";
export * from "./report.ts";
export * from "./scrub.ts";
export * from "./status.ts";
export * from "./upgrade_binary.ts";
