/**
 * The connection to the manager: websocket client, handshake, reconnect with backoff. Knows nothing of requests.
 */
export * from "./backoff.ts";
export * from "./connection.ts";
export * from "./handshake.ts";
export * from "./ws_client.ts";
