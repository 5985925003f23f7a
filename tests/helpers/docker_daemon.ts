/**
 * A private Docker Engine for tests: Debian's dockerd on a socket in a temp
 * dir (never /var/run/docker.sock), optionally also on 127.0.0.1 with TLS
 * and client certificates; a busybox image made with `docker import`; and
 * Debian's docker-registry on 127.0.0.1 for pulls. Nothing comes from a
 * public registry.
 */
import { join } from "node:path";
import { makeCerts } from "./tls_certs.ts";
import { pathExists } from "../../lib/os/fs_stat.ts";

/** Debian package -> a file it installs. */
const PACKAGES: Record<string, string> = {
  "docker.io": "/usr/sbin/dockerd",
  "busybox-static": "/bin/busybox",
  "docker-registry": "/usr/bin/docker-registry",
};
/** Debian's client, not another docker that may be first on PATH. */
const DOCKER_CLI = "/usr/bin/docker";

/** Why dockerd cannot run here (not root), or null. */
export function cannotRunDocker(): string | null {
  return Deno.uid() === 0 ? null : "dockerd needs root; these tests run it on a private socket";
}

/** Installs the Debian packages the docker tests need; throws naming the missing package. */
export async function ensureDockerPackages(): Promise<void> {
  const missing = Object.entries(PACKAGES).filter(([, f]) => !pathExists(f)).map(([p]) => p);
  if (missing.length === 0) return;
  const install = "apt-get update -qq; DEBIAN_FRONTEND=noninteractive apt-get install -y -q " +
    `-o DPkg::Lock::Timeout=300 --no-install-recommends ${missing.join(" ")}`;
  const out = await new Deno.Command("sh", {
    args: ["-c", install],
    stdout: "piped",
    stderr: "piped",
  }).output().catch((err) => ({ success: false, stderr: new TextEncoder().encode(String(err)) }));
  const still = Object.entries(PACKAGES).filter(([, f]) => !pathExists(f)).map(([p]) => p);
  if (!out.success || still.length > 0) {
    throw new Error(
      `the docker tests need the Debian packages ${still.join(", ")}; install them with ` +
        `'apt-get install --no-install-recommends ${still.join(" ")}' ` +
        `(apt-get said: ${new TextDecoder().decode(out.stderr).slice(-500)})`,
    );
  }
}

/** A free TCP port on 127.0.0.1. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

async function run(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(`${cmd} ${args.join(" ")} failed: ${new TextDecoder().decode(out.stderr)}`);
  }
  return text;
}

/** Client certificate files signed by the test CA (TLS client authentication). */
export interface ClientCerts {
  caFile: string;
  serverCert: string;
  serverKey: string;
  clientCert: string;
  clientKey: string;
}

/** The test CA's server certificate for 127.0.0.1 and a client certificate, as files. */
export async function makeDockerCerts(dir: string): Promise<ClientCerts> {
  const certs = await makeCerts();
  const f = (name: string) => join(dir, name);
  await Deno.writeTextFile(f("server.pem"), certs.good.cert);
  await Deno.writeTextFile(f("server.key"), certs.good.key);
  await run("openssl", [
    "req",
    "-newkey",
    "rsa:2048",
    "-nodes",
    "-keyout",
    f("client.key"),
    "-out",
    f("client.csr"),
    "-subj",
    "/CN=dcm-agent",
  ]);
  await Deno.writeTextFile(f("client.ext"), "extendedKeyUsage=clientAuth\n");
  await run("openssl", [
    "x509",
    "-req",
    "-in",
    f("client.csr"),
    "-CA",
    certs.caFile,
    "-CAkey",
    join(certs.dir, "ca.key"),
    "-CAcreateserial",
    "-out",
    f("client.pem"),
    "-days",
    "2",
    "-extfile",
    f("client.ext"),
  ]);
  return {
    caFile: certs.caFile,
    serverCert: f("server.pem"),
    serverKey: f("server.key"),
    clientCert: f("client.pem"),
    clientKey: f("client.key"),
  };
}

/** A running private dockerd. */
export class DockerDaemon {
  readonly dir: string;
  readonly socket: string;
  /** The TLS port on 127.0.0.1, when started with certificates. */
  readonly tlsPort?: number;
  #child: Deno.ChildProcess;
  #log: string;
  #others: Deno.ChildProcess[] = [];

  private constructor(dir: string, child: Deno.ChildProcess, tlsPort?: number) {
    this.dir = dir;
    this.socket = join(dir, "docker.sock");
    this.#child = child;
    this.#log = join(dir, "dockerd.log");
    this.tlsPort = tlsPort;
  }

