/**
 * Every agent.conf section and key, with its type, default, unit and help
 * text, in the order `configure` writes them (README, Configuration). The typed
 * `AgentConfig` is derived from this one table.
 */

/** The value kinds an agent.conf key can have. */
export type OptionKind = "string" | "path" | "int" | "float" | "bool" | "list" | "choice";

/** One agent.conf key. */
export interface OptionSpec<T> {
  kind: OptionKind;
  default: T;
  help: string;
  /** The agent refuses to start when a required key has no value. */
  required?: boolean;
  /** Allowed values for `choice` (compared case-insensitively). */
  choices?: readonly string[];
  /** Smallest allowed number for int/float. */
  min?: number;
  /** Not written by `configure` (test-only or internal keys). */
  hidden?: boolean;
}

function str(def: string | null, help: string, extra: Partial<OptionSpec<string | null>> = {}) {
  return { kind: "string", default: def, help, ...extra } as OptionSpec<string | null>;
}
function path(def: string | null, help: string, extra: Partial<OptionSpec<string | null>> = {}) {
  return { kind: "path", default: def, help, ...extra } as OptionSpec<string | null>;
}
function int(def: number, help: string, extra: Partial<OptionSpec<number>> = {}) {
  return { kind: "int", default: def, help, ...extra } as OptionSpec<number>;
}
function float(def: number, help: string, extra: Partial<OptionSpec<number>> = {}) {
  return { kind: "float", default: def, help, ...extra } as OptionSpec<number>;
}
function bool(def: boolean, help: string, extra: Partial<OptionSpec<boolean>> = {}) {
  return { kind: "bool", default: def, help, ...extra } as OptionSpec<boolean>;
}
function choice(def: string | null, choices: readonly string[], help: string) {
  return { kind: "choice", default: def, help, choices } as OptionSpec<string | null>;
}

/** Cloud names accepted in `[cloud]type` (ARCHITECTURE.md, Cloud metadata). */
export const CLOUD_TYPES = [
  "Amazon",
  "Atmos",
  "ATT",
  "Azure",
  "Bluelock",
  "CloudCentral",
  "CloudSigma",
  "CloudStack",
  "CloudStack3",
  "DigitalOcean",
  "Eucalyptus",
  "GoGrid",
  "Google",
  "IBM",
  "Joyent",
  "Konami",
  "OpenStack",
  "Other",
  "Rackspace",
  "ScaleMatrix",
  "ServerExpress",
  "Terremark",
  "UNKNOWN",
  "VirtuStream",
  "VMware",
  "WindowsAzurePack",
] as const;

/** Values a "bool" option reads as true (any case), as the original's ConfigParser did. */
export const TRUE_WORDS: readonly string[] = ["true", "yes", "on", "1"];
/** Values a "bool" option reads as false (any case). */
export const FALSE_WORDS: readonly string[] = ["false", "no", "off", "0"];

/** Platform names accepted in `[platform]name`. */
export const PLATFORM_NAMES = ["ubuntu", "debian", "rhel", "centos", "fedora"] as const;

