/**
 * Cloud auto-detection for `configure` (ARCHITECTURE.md, Cloud metadata): a cloud counts when the
 * agent's own metadata lookup for it returns an instance id. All clouds are
 * probed at once with a short timeout, so a server outside any cloud is
 * configured in seconds; the first match in the original's order wins: Joyent,
 * OpenStack, CloudStack, Amazon, Google, DigitalOcean, Azure, else UNKNOWN.
 * OpenStack comes before Amazon because it also answers on the EC2 address.
 */
import { join } from "node:path";
import { createCloudMetadata } from "../os/mod.ts";
import { configFromValues } from "../config/mod.ts";
import { pathExists } from "../os/mod.ts";

/** Options for {@linkcode detectCloud}. */
export interface DetectCloudOptions {
  /** `[cloud]metadata_url` already configured; CloudStack uses it instead of the DHCP server. */
  metadataUrl?: string | null;
  /** HTTP client (tests); default the global fetch. */
  fetch?: typeof fetch;
  /** File-system root for the Azure agent file, DHCP leases and mdata-get (tests). */
  root?: string;
  /** Milliseconds each probe may take; default 3000. */
  timeoutMs?: number;
}

const ORDER = ["Joyent", "OpenStack", "CloudStack", "Amazon", "Google", "DigitalOcean", "Azure"];

/** Returns the detected cloud name, or "UNKNOWN". */
export async function detectCloud(options: DetectCloudOptions = {}): Promise<string> {
  const root = options.root ?? "/";
  const probe = async (cloud: string): Promise<boolean> => {
    // Azure's instance id is made from the host name and always exists; its agent's file does not.
    if (cloud === "Azure") return pathExists(join(root, "var/lib/waagent/ovf-env.xml"));
    const cloudValues: Record<string, string> = { type: cloud };
    if (cloud === "CloudStack" && options.metadataUrl) {
      cloudValues.metadata_url = options.metadataUrl;
    }
    // The lookups need an agent config; the URL is a placeholder that is never contacted.
    const config = configFromValues({
      connection: { agentmanager_url: "ws://127.0.0.1/" },
      cloud: cloudValues,
    });
    const metadata = createCloudMetadata(config, {
      timeoutMs: options.timeoutMs ?? 3000,
      fetch: options.fetch,
      root,
    });
    return await metadata.instanceId() !== null;
  };
  const found = await Promise.all(ORDER.map((cloud) => probe(cloud).catch(() => false)));
  return ORDER.find((_, i) => found[i]) ?? "UNKNOWN";
}
