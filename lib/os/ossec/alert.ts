/**
 * One intrusion-detection alert read from OSSEC or Wazuh, and its hash: the
 * manager identifies an alert by the hex SHA-256 of its time, subject and
 * message, exactly as the original agent computed it.
 */
import { createHash } from "node:crypto";
import type { AlertFields } from "../../protocol/mod.ts";

/** The alert file formats the agent can follow. */
export type AlertFormat = "ossec_log" | "ossec_json" | "wazuh_json";

/** The hex SHA-256 of `String(alert_timestamp) + subject + message` (UTF-8). */
export function alertHash(
  alert: Pick<AlertFields, "alert_timestamp" | "subject" | "message">,
): string {
  return createHash("sha256")
    .update(`${alert.alert_timestamp}${alert.subject}${alert.message}`, "utf8")
    .digest("hex");
}

/** Builds the alert fields, hash included. */
export function makeAlert(fields: Omit<AlertFields, "alert_hash">): AlertFields {
  return {
    ...fields,
    alert_hash: alertHash(fields),
  };
}
