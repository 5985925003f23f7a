/** Alert file records for the intrusion-detection tests. */

/** An OSSEC alerts.log record as ossec-analysisd writes it (with the blank line after it). */
export function ossecLogRecord(
  epoch: string,
  o: { rule: number; level: number; subject: string; srcIp?: string; user?: string; body: string },
): string {
  return [
    `** Alert ${epoch}: - syslog,sshd,authentication_failed,`,
    `2024 Dec 04 10:00:00 host->/var/log/auth.log`,
    `Rule: ${o.rule} (level ${o.level}) -> '${o.subject}'`,
    ...(o.srcIp ? [`Src IP: ${o.srcIp}`] : []),
    ...(o.user ? [`User: ${o.user}`] : []),
    o.body,
    "",
    "",
  ].join("\n");
}
