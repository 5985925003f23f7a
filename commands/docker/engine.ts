/**
 * What every docker command uses once it runs: the Engine client for the
 * agent's `[docker]` section. Loaded on first use with the client itself.
 */
import type { CommandContext } from "../../lib/core/mod.ts";
import type { DockerClient } from "../../lib/os/docker/mod.ts";

/** The Docker Engine client (a bad `[docker]` setting throws its explanation). */
export async function engine(ctx: CommandContext): Promise<DockerClient> {
  const { dockerClient } = await import("../../lib/os/docker/mod.ts");
  return dockerClient(ctx.config.docker ?? {});
}

export {
  bounded,
  capabilities,
  containerRef,
  envLines,
  exposedPorts,
  imageRef,
  linkLines,
  portBindings,
} from "./validate.ts";
export { shellWords } from "./shell_words.ts";
export { listPage, textPage } from "./pager.ts";
