/**
 * One Puppet agent run: the client certificate and key in a private ssldir,
 * a puppet.conf naming the node and the server, and
 * `puppet agent --onetime --no-daemonize --detailed-exitcodes`. Every Puppet
 * directory (ssl, var, log, run) lies in the private directory, so nothing of
 * the run, keys included, stays behind.
 */
import {
  findProgram,
  installCommand,
  runAsUser,
  runPrivileged,
  type RunSettings,
  type Workspace,
} from "./workspace.ts";
import type { ConfigRequest, ConfigSettings, ToolRun } from "./types.ts";

/** Puppet's --detailed-exitcodes: 0 nothing changed, 2 changes applied; 1, 4, 6 failures. */
const PUPPET_OK_CODES = [0, 2];

/** A Puppet server given as host, host:port or URL. */
export interface PuppetServer {
  host: string;
  port: string | null;
}

/** Parses `endpoint` (host, host:port, [v6]:port or URL); throws on anything else. */
export function parsePuppetServer(endpoint: string): PuppetServer {
  const text = endpoint.trim();
  let url: URL;
  try {
    url = new URL(text.includes("://") ? text : `https://${text}`);
  } catch {
    throw new Error(
      `endpoint '${endpoint}' is not a Puppet server; send a host name, host:port or URL`,
    );
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, "$1");
  if (!/^[A-Za-z0-9.:-]+$/.test(host)) {
    throw new Error(`endpoint '${endpoint}' has no valid host name`);
  }
  return { host, port: url.port === "" ? null : url.port };
}

/** Checks a certificate name (Puppet wants lower case letters, digits, dots, dashes, underscores). */
export function checkCertname(name: string | null): string {
  if (name === null || !/^[a-z0-9][a-z0-9._-]{0,252}$/.test(name)) {
    throw new Error(
      `configClientName ${JSON.stringify(name)} is not a valid Puppet certificate name; ` +
        "send lower-case letters, digits, dots, dashes or underscores",
    );
  }
  return name;
}

/** The puppet.conf of the run. */
export function puppetConf(dir: string, certname: string, server: PuppetServer): string {
  const lines = [
    "[main]",
    `ssldir = ${dir}/ssl`,
    `vardir = ${dir}/var`,
    `logdir = ${dir}/log`,
    `rundir = ${dir}/run`,
    `codedir = ${dir}/code`,
    "",
    "[agent]",
    `certname = ${certname}`,
    `server = ${server.host}`,
  ];
  if (server.port) lines.push(`serverport = ${server.port}`);
  return lines.join("\n") + "\n";
}

/** Runs Puppet once for `request` in the workspace. */
export async function runPuppet(
  request: ConfigRequest,
  ws: Workspace,
  options: { settings: RunSettings; conf: ConfigSettings },
): Promise<ToolRun> {
  if (!request.endpoint) {
    throw new Error("configType puppet needs an endpoint: the Puppet server's host name or URL");
  }
  if (!request.clientCert || !request.clientKey) {
    throw new Error(
      "configType puppet needs configCert and configKey: the node's certificate and key, base64",
    );
  }
  const server = parsePuppetServer(request.endpoint);
  const certname = checkCertname(request.clientName);
  const puppet = await ensurePuppet(options.settings, options.conf);

  await ws.write(`ssl/certs/${certname}.pem`, request.clientCert, false);
  await ws.write(`ssl/private_keys/${certname}.pem`, request.clientKey, true);
  await ws.write("puppet.conf", puppetConf(ws.dir, certname, server), false);
  for (const sub of ["var", "log", "run", "code"]) await ws.mkdir(sub);
  await ws.handOver();

  const argv = [
    puppet,
    "agent",
    "--confdir",
    ws.dir,
    "--onetime",
    "--no-daemonize",
    "--detailed-exitcodes",
    "--no-splay",
    "--no-usecacheonfailure",
    "--verbose",
    "--color=false",
  ];
  const result = await runAsUser(argv, options.settings);
  return { command: argv.join(" "), result, okCodes: PUPPET_OK_CODES };
}

/** The `puppet` program; installs the platform's package when it is missing. */
async function ensurePuppet(settings: RunSettings, conf: ConfigSettings): Promise<string> {
  const found = findProgram("puppet", conf.extraPath);
  if (found) return found;
  const argv = installCommand(conf.platform, conf.puppetPackage);
  let result = await runPrivileged(argv, settings, { DEBIAN_FRONTEND: "noninteractive" });
  if (result.code !== 0 && argv[0] === "apt-get") {
    // A fresh image often has no package lists yet.
    await runPrivileged(["apt-get", "update", "-q"], settings);
    result = await runPrivileged(argv, settings, { DEBIAN_FRONTEND: "noninteractive" });
  }
  const installed = findProgram("puppet", conf.extraPath);
  if (result.code !== 0 || !installed) {
    const said = (result.stderr.trim() || result.stdout.trim()).split("\n").slice(-5).join("\n");
    throw new Error(
      `Puppet is not installed and '${argv.join(" ")}' failed (exit code ${result.code})` +
        `${said ? `: ${said}` : ""}; install Puppet's agent (package ${conf.puppetPackage}) ` +
        "on this server or set [configuration_management] puppet_package to a package that " +
        "provides the puppet program",
    );
  }
  return installed;
}
