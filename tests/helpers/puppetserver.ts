/**
 * A private Puppet Server on 127.0.0.1 for tests: its own confdir, vardir,
 * codedir, logdir, rundir and CA in a temp dir, a small JVM heap, a free port.
 * Its certificate carries 127.0.0.1 as an IP subject alternative name, so
 * agents reach it by address without any /etc/hosts line. Starting it takes
 * one to three minutes on a loaded two-core machine: start one per test file.
 */
import { runProgram } from "./run.ts";

const JAR = "/usr/share/puppetserver/puppetserver.jar";
const BOOTSTRAP = "/etc/puppet/puppetserver/services.d";
const TEMPLATE_CONF_D = "/etc/puppet/puppetserver/conf.d";
/** How long the server may take to answer its status endpoint. */
const START_TIMEOUT_MS = 400_000;

/** A running private Puppet Server. */
export interface PuppetServer {
  port: number;
  dir: string;
  /** Milliseconds from spawn to a "running" status. */
  startMs: number;
  /** Writes the site manifest (production environment). */
  setManifest(text: string): Promise<void>;
  /** Has the CA sign a certificate for `certname`; returns its PEM certificate and key. */
  generateCert(certname: string): Promise<{ cert: string; key: string }>;
  stop(): Promise<void>;
}

