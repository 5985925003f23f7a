/** `docker_list_containers`: the containers, paged with page_token/next_token. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

export default defineCommand({
  name: "docker_list_containers",
  description: "Lists containers, 12 KiB per page; pass next_token as page_token for the next.",
  args: {
    quiet: { type: "bool", default: false, help: "Only the ids." },
    all: { type: "bool", default: false, help: "Also stopped containers." },
    trunc: { type: "bool", default: true, help: "Ids cut to 12 characters." },
    latest: { type: "bool", default: false, help: "Only the latest created container." },
    since: { type: "str", help: "Only containers created after this one (id or name)." },
    before: { type: "str", help: "Only containers created before this one (id or name)." },
    limit: { type: "int", default: -1, help: "At most this many (newest first); -1: no limit." },
    page_token: { type: "str", help: "The next_token of the previous page." },
  },
  readOnly: true,
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const limit = v.bounded(args.limit, "limit", -1, 100_000);
    const filters: Record<string, string[]> = {};
    if (args.since) filters.since = [v.containerRef(args.since, "since")];
    if (args.before) filters.before = [v.containerRef(args.before, "before")];
    const { page, nextToken } = await v.listPage(
      "docker_list_containers",
      args.page_token,
      async () => {
        const docker = await v.engine(ctx);
        const n = args.latest ? 1 : limit > 0 ? limit : undefined;
        const list = await docker.json<Record<string, unknown>[]>("/containers/json", {
          query: {
            all: args.all || n !== undefined ? 1 : 0,
            limit: n,
            filters: Object.keys(filters).length ? JSON.stringify(filters) : undefined,
          },
        });
        return (list ?? []).map((c) => {
          const id = args.trunc && typeof c.Id === "string" ? c.Id.slice(0, 12) : c.Id;
          return args.quiet ? { Id: id } : { ...c, Id: id };
        });
      },
    );
    return makeReply(0, {
      reply_type: "docker_container_array",
      reply_object: { next_token: nextToken, containers: page },
    });
  },
});
