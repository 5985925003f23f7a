/**
 * The websocket client as agent.conf's [connection] section sets it up and
 * explains it: TLS options from ca_cert, allow_unknown_certs and
 * check_hostname, and failures and close codes in plain words, with the key
 * to fix where one can.
 */
import type { AgentConfig } from "../config/mod.ts";
import { type WsClientOptions, WsError } from "./ws_client.ts";

/** Client TLS options for wss: CA file, unknown certificates, host-name check. */
export function tlsOptions(config: AgentConfig): Partial<WsClientOptions> {
  const conn = config.connection;
  const options: Partial<WsClientOptions> = {
    allowUnknownCerts: conn.allow_unknown_certs,
    // The chain is still verified; only the name comparison is skipped.
    checkHostname: conn.check_hostname,
  };
  if (conn.ca_cert) {
    try {
      options.caCerts = [Deno.readTextFileSync(conn.ca_cert)];
    } catch (err) {
      throw new Error(
        `cannot read [connection] ca_cert ${conn.ca_cert}: ${
          (err as Error).message
        }; fix the path in agent.conf`,
      );
    }
  }
  return options;
}

/** Why the manager or the network closed the websocket, from its close code and reason. */
export function closeText(code: number, reason: string): string {
  // 1005: the close frame carried no code.
  if (code === 1000 || code === 1001 || code === 1005) {
    return `the manager closed the connection${reason ? ` (${reason})` : ""}`;
  }
  if (code === 1006) return "the connection was lost";
  return `the connection was closed with code ${code}${reason ? ` (${reason})` : ""}`;
}

/** Words for a websocket failure, with a hint where agent.conf can fix it. */
export function describeError(err: unknown, config: AgentConfig): string {
  if (!(err instanceof WsError)) return (err as Error).message;
  const conn = config.connection;
  switch (err.kind) {
    case "tls_untrusted":
      return `${err.message}; ` +
        (conn.ca_cert
          ? `check that ${conn.ca_cert} holds the CA that signed it`
          : "set [connection] ca_cert to the CA file that signed it");
    case "tls_name":
      return `${err.message}; fix the certificate or set [connection] check_hostname=False`;
    case "tls_plain":
      return `${err.message}; is this a ws:// URL? If the manager does not use TLS, set [connection] agentmanager_url to ws://…`;
    case "http_status":
      return `${err.message}; check [connection] agentmanager_url`;
    case "url":
      return `${err.message}; fix [connection] agentmanager_url`;
    case "too_large":
      return `the manager sent a frame larger than [connection] max_message_size (${conn.max_message_size} bytes); it was refused`;
  }
  return err.message;
}
