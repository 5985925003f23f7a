/** `docker_get_logs`: a container's output, paged with page_token/next_token. */
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";

/** The most log text kept for paging; the rest is cut with a note. */
const MAX_LOG_BYTES = 32 * 1024 * 1024;

export default defineCommand({
  name: "docker_get_logs",
  description: "A container's output as text, 12 KiB per page; pass next_token as page_token.",
  args: {
    container: { type: "str", required: true, help: "The container id or name." },
    stdout: { type: "bool", default: true, help: "Include standard output." },
    stderr: { type: "bool", default: false, help: "Include standard error." },
    timestamps: { type: "bool", default: false, help: "Prefix each line with its time." },
    page_token: { type: "str", help: "The next_token of the previous page." },
  },
  readOnly: true,
  async run(args, ctx) {
    const v = await import("./engine.ts");
    const id = v.containerRef(args.container);
    const { page, nextToken } = await v.textPage("docker_get_logs", args.page_token, async () => {
      const docker = await v.engine(ctx);
      const { text, truncated } = await docker.logs(id, {
        stdout: args.stdout,
        stderr: args.stderr,
        timestamps: args.timestamps,
        maxBytes: MAX_LOG_BYTES,
      });
      if (!truncated) return text;
      ctx.log.console("WARNING", `the log of ${id} is longer than 32 MiB; only its start is sent`);
      return `${text}\n[dcm-agent: the log was cut at 32 MiB]\n`;
    });
    return makeReply(0, {
      reply_type: "docker_logs",
      reply_object: { next_token: nextToken, log_data: page },
    });
  },
});
