/** `docker_delete_container`: removes a container. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_delete_container",
  description: "Removes a container (force: even a running one; v: with its volumes).",
  args: {
    container: { type: "str", required: true, help: "The container id or name." },
    v: { type: "bool", default: false, help: "Also remove the container's anonymous volumes." },
    link: { type: "bool", default: false, help: "Remove the link named 'container' instead." },
    force: { type: "bool", default: false, help: "Kill a running container first." },
  },
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const id = v.containerRef(args.container);
    const docker = await v.engine(ctx);
    await docker.done(`/containers/${id}`, {
      method: "DELETE",
      query: { v: args.v ? 1 : 0, link: args.link ? 1 : 0, force: args.force ? 1 : 0 },
    });
    return makeReply(0);
  },
});
