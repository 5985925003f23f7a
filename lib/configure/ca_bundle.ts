/**
 * CA bundle checks for `configure` (README, Installing on a VM): unless certificate
 * checking is off, agent.conf must name a CA file, guessed from the system's
 * bundle when the operator gives none.
 */

/** The bundle shipped with the original package; it is maintained by hand. */
export const HAND_MAINTAINED_BUNDLE = "/opt/dcm-agent/embedded/ssl/certs/cacert.pem";

/** System bundles tried in order (README, Installing on a VM). */
export const CA_BUNDLE_CANDIDATES: readonly string[] = [
  "/etc/ssl/certs/ca-bundle.crt",
  "/etc/ssl/certs/ca-certificates.crt",
  "/etc/pki/tls/certs/ca-bundle.crt",
  HAND_MAINTAINED_BUNDLE,
];

/** The first candidate that is a usable CA file, or undefined. */
export function findCaBundle(
  candidates: readonly string[] = CA_BUNDLE_CANDIDATES,
): string | undefined {
  return candidates.find((path) => caFileProblem(path) === undefined);
}

/** Why `path` cannot be used as a CA file, or undefined when it can. */
export function caFileProblem(path: string): string | undefined {
  let text: string;
  try {
    if (!Deno.statSync(path).isFile) return `${path} is not a regular file`;
    text = Deno.readTextFileSync(path);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return `${path} does not exist`;
    return `cannot read ${path}: ${(err as Error).message}`;
  }
  if (!text.includes("-----BEGIN CERTIFICATE-----")) {
    return `${path} contains no PEM certificate (-----BEGIN CERTIFICATE-----)`;
  }
  return undefined;
}