  /** Starts dockerd; with `certs` it also listens with TLS (client certificate required). */
  static async start(options: { certs?: ClientCerts } = {}): Promise<DockerDaemon> {
    const dir = await Deno.makeTempDir({ prefix: "dcm-dkr-" });
    const args = [
      "-H",
      `unix://${join(dir, "docker.sock")}`,
      "--data-root",
      join(dir, "data"),
      "--exec-root",
      join(dir, "exec"),
      "--pidfile",
      join(dir, "pid"),
      "--iptables=false",
      "--bridge=none",
    ];
    let tlsPort: number | undefined;
    if (options.certs) {
      tlsPort = freePort();
      const c = options.certs;
      args.push(
        "-H",
        `tcp://127.0.0.1:${tlsPort}`,
        "--tlsverify",
        "--tlscacert",
        c.caFile,
        "--tlscert",
        c.serverCert,
        "--tlskey",
        c.serverKey,
      );
    }
    const log = await Deno.open(join(dir, "dockerd.log"), { write: true, create: true });
    const child = new Deno.Command("dockerd", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    child.stdout.pipeTo(log.writable, { preventClose: true }).catch(() => {});
    child.stderr.pipeTo((await Deno.open(join(dir, "dockerd.log"), { append: true })).writable)
      .catch(() => {});
    const daemon = new DockerDaemon(dir, child, tlsPort);
    await daemon.#waitReady();
    return daemon;
  }

  async #waitReady(): Promise<void> {
    const deadline = Date.now() + 60_000;
    let exited = false;
    this.#child.status.then(() => exited = true);
    const client = Deno.createHttpClient({ proxy: { transport: "unix", path: this.socket } });
    try {
      while (Date.now() < deadline && !exited) {
        try {
          const res = await fetch("http://docker/_ping", { client });
          await res.body?.cancel();
          if (res.ok) return;
        } catch {
          // The socket is not there yet.
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    } finally {
      client.close();
    }
    throw new Error(`dockerd did not start:\n${this.logText().slice(-3000)}`);
  }

  /** dockerd's output so far. */
  logText(): string {
    try {
      return Deno.readTextFileSync(this.#log);
    } catch {
      return "";
    }
  }

  /** Runs Debian's docker client against this daemon. */
  cli(args: string[]): Promise<string> {
    return run(DOCKER_CLI, ["-H", `unix://${this.socket}`, ...args]);
  }

  /** Imports a busybox-static root file system as image `name`. */
  async importBusybox(name: string): Promise<string> {
    const root = join(this.dir, "rootfs");
    await Deno.mkdir(join(root, "bin"), { recursive: true });
    await Deno.copyFile("/bin/busybox", join(root, "bin/busybox"));
    await Deno.chmod(join(root, "bin/busybox"), 0o755);
    for (const applet of ["sh", "echo", "seq", "sleep", "cat", "ls", "true"]) {
      await Deno.symlink("busybox", join(root, "bin", applet));
    }
    const tar = join(this.dir, "rootfs.tar");
    await run("tar", ["-C", root, "-cf", tar, "."]);
    await this.cli(["import", tar, name]);
    return tar;
  }

  /** Starts Debian's docker-registry on 127.0.0.1; returns "127.0.0.1:<port>". */
  async startRegistry(): Promise<string> {
    const port = freePort();
    const config = join(this.dir, "registry.yml");
    await Deno.writeTextFile(
      config,
      [
        "version: 0.1",
        "log:",
        "  level: error",
        "storage:",
        "  filesystem:",
        `    rootdirectory: ${join(this.dir, "registry")}`,
        "http:",
        `  addr: 127.0.0.1:${port}`,
        "",
      ].join("\n"),
    );
    const child = new Deno.Command("docker-registry", {
      args: ["serve", config],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    this.#others.push(child);
    const deadline = Date.now() + 30_000;
    while (Date.now() < deadline) {
      try {
        const res = await fetch(`http://127.0.0.1:${port}/v2/`);
        await res.body?.cancel();
        if (res.ok) return `127.0.0.1:${port}`;
      } catch {
        // not listening yet
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error("docker-registry did not start on 127.0.0.1");
  }

  /** Stops dockerd (and the registry); the directory stays until {@linkcode cleanup}. */
  async stop(): Promise<void> {
    for (const c of this.#others) {
      try {
        c.kill("SIGKILL");
      } catch { /* gone */ }
      await c.status;
    }
    this.#others = [];
    try {
      this.#child.kill("SIGTERM");
    } catch { /* gone */ }
    const timer = setTimeout(() => {
      try {
        this.#child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 20_000);
    await this.#child.status;
    clearTimeout(timer);
  }

  /** Stops everything and removes the directory. */
  async cleanup(): Promise<void> {
    await this.stop();
    // Container layers may still be mounted under data/ for a moment.
    await run("sh", [
      "-c",
      `grep -o ' ${this.dir}[^ ]*' /proc/mounts | sort -r | xargs -r -n1 umount -l`,
    ])
      .catch(() => {});
    await Deno.remove(this.dir, { recursive: true }).catch(() => {});
  }
}
