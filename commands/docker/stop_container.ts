/** `docker_stop_container`: stops a container, killing it after `timeout` seconds. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_stop_container",
  description: "Stoptops a container (SIGTERM, then SIGKILL after timeout seconds).",
  args: {
    container: { type: "str", required: true, help: "The container id or name." },
    timeout: { type: "int", default: 10, help: "Seconds to wait before killing it (0-3600)." },
  },
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const id = v.containerRef(args.container);
    const t = v.bounded(args.timeout, "timeout", 0, 3600);
    const docker = await v.engine(ctx);
    await docker.done(`/containers/${id}/stop`, {
      method: "POST",
      query: { t },
      // The Engine answers only after the container has stopped.
      timeoutMs: docker.http.settings.timeoutMs + t * 1000,
      signal: ctx.signal,
    });
    return makeReply(0);
  },
});