/** The agent.conf schema: section -> key -> spec, in file order. */
export const SCHEMA = {
  workers: {
    count: int(2, "The number of commands that can run at the same time.", { min: 1 }),
    long_runner_threads: int(
      1,
      "The number of long running jobs (mount_volume, configure_server, clean_image) that can run at the same time.",
      { min: 1 },
    ),
    shutdown_grace: float(
      30,
      "Seconds a graceful shutdown waits for running commands before it kills them.",
      { min: 0 },
    ),
  },
  connection: {
    type: choice("ws", ["ws"], "The connection type. Only 'ws' (websocket) is supported."),
    agentmanager_url: str(
      null,
      "The websocket URL of the agent manager, ws://host[:port]/path or wss://host[:port]/path.",
      { required: true },
    ),
    backoff: int(
      1000,
      "Milliseconds of the initial reconnect backoff; the first retry waits twice this.",
      { min: 1 },
    ),
    max_backoff: int(300000, "Milliseconds of the longest reconnect backoff.", { min: 1 }),
    heartbeat_frequency: int(
      30,
      "Seconds between websocket pings. A connection whose pong does not come back within two periods is dropped and reopened.",
      { min: 1 },
    ),
    handshake_timeout: float(
      30,
      "Seconds to wait for the manager's handshake reply before the attempt counts as failed.",
      { min: 0.1 },
    ),
    allow_unknown_certs: bool(
      false,
      "Accept any TLS certificate from the manager (insecure; for testing only).",
    ),
    ca_cert: path(
      null,
      "A PEM file of CA certificates used to verify the manager's TLS certificate.",
    ),
    check_hostname: bool(
      true,
      "Check that the manager's TLS certificate matches its host name. Set to False only for managers whose certificate names do not match.",
    ),
    max_message_size: int(
      16777216,
      "Largest incoming websocket frame in bytes; larger frames are refused.",
      { min: 1024 },
    ),
    source_file: str(null, "Unused (the original agent's file test harness).", { hidden: true }),
    dest_file: str(null, "Unused (the original agent's file test harness).", { hidden: true }),
  },
  logging: {
    configfile: path(
      null,
      "The logging.yaml file. Without one, INFO and above go to standard error.",
    ),
  },
  plugin: {
    configfile: path(
      null,
      "The plugin.conf file that lists the commands. Without one, the built-in command list is used.",
    ),
  },
  storage: {
    temppath: path("/tmp", "Directory for temporary files; given to scripts as DCM_TMP_DIR."),
    base_dir: path("/dcm", "The agent's base directory."),
    mountpoint: path("/mnt/dcmdata", "The default mount point for data volumes."),
    dbfile: path(null, "The SQLite request journal. Default: <base_dir>/secure/agentdb.sql."),
    script_dir: path(null, "Directory of the agent's helper scripts. Default: <base_dir>/bin."),
    db_timeout: int(
      14400,
      "Seconds a finished request is remembered in the journal (duplicates within this window are never run again).",
      { min: 1 },
    ),
    default_filesystem: str("ext3", "The file system used when a mount request does not name one."),
  },
  system: {
    user: str("dcm", "The system user the agent runs as."),
    sudo: path("/usr/bin/sudo", "The sudo program used when the agent is not root."),
  },
  intrusion_detection: {
    ossec: bool(false, "Enable OSSEC intrusion detection."),
    max_process_time: float(5.0, "Seconds between parses of the OSSEC alert file.", { min: 0 }),
    alert_threshold: int(10, "OSSEC alerts at or above this level are sent to the manager."),
    alert_file: path(
      "/var/ossec/logs/alerts/alerts.log",
      "The alert file followed: OSSEC alerts.log, OSSEC alerts.json or Wazuh alerts.json.",
    ),
    alert_format: choice(
      "ossec_log",
      ["ossec_log", "ossec_json", "wazuh_json"],
      "The format of alert_file: ossec_log, ossec_json or wazuh_json.",
    ),
    ossec_control: path(
      "/var/ossec/bin/ossec-control",
      "Started with 'start' when the agent starts, if it exists; never downloaded or installed.",
    ),
  },
  cloud: {
    type: choice("UNKNOWN", CLOUD_TYPES, "The cloud this server runs on (case-insensitive)."),
    metadata_url: str(null, "The cloud's metadata service URL."),
  },
  messaging: {
    retransmission_timeout: float(
      5.0,
      "Seconds between retransmissions of an unacknowledged reply.",
      { min: 0.01 },
    ),
    max_at_once: int(-1, "The largest number of requests in progress at once; -1 means no limit.", {
      min: -1,
    }),
  },
  platform: {
    script_locations: str("common-linux", "Script subdirectory used with the packaged scripts."),
    name: choice(null, PLATFORM_NAMES, "The Linux distribution (detected when unset)."),
    version: str(null, "The distribution version (detected when unset)."),
  },
  jobs: {
    retain_job_time: int(
      3600,
      "Seconds a finished long job stays queryable; 0 keeps it for ever.",
      { min: 0 },
    ),
    script_timeout: float(3600, "Seconds a script may run before it is killed; 0 means no limit.", {
      min: 0,
    }),
    max_output_bytes: int(
      1048576,
      "Bytes of a script's stdout and of its stderr kept in a reply; the rest is cut with a marker.",
      { min: 1024 },
    ),
  },
  extra: {
    location: str(
      "https://linux-stable-agent.enstratius.com/",
      "The repository of the agent extras package.",
    ),
    package_name: str(null, "An explicit extras package file name."),
    base_path: path("/opt/dcm-agent-extras", "Where the extras package is installed."),
  },
  configuration_management: {
    chef_client_version: str("11.16.4", "The chef-client version installed for configure_server."),
    run_timeout: float(
      3600,
      "Seconds a configure_server run (Puppet, Chef or Ansible) may take before its whole process tree is killed; 0 means no limit.",
      { min: 0 },
    ),
    puppet_package: str(
      "puppet-agent",
      "The package installed with the platform's package manager when configure_server finds no puppet program.",
    ),
    chef_config_dir: path(
      "/etc/chef",
      "Where configure_server writes Chef's client.rb (the previous one is kept as client.rb.orig).",
    ),
    chef_installer_url: str(
      null,
      "An http(s) URL of a Chef client installer (a .deb, .rpm or an install script run with -v chef_client_version), used when chef-client is missing. Needs chef_installer_sha256.",
    ),
    chef_installer_sha256: str(
      null,
      "The SHA-256 hex digest of the file at chef_installer_url; the agent checks it before running the installer.",
    ),
    chef_package: str(
      null,
      "A package of this platform that provides chef-client, installed when it is missing and no installer URL is set.",
    ),
  },
  test: {
    skip_handshake: bool(false, "Unused.", { hidden: true }),
  },
} as const;

type Schema = typeof SCHEMA;
type ValueOf<O> = O extends OptionSpec<infer T> ? T : never;

/** The typed, validated configuration the agent runs with. */
export type AgentConfig =
  & { -readonly [S in keyof Schema]: { -readonly [K in keyof Schema[S]]: ValueOf<Schema[S][K]> } }
  & {
    /** `[features]` entries, copied as strings into the handshake. */
    features: Record<string, string>;
    /** `[docker]` entries, read by the docker commands. */
    docker: Record<string, string>;
    /** The config files that were read, in order. */
    files: string[];
    /** Problems that do not stop the agent (unknown keys), each naming file and line. */
    warnings: string[];
  };

/** Section names of the schema, in file order. */
export type SectionName = keyof Schema;
