import assert from "node:assert/strict";
import { configCandidates, ConfigError, loadConfig } from "../../lib/config/agent_conf.ts";
import { defaultPluginConfText, parsePluginConf } from "../../lib/core/plugin_conf.ts";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";

// An agent.conf as the original dcm-agent-configure wrote it (comments, #key= lines).
const ORIGINAL_CONF = `[workers]
# The number of worker threads.
count=2
#long_runner_threads=

[connection]
type=ws
agentmanager_url=wss://dcm.example.com:16433/ws
#backoff=
heartbeat_frequency=30
allow_unknown_certs=False
ca_cert=/etc/ssl/certs/ca-certificates.crt

[logging]
configfile=logging.yaml

[plugin]
configfile=/dcm/etc/plugin.conf

[storage]
temppath=/tmp
base_dir=/dcm
mountpoint=/mnt/dcmdata
#dbfile=
script_dir=/dcm/bin
db_timeout=14400

[system]
user=dcm
sudo=/usr/bin/sudo

[cloud]
type=amazon
metadata_url=http://169.254.169.254/latest/meta-data/

[messaging]
retransmission_timeout=5.0
max_at_once=-1

[features]
hello=world
test=2
`;

function tempDir(): string {
  return Deno.makeTempDirSync({ prefix: "dcm-config-" });
}

