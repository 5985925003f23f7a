/** `docker_import_image`: makes an image from a root file system tarball (URL or local file). */
import { defineCommand } from "../../lib/core/mod.ts";
import { ArgumentError, makeReply } from "../../lib/protocol/mod.ts";
import { TAG_RE } from "./pull_repo.ts";

export default defineCommand({
  name: "docker_import_image",
  description: "Imports a tarball (http(s) URL, or a file on this server) as an image.",
  args: {
    src: {
      type: "str",
      required: true,
      help: "An http(s) URL the Engine downloads, or an absolute path of a tar file here.",
    },
    repository: { type: "str", help: "The repository to tag the image with." },
    tag: { type: "str", help: "The tag (with repository)." },
    image: { type: "str", help: "When src is null: an image to pull instead." },
  },
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const query: Record<string, string | undefined> = {};
    if (args.repository) query.repo = v.imageRef(args.repository, "repository");
    if (args.tag) {
      if (!TAG_RE.test(args.tag)) {
        throw new ArgumentError(
          `argument 'tag' ${JSON.stringify(args.tag.slice(0, 80))} is not a tag`,
        );
      }
      query.tag = args.tag;
    }
    let body: ReadableStream<Uint8Array> | undefined;
    if (args.src === null || args.src === "") {
      if (!args.image) throw new ArgumentError("give 'src' (a URL or a file) or 'image'");
      query.fromImage = v.imageRef(args.image, "image");
    } else if (/^https?:\/\//i.test(args.src)) {
      let url: URL;
      try {
        url = new URL(args.src);
      } catch {
        throw new ArgumentError(
          `argument 'src' ${JSON.stringify(args.src.slice(0, 200))} is not a URL`,
        );
      }
      query.fromSrc = url.href;
    } else {
      body = await openTarball(args.src);
      query.fromSrc = "-";
    }
    const docker = await v.engine(ctx);
    let last: Record<string, unknown> | null;
    try {
      last = await docker.createImage(query, { body, signal: ctx.signal });
    } finally {
      await body?.cancel().catch(() => {});
    }
    return makeReply(0, { reply_type: "docker_import_image", reply_object: last });
  },
});

/** The file's bytes; only an absolute path of a regular file (not a device or FIFO). */
async function openTarball(path: string): Promise<ReadableStream<Uint8Array>> {
  if (!path.startsWith("/") || path.includes("\0")) {
    throw new ArgumentError(
      `argument 'src' ${
        JSON.stringify(path.slice(0, 200))
      } is neither an http(s) URL nor an absolute path`,
    );
  }
  let info: Deno.FileInfo;
  try {
    info = await Deno.stat(path);
  } catch (err) {
    throw new ArgumentError(`argument 'src': cannot read ${path}: ${(err as Error).message}`);
  }
  if (!info.isFile) throw new ArgumentError(`argument 'src': ${path} is not a regular file`);
  const file = await Deno.open(path, { read: true });
  return file.readable;
}
