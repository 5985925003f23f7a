/**
 * The handshake document the agent sends as the first frame of every
 * connection (ARCHITECTURE.md, Handshake). It is rebuilt on every attempt so that metadata
 * changes (a new IP, a token regenerated after 409) are picked up.
 */
import type { CloudMetadata } from "../os/mod.ts";
import type { AgentConfig } from "../config/mod.ts";
import type { Platform } from "../os/mod.ts";
import { PROTOCOL_VERSION } from "../protocol/mod.ts";

/** Inputs of {@linkcode buildHandshake} that do not come from agent.conf. */
export interface HandshakeOptions {
  /** agentID from the last accepted handshake in this process, or null. */
  agentId: string | null;
  token: string;
  metadata: Pick<CloudMetadata, "instanceId" | "injectedId" | "ipv4Addresses">;
  platform: Platform;
  /** The agent's version string. */
  version: string;
  /** Command names from plugin.conf, in file order (regex names included). */
  plugins: string[];
  /** Features reported by the command modules (e.g. mount, format, docker). */
  pluginFeatures: Record<string, unknown>;
}

/** Builds the 11-key handshake; the metadata lookups run in parallel (one timeout at most). */
export async function buildHandshake(
  config: AgentConfig,
  options: HandshakeOptions,
): Promise<Record<string, unknown>> {
  const { metadata } = options;
  const [ipv4, vmInstance, injectedId] = await Promise.all([
    metadata.ipv4Addresses(),
    metadata.instanceId(),
    metadata.injectedId(),
  ]);
  return {
    ipv4,
    ipv6: [],
    agent_id: options.agentId,
    token: options.token,
    vm_instance: vmInstance,
    injected_id: injectedId,
    version: options.version,
    protocol_version: PROTOCOL_VERSION,
    platform: options.platform.name,
    platform_version: options.platform.version,
    features: { ...config.features, ...options.pluginFeatures, plugins: [...options.plugins] },
  };
}
