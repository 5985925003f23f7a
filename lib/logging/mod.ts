/**
 * The logger, its sinks, secret redaction and the logging.yaml reader. Imports protocol/ and config/.
 */
export * from "./logger.ts";
export * from "./redact.ts";
export * from "./rotating_file_sink.ts";
export * from "./setup.ts";
export * from "./throttle.ts";
