/** `docker_pull_repo`: pulls an image from its registry. */
import { defineCommand } from "../../lib/core/mod.ts";
import { ArgumentError, makeReply } from "../../lib/protocol/mod.ts";

/** A tag as the Engine accepts it. */
export const TAG_RE = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;

export default defineCommand({
  name: "docker_pull_repo",
  description: "Pulls repository:tag from its registry; the last status of each layer is logged.",
  args: {
    repository: { type: "str", required: true, help: "e.g. registry.example.com:5000/app." },
    tag: { type: "str", help: "The tag; default the one in repository, else latest." },
  },
  async run(args, ctx) {
    const v = await import("./engine.ts");
    let repository = v.imageRef(args.repository, "repository");
    let tag = args.tag ?? "";
    // "repo:tag" in repository, as docker-py split it; a ":" before the last "/" is a port.
    const colon = repository.lastIndexOf(":");
    if (tag === "" && colon > repository.lastIndexOf("/") && !repository.includes("@")) {
      tag = repository.slice(colon + 1);
      repository = repository.slice(0, colon);
    }
    if (tag === "") tag = "latest";
    if (!TAG_RE.test(tag)) {
      throw new ArgumentError(`argument 'tag' ${JSON.stringify(tag.slice(0, 80))} is not a tag`);
    }
    const docker = await v.engine(ctx);
    const layers = new Map<string, string>();
    try {
      await docker.createImage({ fromImage: repository, tag }, {
        signal: ctx.signal,
        onProgress: (p) => {
          if (typeof p.id === "string" && typeof p.status === "string") layers.set(p.id, p.status);
        },
      });
    } catch (err) {
      const { DockerError } = await import("../../lib/os/docker/mod.ts");
      // Not for an unreachable daemon (status 0): that message says what to do.
      if (!(err instanceof DockerError) || err.status === 0) throw err;
      throw new Error(`Failed to fetch the docker image ${repository} : ${tag} : ${err.message}`);
    } finally {
      for (const [id, status] of layers) ctx.log.console("DEBUG", `${id}: ${status}`);
    }
    return makeReply(0, { reply_type: "docker_pull", reply_object: null });
  },
});
