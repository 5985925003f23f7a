/**
 * `configure_server`: bootstraps this server into Puppet, Chef or Ansible (a
 * long-running job). Replies with the tool's stdout as a string on success,
 * or its exit code with stderr (or the tail of stdout) as the message on
 * failure; stderr goes to the manager's console at WARNING, stdout at INFO.
 */
import { join } from "node:path";
import { defineCommand } from "../../lib/core/mod.ts";
import { makeReply } from "../../lib/protocol/mod.ts";
import { platformFor } from "../../lib/os/mod.ts";
import type { AgentConfig } from "../../lib/config/mod.ts";
import type { ConfigSettings, ConfigTool } from "../../lib/os/config_management/mod.ts";

const TOOLS: readonly ConfigTool[] = ["puppet", "chef", "ansible"];

/** Characters of stdout used as the failure message when stderr is empty. */
const FAILURE_TAIL_CHARS = 4000;

export default defineCommand({
  name: "configure_server",
  description: "Runs Puppet, Chef or Ansible once to bring this server into its configuration.",
  execution: "long",
  args: {
    configType: {
      type: "str",
      required: true,
      help: "puppet, chef or ansible (any case).",
    },
    authId: { type: "str", help: "Chef: the validation client name." },
    configurationData: { type: "base64_text", help: "Unused." },
    encryptedConfigToken: { type: "base64_text", help: "Unused." },
    encryptedAuthSecret: {
      type: "base64_text",
      help: "Chef: the validator key (PEM). Ansible: a vault password.",
    },
    endpoint: {
      type: "str",
      help: "Chef server URL; Puppet server host, host:port or URL; Ansible git or archive URL.",
    },
    providerRegionId: { type: "str", help: "Unused." },
    runAsUser: { type: "str", help: "The user the tool runs as; default [system]user." },
    storageDelegate: { type: "str", help: "Unused." },
    storageEndpoint: { type: "str", help: "Unused." },
    storageAccount: { type: "str", help: "Unused." },
    scriptFiles: { type: "list", help: "Unused." },
    storagePublicKey: { type: "base64_text", help: "Unused." },
    storagePrivateKey: { type: "base64_text", help: "Unused." },
    environmentId: {
      type: "str",
      help: "Chef environment (-E); Ansible extra variable environmentId.",
    },
    personalityFiles: { type: "list", help: "Unused." },
    configClientName: { type: "str", help: "Chef node name; Puppet certname." },
    configCert: { type: "base64_text", help: "Puppet: the node's certificate (PEM)." },
    configKey: {
      type: "base64_text",
      help: "Puppet: the node's private key (PEM). Ansible: an SSH key for the git repository.",
    },
    runListIds: { type: "list", help: "Chef run list; Ansible playbooks, run in order." },
    parameterList: { type: "base64_text", help: "Unused." },
  },
  async run(args, ctx) {
    const tool = (args.configType ?? "").trim().toLowerCase() as ConfigTool;
    if (!TOOLS.includes(tool)) {
      throw new Error(
        `configType ${JSON.stringify(args.configType)} is not supported; ` +
          "send puppet, chef or ansible",
      );
    }
    const { runConfigurationManagement } = await import(
      "../../lib/os/config_management/mod.ts"
    );
    const outcome = await runConfigurationManagement({
      tool,
      endpoint: emptyToNull(args.endpoint),
      clientName: emptyToNull(args.configClientName),
      authId: emptyToNull(args.authId),
      authSecret: emptyToNull(args.encryptedAuthSecret),
      clientCert: emptyToNull(args.configCert),
      clientKey: emptyToNull(args.configKey),
      environmentId: emptyToNull(args.environmentId),
      runList: (args.runListIds ?? []).map(String),
      runAs: emptyToNull(args.runAsUser) ?? ctx.config.system.user ?? "root",
    }, { conf: settingsOf(ctx.config), signal: ctx.signal });

    if (outcome.stderr.trim() !== "") ctx.log.console("WARNING", outcome.stderr);
    if (outcome.stdout.trim() !== "") ctx.log.console("INFO", outcome.stdout);
    if (outcome.code === 0) {
      return makeReply(0, { reply_type: "string", reply_object: outcome.stdout });
    }
    // Chef and Ansible report failed steps on stdout: its tail says why when stderr is empty.
    const why = outcome.stderr.trim() !== ""
      ? outcome.stderr
      : outcome.stdout.slice(-FAILURE_TAIL_CHARS);
    const parts = [why.trim(), outcome.note].filter((p) => p !== "");
    if (parts.length === 0) parts.push(`${tool} exited with code ${outcome.code} and no output`);
    if (outcome.logFile) parts.push(`(full output: ${outcome.logFile})`);
    return makeReply(outcome.code, { message: parts.join("\n") });
  },
});

function emptyToNull(value: string | null): string | null {
  return value === null || value.trim() === "" ? null : value;
}

/** The agent.conf settings of a run. */
function settingsOf(config: AgentConfig): ConfigSettings {
  const cm = config.configuration_management;
  const base = config.storage.base_dir ?? "/dcm";
  return {
    tempDir: config.storage.temppath ?? "/tmp",
    logDir: join(base, "logs"),
    sudo: Deno.uid() === 0 ? null : config.system.sudo,
    timeoutSeconds: cm.run_timeout,
    replyBytes: config.jobs.max_output_bytes,
    platform: platformFor(config).name,
    puppetPackage: cm.puppet_package ?? "puppet-agent",
    chefConfigDir: cm.chef_config_dir ?? "/etc/chef",
    chefInstallerUrl: cm.chef_installer_url,
    chefInstallerSha256: cm.chef_installer_sha256,
    chefPackage: cm.chef_package,
    chefVersion: cm.chef_client_version,
    // The agent's own PATH is searched first, so an operator can point it at their tools.
    extraPath: (Deno.env.get("PATH") ?? "").split(":").filter((d) => d.startsWith("/")),
  };
}
