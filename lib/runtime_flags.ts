/**
 * V8 flags the agent ships with. `--optimize-for-size` keeps the heap of this
 * small, long-lived process near its working set instead of letting it grow
 * towards 140 MB under bursts (measured), with no hard limit that could OOM.
 * `deno compile` embeds them; launchers from a checkout pass them.
 */
export const AGENT_V8_FLAGS = "--v8-flags=--optimize-for-size";
