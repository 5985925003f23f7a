/** `docker_delete_image`: removes an image (force is honoured, unlike the original). */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_delete_image",
  description: "Removes an image or tag; force removes it even when containers use it.",
  args: {
    name: { type: "str", required: true, help: "The image name, tag or id." },
    force: { type: "bool", default: false, help: "Remove even an image in use." },
  },
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const name = v.imageRef(args.name, "name");
    const docker = await v.engine(ctx);
    await docker.done(`/images/${name}`, {
      method: "DELETE",
      query: { force: args.force ? 1 : 0 },
    });
    return makeReply(0);
  },
});