Deno.test("config: an agent.conf written for the original agent loads unchanged", () => {
  const dir = tempDir();
  try {
    Deno.writeTextFileSync(`${dir}/agent.conf`, ORIGINAL_CONF);
    const c = loadConfig({ file: `${dir}/agent.conf`, skipSystemFile: true, env: () => undefined });
    assert.equal(c.connection.agentmanager_url, "wss://dcm.example.com:16433/ws");
    assert.equal(c.connection.backoff, 1000, "#backoff= keeps the default (ms)");
    assert.equal(c.connection.max_backoff, 300000);
    assert.equal(c.connection.heartbeat_frequency, 30);
    assert.equal(c.connection.allow_unknown_certs, false);
    assert.equal(c.workers.long_runner_threads, 1);
    assert.equal(c.cloud.type, "Amazon", "cloud names are case-insensitive and normalised");
    assert.equal(c.storage.dbfile, "/dcm/secure/agentdb.sql");
    assert.equal(c.storage.db_timeout, 14400);
    assert.equal(c.messaging.retransmission_timeout, 5);
    assert.equal(
      c.logging.configfile,
      `${dir}/logging.yaml`,
      "relative paths resolve against the file",
    );
    assert.deepEqual(c.features, { hello: "world", test: "2" });
    assert.deepEqual(c.warnings, [], "the original agent's own keys give no warning");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config: later files override earlier ones (system, DCM_AGENT_CONF, -c)", () => {
  const dir = tempDir();
  try {
    Deno.mkdirSync(`${dir}/a`);
    Deno.writeTextFileSync(
      `${dir}/env.conf`,
      "[connection]\nagentmanager_url=ws://env/x\nbackoff=50\n[logging]\nconfigfile=log.yaml\n",
    );
    Deno.writeTextFileSync(`${dir}/a/cli.conf`, "[connection]\nagentmanager_url=ws://cli/x\n");
    const env = (n: string) => (n === "DCM_AGENT_CONF" ? `${dir}/env.conf` : undefined);
    const c = loadConfig({ file: `${dir}/a/cli.conf`, skipSystemFile: true, env });
    assert.equal(c.connection.agentmanager_url, "ws://cli/x");
    assert.equal(c.connection.backoff, 50);
    assert.equal(c.logging.configfile, `${dir}/log.yaml`, "resolved against the file that set it");
    assert.deepEqual(c.files, [`${dir}/env.conf`, `${dir}/a/cli.conf`]);
    // A file named by $DCM_AGENT_CONF must exist, as one given with -c.
    assert.deepEqual(
      configCandidates({ skipSystemFile: true, env: () => `${dir}/missing.conf` }),
      [`${dir}/missing.conf`],
    );
    assert.throws(
      () => loadConfig({ skipSystemFile: true, env: () => `${dir}/missing.conf` }),
      (e: Error) =>
        e instanceof ConfigError &&
        /cannot read the file named by \$DCM_AGENT_CONF, .*missing\.conf: .*unset DCM_AGENT_CONF/
          .test(e.message),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config: errors name the file, section and key", () => {
  const dir = tempDir();
  try {
    const check = (text: string, re: RegExp) => {
      Deno.writeTextFileSync(`${dir}/agent.conf`, text);
      assert.throws(
        () => loadConfig({ file: `${dir}/agent.conf`, skipSystemFile: true, env: () => undefined }),
        (e: Error) => e instanceof ConfigError && re.test(e.message),
        text,
      );
    };
    check("[workers]\ncount=2\n", /\[connection\] agentmanager_url is required/);
    check(
      "[connection]\nagentmanager_url=http://x/\n",
      /agent\.conf:2: \[connection\] agentmanager_url 'http:\/\/x\/' is not a ws/,
    );
    check(
      "[connection]\nagentmanager_url=ws://x/\nbackoff=soon\n",
      /agent\.conf:3: \[connection\] backoff = 'soon' is not a whole number/,
    );
    check(
      "[connection]\nagentmanager_url=ws://x/\n[workers]\ncount=0\n",
      /\[workers\] count = '0' is below the minimum 1/,
    );
    check(
      "[connection]\nagentmanager_url=ws://x/\nallow_unknown_certs=maybe\n",
      /allow_unknown_certs = 'maybe' is not a boolean/,
    );
    check(
      "[connection]\nagentmanager_url=ws://x/\n[cloud]\ntype=Mars\n",
      /\[cloud\] type = 'Mars' is not one of/,
    );
    check("key=v\n", /agent\.conf:1: .*before any \[section\]/);
    check("[connection]\ngarbage line\n", /agent\.conf:2: .*expected 'key = value'/);
    assert.throws(
      () => loadConfig({ file: `${dir}/nope.conf`, skipSystemFile: true, env: () => undefined }),
      /cannot read the file given with -c, .*nope\.conf/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("plugin.conf: regex sections, first match wins, unloadable entries skipped", () => {
  const text = `[default]
[plugin:heartbeat]
type = python_module
module_name = dcm.agent.plugins.builtin.heartbeat

[plugin:get_job.*]
type = python_module
module_name = dcm.agent.plugins.builtin.get_job_description
immediate = True

[plugin:no_such_command]
type = python_module
module_name = someext.no_such_command

[plugin:[bad]
type = python_module
module_name = x
`;
  const table = parsePluginConf(text, { file: "plugin.conf", commands: BUILTIN_COMMANDS });
  assert.deepEqual(
    table.names(),
    ["heartbeat", "get_job.*"],
    "unknown modules are skipped, never fatal",
  );
  assert.equal(table.find("heartbeat")?.module.name, "heartbeat");
  assert.equal(table.find("get_job_description")?.execution, "immediate");
  assert.equal(table.find("get_job")?.module.name, "get_job_description");
  assert.equal(table.find("heartbeatx"), undefined, "section names are anchored at both ends");
  assert.equal(table.find("no_such_command"), undefined);
});

Deno.test("plugin.conf: the default file round-trips to the built-in list", () => {
  const table = parsePluginConf(defaultPluginConfText(BUILTIN_COMMANDS), {
    file: "default",
    commands: BUILTIN_COMMANDS,
  });
  assert.deepEqual(table.names(), BUILTIN_COMMANDS.map((c) => c.pluginSection ?? c.name));
  for (const c of BUILTIN_COMMANDS) assert.equal(table.find(c.name)?.execution, c.execution);
});

Deno.test("config: misspelled keys and sections warn with the closest known name, file and line", () => {
  const dir = tempDir();
  try {
    Deno.writeTextFileSync(
      `${dir}/agent.conf`,
      "[connection]\nagentmanager_url=ws://m/agentManager\nhearbeat_frequency=5\n" +
        "retransmission_timeout=3\n[workres]\ncount=2\n[features]\nanything=1\n",
    );
    const c = loadConfig({ file: `${dir}/agent.conf`, skipSystemFile: true, env: () => undefined });
    assert.deepEqual(c.warnings, [
      `${dir}/agent.conf:3: [connection] hearbeat_frequency is not a known key; did you mean 'heartbeat_frequency'? It is ignored.`,
      `${dir}/agent.conf:4: [connection] retransmission_timeout is not a known key; it belongs in [messaging] It is ignored.`,
      `${dir}/agent.conf:6: unknown section [workres]; did you mean [workers]? Its keys are ignored.`,
    ]);
    assert.equal(c.connection.heartbeat_frequency, 30, "the default stays");
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("config: with no configuration, the error lists every place looked at", () => {
  assert.throws(
    () => loadConfig({ env: () => undefined, skipSystemFile: true }),
    (e: Error) =>
      e instanceof ConfigError &&
      e.message.includes(
        "no config file was found; looked at $DCM_AGENT_CONF (not set), -c (not given)",
      ),
  );
});
