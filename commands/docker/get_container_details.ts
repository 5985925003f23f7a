/** `docker_get_container_details`: the Engine's inspect document of a container. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_get_container_details",
  description: "Answers the Engine's inspect document of a container.",
  args: { container: { type: "str", required: true, help: "The container id or name." } },
  readOnly: true,
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const id = v.containerRef(args.container);
    const doc = await (await v.engine(ctx)).json(`/containers/${id}/json`);
    return makeReply(0, { reply_type: "docker_inspect_container", reply_object: doc });
  },
});
