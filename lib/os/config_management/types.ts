/** The shared types of the configuration-management adapter. */
import type { ProcessResult } from "../process_runner.ts";

/** The supported tools. */
export type ConfigTool = "puppet" | "chef" | "ansible";

/** One configure_server run, as the manager asked for it (secrets already decoded). */
export interface ConfigRequest {
  tool: ConfigTool;
  /** Chef server URL, Puppet server (host, host:port or URL), Ansible git/archive URL. */
  endpoint: string | null;
  /** Chef node name / Puppet certname. */
  clientName: string | null;
  /** Chef validation client name. */
  authId: string | null;
  /** Chef validator key PEM; Ansible vault password. */
  authSecret: string | null;
  /** Puppet client certificate PEM. */
  clientCert: string | null;
  /** Puppet client key PEM; Ansible: SSH key for the git repository. */
  clientKey: string | null;
  /** Chef environment; Ansible extra variable `environmentId`. */
  environmentId: string | null;
  /** Chef run list; Ansible playbooks. */
  runList: string[];
  /** The user the tool runs as. */
  runAs: string;
}

/** Agent-side settings of a run (agent.conf and the platform). */
export interface ConfigSettings {
  /** Parent directory of the private working directory. */
  tempDir: string;
  /** Directory of the full-output files. */
  logDir: string;
  /** The sudo program when the agent is not root, else null. */
  sudo: string | null;
  /** Seconds the run may take (0: no limit). */
  timeoutSeconds: number;
  /** Bytes of output kept in the reply. */
  replyBytes: number;
  /** The platform's name (debian, ubuntu, rhel, centos, fedora), for package installs. */
  platform: string;
  /** Package installed with the platform's package manager when `puppet` is missing. */
  puppetPackage: string;
  /** Where client.rb lives (/etc/chef). */
  chefConfigDir: string;
  /** URL of a Chef installer (script, .deb or .rpm), used only with its SHA-256. */
  chefInstallerUrl: string | null;
  chefInstallerSha256: string | null;
  /** Package of the platform that provides chef-client, installed when it is missing. */
  chefPackage: string | null;
  /** The chef-client version given to an installer script (`-v`). */
  chefVersion: string | null;
  /** Extra directories searched first for programs (tests put stand-ins there). */
  extraPath: string[];
}

/** How a run ended. */
export interface ConfigOutcome {
  /** 0 on success (Puppet's 2 "changes applied" counts as 0), else the tool's code. */
  code: number;
  /** Output with every secret value masked; capped for the reply. */
  stdout: string;
  stderr: string;
  /** Why the run was stopped, if it was (time limit, CANCEL), in plain words. */
  note: string;
  /** The file holding the full output. */
  logFile: string | null;
}

/** What a tool module returns: the (masked) command line and the raw process result. */
export interface ToolRun {
  command: string;
  result: ProcessResult;
  /** Exit codes that mean success. */
  okCodes: number[];
}
