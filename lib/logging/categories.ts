/** Logger categories with a meaning of their own. */

/** Category of console events that become LOG messages to the manager. */
export const CONSOLE_CATEGORY: readonly string[] = [
  "dcm",
  "agent",
  "log",
  "to",
  "agent",
  "manager",
];

/** Category of the wire log: one `INCOMING …`/`OUTGOING …` DEBUG record per frame. */
export const WIRE_CATEGORY: readonly string[] = ["DCM_AGENT_WIRE"];
