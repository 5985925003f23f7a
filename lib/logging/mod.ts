/**
 * The logger, its sinks, secret redaction and the logging.yaml reader. Imports protocol/ and config/.
 */
export * from "./logger.ts";
export * from "./categories.ts";
export { redactSecrets, scrubSecrets } from "./redact.ts";
export * from "./rotating_file_sink.ts";
export { configureLogging, type LoggingOptions, shutdownLogging } from "./setup.ts";
export type { OwnerIds, UserResolver } from "./handlers.ts";
export * from "./throttle.ts";
