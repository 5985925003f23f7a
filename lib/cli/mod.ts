/**
 * Command-line tools besides `run`: `status`, `--report` and `plugins`.
 */
export * from "./plugins.ts";
export * from "./report.ts";
export * from "./status.ts";
