/**
 * Cloud names for `configure` (README, Installing on a VM): normalising what the operator
 * typed, the list offered interactively, and the per-cloud metadata_url.
 */
import { CLOUD_TYPES } from "../config/mod.ts";

/** Clouds offered by `configure -i`: every cloud type except the hidden test cloud. */
export const OFFERED_CLOUDS: readonly string[] = CLOUD_TYPES.filter((c) => c !== "Konami");

/** metadata_url defaults of the original configure step 8; `null` means the key is unset. */
const METADATA_URLS: Readonly<Record<string, string | null>> = {
  Amazon: "http://169.254.169.254/latest/meta-data/",
  OpenStack: "http://169.254.169.254/openstack/2012-08-10/meta_data.json",
  Google: "http://metadata.google.internal/computeMetadata/v1",
  DigitalOcean: "http://169.254.169.254/metadata/v1",
  CloudStack: null,
  CloudStack3: null,
};

/** The canonical spelling of a cloud name (case-insensitive), or undefined if unknown. */
export function normalizeCloud(name: string): string | undefined {
  const wanted = name.trim().toLowerCase();
  return CLOUD_TYPES.find((c) => c.toLowerCase() === wanted);
}

/**
 * The metadata_url to write for `cloud`, given the current value.
 *
 * Clouds with a known service get its URL and CloudStack gets none (README, Installing on a VM
 * step 8). Other clouds keep the current value, except one that is another
 * cloud's default: switching from Amazon to VMware must not leave Amazon's URL.
 */
export function metadataUrlFor(cloud: string, current: string | null): string | null {
  if (Object.hasOwn(METADATA_URLS, cloud)) return METADATA_URLS[cloud];
  return Object.values(METADATA_URLS).includes(current) ? null : current;
}
