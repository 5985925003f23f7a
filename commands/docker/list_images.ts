/** `docker_list_images`: the images, paged with page_token/next_token. */
import { defineCommand } from "../../lib/core/mod.ts";
import { ArgumentError, makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_list_images",
  description: "Lists images, 12 KiB per page; pass next_token as page_token for the next.",
  args: {
    name: { type: "str", help: "Only images of this repository (e.g. busybox or busybox:1)." },
    quiet: { type: "bool", default: false, help: "Only the ids." },
    all: { type: "bool", default: false, help: "Also intermediate images." },
    viz: { type: "bool", default: false, help: "A graph; no Docker Engine since 1.7 has it." },
    page_token: { type: "str", help: "The next_token of the previous page." },
  },
  readOnly: true,
  async run(args, ctx) {
    const v = await import("./engine.ts");
    if (args.viz) {
      throw new ArgumentError(
        "argument 'viz' is not supported: Docker Engine removed the image graph in 1.7",
      );
    }
    const name = args.name ? v.imageRef(args.name, "name") : undefined;
    const { page, nextToken } = await v.listPage(
      "docker_list_images",
      args.page_token,
      async () => {
        const docker = await v.engine(ctx);
        const list = await docker.json<Record<string, unknown>[]>("/images/json", {
          query: {
            all: args.all ? 1 : 0,
            filters: name ? JSON.stringify({ reference: [name] }) : undefined,
          },
        });
        return (list ?? []).map((image) => args.quiet ? image.Id : image);
      },
    );
    return makeReply(0, {
      reply_type: "docker_image_array",
      reply_object: { next_token: nextToken, images: page },
    });
  },
});
