/**
 * The one shape of `docker_stop_container` and `docker_restart_container`:
 * SIGTERM, then SIGKILL after `timeout` seconds (and a start again for restart).
 */
import { type CommandModule, defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

/** The `docker_<action>_container` command. */
export function stopCommand(action: "stop" | "restart", description: string): CommandModule {
  return defineCommand({
    name: `docker_${action}_container`,
    description,
    args: {
      container: { type: "str", required: true, help: "The container id or name." },
      timeout: { type: "int", default: 10, help: "Seconds to wait before killing it (0-3600)." },
    },
    async run(args, ctx) {
      const v = await import("./engine.ts");
      const id = v.containerRef(args.container);
      const t = v.bounded(args.timeout, "timeout", 0, 3600);
      const docker = await v.engine(ctx);
      await docker.done(`/containers/${id}/${action}`, {
        method: "POST",
        query: { t },
        // The Engine answers only after the container has stopped.
        timeoutMs: docker.http.settings.timeoutMs + t * 1000,
        signal: ctx.signal,
      });
      return makeReply(0);
    },
  });
}