/** Fails with a clear message when the Debian packages are missing. */
export function requirePuppetPackages(): void {
  for (const f of [JAR, "/usr/bin/puppet", "/usr/bin/puppetserver"]) {
    try {
      Deno.statSync(f);
    } catch {
      throw new Error(
        `${f} is missing: install the Debian packages puppet-agent and puppetserver ` +
          "(scripts/test.sh does) to run the Puppet tests",
      );
    }
  }
}

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** Sets up the CA and starts the server; resolves once its status is "running". */
export async function startPuppetServer(): Promise<PuppetServer> {
  requirePuppetPackages();
  const dir = await Deno.makeTempDir({ prefix: "dcm-puppetserver-" });
  const port = freePort();
  for (const sub of ["conf", "code/environments/production/manifests", "var", "log", "run"]) {
    await Deno.mkdir(`${dir}/${sub}`, { recursive: true });
  }
  const puppetConf = `${dir}/conf/puppet.conf`;
  await Deno.writeTextFile(
    puppetConf,
    [
      "[main]",
      `confdir = ${dir}/conf`,
      `vardir = ${dir}/var`,
      `codedir = ${dir}/code`,
      `logdir = ${dir}/log`,
      `rundir = ${dir}/run`,
      `ssldir = ${dir}/conf/ssl`,
      // Debian's default CA directory is /etc/puppet/puppetserver/ca: keep it private.
      `cadir = ${dir}/conf/ca`,
      "certname = dcm-test-puppetserver",
      "server = 127.0.0.1",
      `serverport = ${port}`,
      "",
    ].join("\n"),
  );
  // The CA and the server's certificate (with 127.0.0.1 as an IP SAN), made before the start.
  const setup = await runProgram("puppetserver", [
    "ca",
    "setup",
    "--config",
    puppetConf,
    "--certname",
    "dcm-test-puppetserver",
    "--subject-alt-names",
    "localhost,IP:127.0.0.1",
  ], { timeoutMs: 180_000 });
  if (setup.code !== 0) throw new Error(`puppetserver ca setup failed: ${setup.stderr}`);

  const confD = `${dir}/conf.d`;
  await Deno.mkdir(confD);
  for (const f of ["auth.conf", "ca.conf", "metrics.conf", "web-routes.conf"]) {
    await Deno.copyFile(`${TEMPLATE_CONF_D}/${f}`, `${confD}/${f}`);
  }
  await Deno.writeTextFile(
    `${confD}/global.conf`,
    `global: { logging-config: ${dir}/logback.xml }\n`,
  );
  await Deno.writeTextFile(
    `${dir}/logback.xml`,
    `<configuration>
  <appender name="F1" class="ch.qos.logback.core.FileAppender">
    <file>${dir}/log/puppetserver.log</file>
    <encoder><pattern>%d %-5p [%c{2}] %m%n</pattern></encoder>
  </appender>
  <logger name="org.eclipse.jetty" level="WARN"/>
  <root level="info"><appender-ref ref="F1"/></root>
</configuration>
`,
  );
  await Deno.writeTextFile(
    `${confD}/puppetserver.conf`,
    `jruby-puppet: {
    ruby-load-path: [/usr/lib/puppetserver/ruby/vendor_ruby]
    gem-home: ${dir}/var/jruby-gems
    gem-path: [${dir}/var/jruby-gems, "/usr/lib/puppetserver/vendored-jruby-gems"]
    server-conf-dir: ${dir}/conf
    server-code-dir: ${dir}/code
    server-var-dir: ${dir}/var
    server-run-dir: ${dir}/run
    server-log-dir: ${dir}/log
    max-active-instances: 1
    # JRuby's interpreter only: compiling Ruby to bytecode costs more than it saves here.
    compile-mode: off
}
http-client: {}
profiler: {}
`,
  );
  await Deno.writeTextFile(
    `${confD}/webserver.conf`,
    `webserver: {\n  client-auth: want\n  ssl-host: 127.0.0.1\n  ssl-port: ${port}\n}\n`,
  );

  const started = performance.now();
  const child = new Deno.Command("/usr/bin/java", {
    args: [
      "-Xms256m",
      "-Xmx512m",
      // The C1 compiler only: a much faster start, and these tests are short.
      "-XX:TieredStopAtLevel=1",
      // One GC thread: the machine has two cores and other tests run beside it.
      "-XX:+UseSerialGC",
      "-Djruby.logger.class=com.puppetlabs.jruby_utils.jruby.Slf4jLogger",
      "-Djruby.lib=/usr/share/jruby/lib",
      "-jar",
      JAR,
      "--config",
      confD,
      "--bootstrap-config",
      BOOTSTRAP,
    ],
    cwd: "/usr/share/puppetserver",
    stdin: "null",
    stdout: "null",
    stderr: "null",
    detached: true,
  }).spawn();
  const status = child.status;
  let exited = false;
  status.then(() => exited = true);

  const stop = async () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch {
      // Already gone.
    }
    await status;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  };

  try {
    const client = Deno.createHttpClient({
      caCerts: [await Deno.readTextFile(`${dir}/conf/ca/ca_crt.pem`)],
    });
    for (;;) {
      if (exited) {
        const log = await Deno.readTextFile(`${dir}/log/puppetserver.log`).catch(() => "");
        throw new Error(`puppetserver exited during its start; its log:\n${log.slice(-3000)}`);
      }
      if (performance.now() - started > START_TIMEOUT_MS) {
        throw new Error(`puppetserver did not start within ${START_TIMEOUT_MS} ms`);
      }
      try {
        const r = await fetch(`https://127.0.0.1:${port}/status/v1/simple`, { client });
        if ((await r.text()).trim() === "running") break;
      } catch {
        // Not listening yet.
      }
      await new Promise((resolve) => setTimeout(resolve, 1000));
    }
    client.close();
  } catch (err) {
    await stop();
    throw err;
  }
  const startMs = Math.round(performance.now() - started);

  return {
    port,
    dir,
    startMs,
    setManifest: (text) =>
      Deno.writeTextFile(`${dir}/code/environments/production/manifests/site.pp`, text),
    async generateCert(certname) {
      // Through the running server's CA API, as an operator would.
      const r = await runProgram("puppetserver", [
        "ca",
        "generate",
        "--config",
        puppetConf,
        "--certname",
        certname,
      ], { timeoutMs: 120_000 });
      if (r.code !== 0) throw new Error(`puppetserver ca generate failed: ${r.stdout}${r.stderr}`);
      return {
        cert: await Deno.readTextFile(`${dir}/conf/ssl/certs/${certname}.pem`),
        key: await Deno.readTextFile(`${dir}/conf/ssl/private_keys/${certname}.pem`),
      };
    },
    stop,
  };
}
