/**
 * Runtime flags the agent ships with; `deno compile` embeds them and
 * launchers from a checkout pass them.
 *
 * - `--optimize-for-size` keeps the heap of this small, long-lived process
 *   near its working set instead of letting it grow towards 140 MB under
 *   bursts (measured), with no hard limit that could OOM.
 * - `--no-code-cache`: the V8 code cache brings back the compiled code of
 *   every function a previous run used, which costs the idle agent about
 *   1 MB of memory to save a few milliseconds of start-up (measured).
 */
export const AGENT_RUNTIME_FLAGS: readonly string[] = [
  "--v8-flags=--optimize-for-size",
  "--no-code-cache",
];
