/**
 * A throw-away CA and two server certificates made with openssl, shared by the
 * TLS tests: one for 127.0.0.1/localhost and one for a name that does not match.
 */

/** Paths of the generated PEM files. */
export interface Certs {
  dir: string;
  /** The CA certificate's PEM text. */
  ca: string;
  /** The CA certificate's file (for agent.conf `ca_cert`). */
  caFile: string;
  good: { cert: string; key: string };
  wrongName: { cert: string; key: string };
}

let certs: Promise<Certs> | undefined;

/** Makes a CA plus two server certificates (127.0.0.1, and a wrong name) with openssl, once. */
export function makeCerts(): Promise<Certs> {
  certs ??= (async () => {
    const dir = await Deno.makeTempDir({ prefix: "dcm-tls-" });
    // Made once per test file and shared by its tests: removed when the file's run ends.
    globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
    const run = async (...args: string[]) => {
      const out = await new Deno.Command("openssl", {
        args,
        cwd: dir,
        stdout: "null",
        stderr: "piped",
      }).output();
      if (!out.success) {
        throw new Error(`openssl ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
      }
    };
    await run(
      "req",
      "-x509",
      "-newkey",
      "rsa:2048",
      "-nodes",
      "-keyout",
      "ca.key",
      "-out",
      "ca.pem",
      "-days",
      "2",
      "-subj",
      "/CN=dcm test CA",
      "-addext",
      "basicConstraints=critical,CA:TRUE",
      "-addext",
      "keyUsage=critical,keyCertSign,cRLSign",
    );
    for (
      const [name, san] of [["good", "IP:127.0.0.1,DNS:localhost"], [
        "wrong",
        "DNS:manager.example.com",
      ]]
    ) {
      await run(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        `${name}.key`,
        "-out",
        `${name}.csr`,
        "-subj",
        `/CN=${name}`,
      );
      await Deno.writeTextFile(
        `${dir}/${name}.ext`,
        `subjectAltName=${san}\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n`,
      );
      await run(
        "x509",
        "-req",
        "-in",
        `${name}.csr`,
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        `${name}.pem`,
        "-days",
        "2",
        "-extfile",
        `${name}.ext`,
      );
    }
    const read = (f: string) => Deno.readTextFileSync(`${dir}/${f}`);
    return {
      dir,
      ca: read("ca.pem"),
      caFile: `${dir}/ca.pem`,
      good: { cert: read("good.pem"), key: read("good.key") },
      wrongName: { cert: read("wrong.pem"), key: read("wrong.key") },
    };
  })();
  return certs;
}
