/**
 * Command-line tools besides `run`: `status` and `--report`.
 */
export * from "./report.ts";
export * from "./status.ts";
