/** `docker_top_container`: the processes running in a container. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_top_container",
  description: "Lists the processes of a running container ({Titles, Processes}).",
  args: { container: { type: "str", required: true, help: "The container id or name." } },
  readOnly: true,
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const id = v.containerRef(args.container);
    const top = await (await v.engine(ctx)).json(`/containers/${id}/top`);
    return makeReply(0, { reply_type: "docker_top", reply_object: top });
  },
});
