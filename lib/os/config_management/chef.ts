/**
 * One Chef client run: client.rb in the Chef configuration directory (the
 * previous one kept as client.rb.orig), the validation key and
 * first-boot.json in the private directory, then
 * `chef-client -c client.rb -j first-boot.json [-E environment]`. The
 * validation key goes with the private directory whatever the outcome. A
 * missing chef-client is installed only from a source the operator configured.
 */
import { basename, join } from "node:path";
import { downloadFile } from "./download.ts";
import {
  findProgram,
  installCommand,
  runAsUser,
  runPrivileged,
  type RunSettings,
  type Workspace,
} from "./workspace.ts";
import type { ConfigRequest, ConfigSettings, ToolRun } from "./types.ts";
import type { ProcessResult } from "../process_runner.ts";
import { ToolRunner } from "../run_tool.ts";

/** A Ruby single-quoted string literal; refuses control characters (they never belong here). */
export function rubyString(value: string, what: string): string {
  // deno-lint-ignore no-control-regex
  if (/[\x00-\x1f\x7f]/.test(value)) {
    throw new Error(`${what} contains a line break or control character; send a plain value`);
  }
  return `'${value.replace(/\\/g, "\\\\").replace(/'/g, "\\'")}'`;
}

/** The client.rb of the run. */
export function clientRb(request: ConfigRequest, validationKey: string, confDir: string): string {
  const lines = [
    "log_level :info",
    "log_location STDOUT",
    `chef_server_url ${rubyString(request.endpoint ?? "", "endpoint")}`,
    `validation_client_name ${rubyString(request.authId ?? "", "authId")}`,
    `validation_key ${rubyString(validationKey, "the validation key path")}`,
    `client_key ${rubyString(join(confDir, "client.pem"), "the client key path")}`,
  ];
  if (request.clientName) {
    lines.push(`node_name ${rubyString(request.clientName, "configClientName")}`);
  }
  return lines.join("\n") + "\n";
}

/** Runs chef-client once for `request`. */
export async function runChef(
  request: ConfigRequest,
  ws: Workspace,
  options: { settings: RunSettings; conf: ConfigSettings },
): Promise<ToolRun> {
  const { settings, conf } = options;
  if (!request.endpoint) {
    throw new Error("configType chef needs an endpoint: the Chef server URL");
  }
  if (!request.authSecret) {
    throw new Error(
      "configType chef needs encryptedAuthSecret: the validator key (PEM), base64",
    );
  }
  const validationKey = await ws.write("validation.pem", request.authSecret, true);
  const firstBoot = await ws.write(
    "first-boot.json",
    JSON.stringify({ run_list: request.runList.map(String) }) + "\n",
    false,
  );
  const client = clientRb(request, validationKey, conf.chefConfigDir);
  const chef = await ensureChef(ws, settings, conf);
  await ws.handOver();
  const clientFile = await installClientRb(client, settings, conf.chefConfigDir);

  const argv = [chef, "-c", clientFile, "-j", firstBoot];
  if (request.environmentId) argv.push("-E", request.environmentId);
  const result = await runAsUser(argv, settings);
  return { command: argv.join(" "), result, okCodes: [0] };
}

/** Writes client.rb as root, keeping the previous one as client.rb.orig. */
async function installClientRb(
  content: string,
  settings: RunSettings,
  confDir: string,
): Promise<string> {
  const { uid, gid } = settings.user;
  const runner = new ToolRunner({ sudo: settings.sudo });
  const file = join(confDir, "client.rb");
  // The directory belongs to the run user: chef-client writes its node key there.
  await runner.check(
    ["install", "-d", "-m", "0755", "-o", String(uid), "-g", String(gid), "--", confDir],
    { privileged: true },
  );
  const kept = await runner.run(["cp", "-p", "--", file, `${file}.orig`], { privileged: true });
  if (kept.code !== 0 && !/No such file/.test(kept.stderr)) {
    throw new Error(`cannot keep the previous ${file} as client.rb.orig: ${kept.stderr.trim()}`);
  }
  await runner.installFile(file, content, { mode: 0o644, uid, gid });
  return file;
}

function check(result: ProcessResult, what: string): void {
  if (result.code === 0) return;
  throw new Error(`${what}: ${result.stderr.trim() || `exit code ${result.code}`}`);
}

/** The chef-client program; installs it from the configured source when missing. */
async function ensureChef(
  ws: Workspace,
  settings: RunSettings,
  conf: ConfigSettings,
): Promise<string> {
  const found = findProgram("chef-client", conf.extraPath);
  if (found) return found;
  if (conf.chefInstallerUrl) {
    if (!conf.chefInstallerSha256) {
      throw new Error(
        "chef-client is not installed and [configuration_management] chef_installer_url is set " +
          "without chef_installer_sha256; set chef_installer_sha256 to the installer's SHA-256 " +
          "so the agent can check it before running it",
      );
    }
    const name = basename(new URL(conf.chefInstallerUrl).pathname) || "chef-installer";
    const file = join(ws.dir, `installer-${name.replace(/[^A-Za-z0-9._-]/g, "_")}`);
    await downloadFile(conf.chefInstallerUrl, file, {
      sha256: conf.chefInstallerSha256,
      signal: settings.signal,
      mode: 0o700,
    });
    const argv = file.endsWith(".deb")
      ? ["dpkg", "-i", file]
      : file.endsWith(".rpm")
      ? ["rpm", "-Uvh", file]
      : ["sh", file, ...(conf.chefVersion ? ["-v", conf.chefVersion] : [])];
    check(
      await runPrivileged(argv, settings),
      `the Chef installer from ${conf.chefInstallerUrl} failed`,
    );
  } else if (conf.chefPackage) {
    check(
      await runPrivileged(installCommand(conf.platform, conf.chefPackage), settings, {
        DEBIAN_FRONTEND: "noninteractive",
      }),
      `cannot install the package ${conf.chefPackage}`,
    );
  } else {
    throw new Error(
      "chef-client is not installed on this server and no installation source is configured; " +
        "install Chef's client, or set [configuration_management] chef_installer_url and " +
        "chef_installer_sha256 (an installer the agent downloads and checks) or chef_package " +
        "(a package of this platform) in agent.conf",
    );
  }
  const installed = findProgram("chef-client", conf.extraPath);
  if (!installed) {
    throw new Error(
      "the Chef installation finished but no chef-client program was found in " +
        "/usr/bin, /opt/chef/bin or the other usual directories; check the installer",
    );
  }
  return installed;
}
