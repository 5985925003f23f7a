/**
 * Whether a foreground `run` also logs to stderr. Under systemd stderr goes to
 * the journal (`journalctl -u dcm-agent`), which is where operators look first,
 * even when logging.yaml sends everything to files.
 */

/** True when systemd started the agent (it sets INVOCATION_ID, and JOURNAL_STREAM when stderr is the journal). */
export function logToStderr(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): boolean {
  return Boolean(env("INVOCATION_ID") || env("JOURNAL_STREAM"));
}
