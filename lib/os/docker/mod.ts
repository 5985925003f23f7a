/**
 * The Docker Engine client, loaded by path only when a docker command first
 * runs (an idle agent on a VM without Docker never loads it).
 */
import { DockerClient } from "./client.ts";
import { dockerSettings } from "./settings.ts";

export { chooseApiVersion, CLIENT_MAX_API, CLIENT_MIN_API, DockerClient } from "./client.ts";
export type { PullProgress } from "./client.ts";
export { DockerError } from "./http.ts";
export { type DockerSettings, dockerSettings, DockerSettingsError } from "./settings.ts";
export type { StreamText } from "./streams.ts";

let cached: { key: string; client: DockerClient } | undefined;

/** The client for this `[docker]` section; one is kept while the section stays the same. */
export function dockerClient(section: Record<string, string>): DockerClient {
  const key = JSON.stringify(Object.entries(section).sort());
  if (cached?.key !== key) {
    cached?.client.close();
    cached = { key, client: new DockerClient(dockerSettings(section)) };
  }
  return cached.client;
}
