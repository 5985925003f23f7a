/**
 * `dcm-agent configure` in flag mode and -r mode: the tree, modes, files and
 * agent.conf keys it writes (parsed back with the agent's own loader), the
 * exit codes and messages of bad input, and that a failed run changes nothing.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfigText } from "../../lib/config/agent_conf.ts";
import { type OptionSpec, SCHEMA } from "../../lib/config/schema.ts";
import { defaultPluginConfText } from "../../lib/core/plugin_conf.ts";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";
import { configureMain, type ConfigureOptions, reconfigureMain } from "../../lib/configure/mod.ts";
import { detectCloud } from "../../lib/configure/detect_cloud.ts";
import { commentLines } from "../../lib/configure/writer.ts";
import { extrasPackageNames } from "../../lib/configure/extras.ts";
import { lookupUser } from "../../lib/configure/tree.ts";
import { REPO_ROOT } from "../../scripts/agent_process.ts";
import { DevManager } from "../../scripts/dev_manager.ts";
import { VERSION } from "../../lib/protocol/version.ts";
import { runProgram, runUntil } from "../helpers/run.ts";
import { pathExists } from "../../lib/os/mod.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";
const URL1 = "ws://127.0.0.1:8765/agentManager";

/** What one in-process configure run printed and returned. */
interface Run {
  code: number;
  out: string[];
  err: string[];
  detected: number;
}

/** Runs configure in-process with no real detection, no system CA lookup and a fixed agent program. */
async function configure(
  args: string[],
  options: ConfigureOptions & { reconfigure?: boolean } = {},
): Promise<Run> {
  const run: Run = { code: -1, out: [], err: [], detected: 0 };
  const opts: ConfigureOptions = {
    out: (l) => run.out.push(l),
    err: (l) => run.err.push(l),
    detectCloud: () => {
      run.detected++;
      return Promise.resolve("UNKNOWN");
    },
    caBundles: [],
    agentProgram: ["/usr/local/bin/dcm-agent"],
    ...options,
  };
  run.code = options.reconfigure
    ? await reconfigureMain(args, opts)
    : await configureMain(args, opts);
  return run;
}

/** A temp dir with a CA file; removed after `fn`. */
async function withDir(fn: (dir: string, ca: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-configure-" });
  try {
    const ca = join(dir, "ca.pem");
    await Deno.writeTextFile(ca, PEM);
    await fn(dir, ca);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** Every path under `dir` with its type and permission bits, e.g. "etc/agent.conf f 644". */
function tree(dir: string): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of Deno.readDirSync(join(dir, rel))) {
      const path = rel ? `${rel}/${e.name}` : e.name;
      const mode = (Deno.lstatSync(join(dir, path)).mode ?? 0) & 0o7777;
      out.push(`${path} ${e.isDirectory ? "d" : "f"} ${mode.toString(8)}`);
      if (e.isDirectory) walk(path);
    }
  };
  walk("");
  return out.sort();
}

function snapshot(dir: string): Map<string, string> {
  const files = new Map<string, string>();
  for (const line of tree(dir)) {
    const [path, kind] = line.split(" ");
    files.set(line, kind === "f" ? Deno.readTextFileSync(join(dir, path)) : "");
  }
  return files;
}

function baseArgs(base: string, ca: string): string[] {
  return ["-p", base, "-u", URL1, "-c", "amazon", "-U", "root", "-A", ca];
}

Deno.test("flag mode writes the original's tree with its modes and nothing else", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const run = await configure([...baseArgs(base, ca), "-t", join(base, "tmp")]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.deepEqual(tree(base), [
      "bin d 750",
      "bin/variables.sh f 550",
      "etc d 700",
      "etc/agent.conf f 644",
      "etc/logging.yaml f 644",
      "etc/plugin.conf f 644",
      "home d 750",
      "logs d 700",
      "secure d 700",
      "tmp d 1777",
    ]);
    assert.equal(((await Deno.stat(base)).mode ?? 0) & 0o7777, 0o755);
    assert.equal(
      await Deno.readTextFile(join(base, "bin/variables.sh")),
      `DCM_USER=root\nDCM_BASEDIR=${base}\n`,
    );
    assert.equal(
      await Deno.readTextFile(join(base, "etc/plugin.conf")),
      defaultPluginConfText(BUILTIN_COMMANDS),
    );
    // Quiet and scriptable: nothing on stdout or stderr.
    assert.deepEqual(run.out, []);
    assert.deepEqual(run.err, []);
  });
});

Deno.test("flag mode: agent.conf parses back to the given values and defaults", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const run = await configure([
      ...baseArgs(base, ca),
      "-m",
      "/mnt/data2",
      "-t",
      join(dir, "scratch"),
      "--chef-client-version",
      "12.0.0",
      "-d",
      "yes",
      "-T",
      "7",
      "--extra-package-location",
      "https://extras.example.com/",
      "--package-name",
      "extras.deb",
      "-C",
      "WS",
      // Accepted and ignored, as in the original.
      "-o",
    ]);
    assert.equal(run.code, 0, run.err.join("\n"));
    const file = join(base, "etc/agent.conf");
    const conf = parseConfigText(await Deno.readTextFile(file), file);
    assert.equal(conf.connection.agentmanager_url, URL1);
    assert.equal(conf.connection.type, "ws");
    assert.equal(conf.connection.ca_cert, ca);
    assert.equal(conf.connection.allow_unknown_certs, false);
    assert.equal(conf.cloud.type, "Amazon");
    assert.equal(conf.cloud.metadata_url, "http://169.254.169.254/latest/meta-data/");
    assert.equal(conf.storage.base_dir, base);
    assert.equal(conf.storage.mountpoint, "/mnt/data2");
    assert.equal(conf.storage.temppath, join(dir, "scratch"));
    assert.equal(conf.storage.script_dir, join(base, "bin"));
    assert.equal(conf.storage.dbfile, join(base, "secure/agentdb.sql"));
    assert.equal(conf.logging.configfile, join(base, "etc/logging.yaml"));
    assert.equal(conf.plugin.configfile, join(base, "etc/plugin.conf"));
    assert.equal(conf.system.user, "root");
    assert.equal(conf.intrusion_detection.ossec, true);
    assert.equal(conf.intrusion_detection.alert_threshold, 7);
    assert.equal(conf.configuration_management.chef_client_version, "12.0.0");
    assert.equal(conf.extra.location, "https://extras.example.com/");
    assert.equal(conf.extra.package_name, "extras.deb");
    // Untouched keys carry the schema defaults.
    assert.equal(conf.workers.count, SCHEMA.workers.count.default);
    assert.equal(
      conf.messaging.retransmission_timeout,
      SCHEMA.messaging.retransmission_timeout.default,
    );
    // The temp path outside the base was created world-writable and sticky.
    assert.equal(((await Deno.stat(join(dir, "scratch"))).mode ?? 0) & 0o7777, 0o1777);
  });
});

Deno.test("agent.conf layout follows SCHEMA: every visible key once, commented, #key= when unset", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    assert.equal((await configure(baseArgs(base, ca))).code, 0);
    const text = await Deno.readTextFile(join(base, "etc/agent.conf"));
    const lines = text.split("\n");
    let section = "";
    const seen: string[] = [];
    const unset: string[] = [];
    for (const [i, line] of lines.entries()) {
      const header = /^\[(.+)\]$/.exec(line);
      if (header) section = header[1];
      const key = /^#?([a-z0-9_]+)=/.exec(line);
      if (!key) continue;
      seen.push(`${section}.${key[1]}`);
      const spec = (SCHEMA as Record<string, Record<string, OptionSpec<unknown>>>)[section][key[1]];
      // The help text sits right above the key, as `# ` lines of at most 79 columns.
      const help = commentLines(spec.help);
      assert.deepEqual(lines.slice(i - help.length, i), help, `${section}.${key[1]} help`);
      assert.ok(help.every((l) => l.length <= 79));
      if (line.startsWith("#")) unset.push(`${section}.${key[1]}`);
    }
    const expected = Object.entries(SCHEMA).flatMap(([s, keys]) =>
      Object.entries(keys as Record<string, OptionSpec<unknown>>).filter(([, spec]) => !spec.hidden)
        .map(([k]) => `${s}.${k}`)
    );
    assert.deepEqual(seen, expected);
    // Keys without a default or a given value; everything else is written out.
    assert.deepEqual(unset, [
      "storage.dbfile",
      "platform.name",
      "platform.version",
      "extra.package_name",
      "configuration_management.chef_installer_url",
      "configuration_management.chef_installer_sha256",
      "configuration_management.chef_package",
    ]);
    assert.doesNotMatch(text, /skip_handshake|source_file/);
  });
});

Deno.test("logging.yaml gets -l, -L and the user; a bad -L exits 2 and changes nothing", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const logfile = join(dir, "var/log/dcm/agent.log");
    let run = await configure([...baseArgs(base, ca), "-l", logfile, "-L", "debug"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    let yaml = await Deno.readTextFile(join(base, "etc/logging.yaml"));
    assert.doesNotMatch(yaml, /@[A-Z_]+@/);
    assert.match(yaml, new RegExp(`filename: ${logfile}$`, "m"));
    assert.match(yaml, /level: DEBUG$/m);
    assert.match(yaml, /owner: root$/m);
    assert.ok((await Deno.stat(join(dir, "var/log/dcm"))).isDirectory);
    // The header describes the file; it does not get the placeholders' values.
    assert.match(
      yaml.split("\n---\n")[0],
      /^# Written by `dcm-agent configure`: the log file, level and owner below come\n# from its -l, -L and -U options\.$/m,
    );

    // As the README promises: a bad value is exit 2, and nothing is written.
    run = await configure([...baseArgs(base, ca), "-L", "verbose"]);
    assert.equal(run.code, 2);
    assert.deepEqual(run.err, [
      "dcm-agent configure: -L/--loglevel: 'verbose' is not a log level; use ERROR, WARN, INFO or DEBUG",
    ]);
    yaml = await Deno.readTextFile(join(base, "etc/logging.yaml"));
    assert.match(yaml, /level: DEBUG$/m);
  });
});

Deno.test("re-running with the same options is idempotent", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    assert.equal((await configure(baseArgs(base, ca))).code, 0);
    const first = snapshot(base);
    assert.equal((await configure(baseArgs(base, ca))).code, 0);
    assert.deepEqual(snapshot(base), first);
  });
});

Deno.test("-r keeps every value not overridden, extra sections, logging.yaml and plugin.conf", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    assert.equal((await configure([...baseArgs(base, ca), "-c", "VMware"])).code, 0);
    const confFile = join(base, "etc/agent.conf");
    let text = await Deno.readTextFile(confFile);
    text = text.replace(/^count=2$/m, "count=5").replace(
      /^#dbfile=$/m,
      "dbfile=../secure/journal.sql",
    );
    await Deno.writeTextFile(
      confFile,
      `${text}\n[features]\nfancy=yes\n\n[docker]\nbase_url=unix:///run/docker.sock\n`,
    );
    await Deno.writeTextFile(join(base, "etc/logging.yaml"), "# operator's logging\n");
    await Deno.writeTextFile(join(base, "etc/plugin.conf"), "# operator's plugins\n");

    const URL2 = "wss://manager.example.com:16433/agentManager";
    let run = await configure(["-r", confFile, "-u", URL2, "-L", "DEBUG"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.match(run.err.join("\n"), /logging.yaml is kept because of -r; add -R/);
    assert.equal(run.detected, 0, "a configured cloud is not detected again");
    const conf = parseConfigText(await Deno.readTextFile(confFile), confFile);
    assert.equal(conf.connection.agentmanager_url, URL2);
    assert.equal(conf.workers.count, 5);
    assert.equal(conf.cloud.type, "VMware");
    assert.equal(conf.connection.ca_cert, ca);
    assert.equal(conf.system.user, "root");
    // A relative path read with -r is made absolute against the file's directory.
    assert.equal(conf.storage.dbfile, join(base, "secure/journal.sql"));
    assert.deepEqual(conf.features, { fancy: "yes" });
    assert.deepEqual(conf.docker, { base_url: "unix:///run/docker.sock" });
    assert.equal(await Deno.readTextFile(join(base, "etc/logging.yaml")), "# operator's logging\n");
    assert.equal(await Deno.readTextFile(join(base, "etc/plugin.conf")), "# operator's plugins\n");

    run = await configure(["-r", confFile, "-R"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.match(await Deno.readTextFile(join(base, "etc/logging.yaml")), /^version: 1$/m);
    assert.equal(
      await Deno.readTextFile(join(base, "etc/plugin.conf")),
      defaultPluginConfText(BUILTIN_COMMANDS),
    );
  });
});

Deno.test("-r with -p moves the configuration's paths to the new base", async () => {
  await withDir(async (dir, ca) => {
    const oldBase = join(dir, "old");
    const newBase = join(dir, "new");
    assert.equal((await configure(baseArgs(oldBase, ca))).code, 0);
    const run = await configure(["-r", join(oldBase, "etc/agent.conf"), "-p", newBase]);
    assert.equal(run.code, 0, run.err.join("\n"));
    const file = join(newBase, "etc/agent.conf");
    const conf = parseConfigText(await Deno.readTextFile(file), file);
    assert.equal(conf.storage.base_dir, newBase);
    assert.equal(conf.logging.configfile, join(newBase, "etc/logging.yaml"));
    assert.equal(conf.plugin.configfile, join(newBase, "etc/plugin.conf"));
    assert.equal(conf.storage.script_dir, join(newBase, "bin"));
    assert.equal(conf.connection.agentmanager_url, URL1);
  });
});

Deno.test("the cloud decides metadata_url; switching clouds drops another cloud's URL", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const file = join(base, "etc/agent.conf");
    const cases: [string, string | null][] = [
      ["OpenStack", "http://169.254.169.254/openstack/2012-08-10/meta_data.json"],
      ["google", "http://metadata.google.internal/computeMetadata/v1"],
      ["DIGITALOCEAN", "http://169.254.169.254/metadata/v1"],
      ["CloudStack3", null],
      ["VMware", null],
    ];
    for (const [cloud, url] of cases) {
      const run = await configure([...baseArgs(base, ca), "-c", cloud]);
      assert.equal(run.code, 0, run.err.join("\n"));
      assert.equal(
        parseConfigText(await Deno.readTextFile(file), file).cloud.metadata_url,
        url,
        cloud,
      );
    }
    // A custom URL for a cloud without a default is kept across -r.
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(file)).replace("#metadata_url=", "metadata_url=http://md.local/"),
    );
    assert.equal((await configure(["-r", file])).code, 0);
    assert.equal(
      parseConfigText(await Deno.readTextFile(file), file).cloud.metadata_url,
      "http://md.local/",
    );
  });
});

Deno.test("an unknown cloud is detected and printed; -I and -c skip detection", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const args = ["-p", base, "-u", URL1, "-U", "root", "-A", ca];
    let run = await configure(args, { detectCloud: () => Promise.resolve("Google") });
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.deepEqual(run.err, ["dcm-agent configure: detected cloud: Google"]);
    const file = join(base, "etc/agent.conf");
    assert.equal(parseConfigText(await Deno.readTextFile(file), file).cloud.type, "Google");

    run = await configure([...args, "-I"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.equal(run.detected, 0);
    assert.equal(parseConfigText(await Deno.readTextFile(file), file).cloud.type, "UNKNOWN");
    run = await configure([...args, "-c", "Azure"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.equal(run.detected, 0);
    assert.equal(parseConfigText(await Deno.readTextFile(file), file).cloud.type, "Azure");
  });
});

Deno.test("CA enforcement: system bundle, -A, -Z, or exit 2 naming -A and -Z", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const file = join(base, "etc/agent.conf");
    const args = [
      "-p",
      base,
      "-u",
      "wss://dcm.example.com/agentManager",
      "-c",
      "Other",
      "-U",
      "root",
    ];
    let run = await configure(args);
    assert.equal(run.code, 2);
    assert.match(
      run.err[0],
      /no CA bundle found .*-A\/--cacert-file PATH.*-Z\/--allow-unknown-certs/,
    );
    assert.throws(() => Deno.statSync(base), Deno.errors.NotFound);

    run = await configure(args, { caBundles: [join(dir, "missing.crt"), ca] });
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.equal(parseConfigText(await Deno.readTextFile(file), file).connection.ca_cert, ca);

    run = await configure([...args, "-A", join(dir, "nope.pem")]);
    assert.equal(run.code, 2);
    assert.match(run.err[0], /-A\/--cacert-file: .*nope.pem does not exist/);

    await Deno.writeTextFile(join(dir, "empty.pem"), "not a certificate\n");
    run = await configure([...args, "-A", join(dir, "empty.pem")]);
    assert.equal(run.code, 2);
    assert.match(run.err[0], /contains no PEM certificate/);

    run = await configure([...args, "-Z"]);
    assert.equal(run.code, 0, run.err.join("\n"));
    const conf = parseConfigText(await Deno.readTextFile(file), file);
    assert.equal(conf.connection.allow_unknown_certs, true);

    // A ws:// manager is reached without TLS: no CA is needed.
    run = await configure(["-p", join(dir, "plain"), "-u", URL1, "-c", "Other", "-U", "root"]);
    assert.equal(run.code, 0, run.err.join("\n"));
  });
});

Deno.test("bad usage and invalid values exit 2, name the option, and change nothing", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    assert.equal((await configure(baseArgs(base, ca))).code, 0);
    const before = snapshot(base);
    const cases: [string[], RegExp][] = [
      [
        ["-u", "http://dcm.example.com/agentManager"],
        /-u\/--url: .*scheme 'http' is not ws or wss/,
      ],
      [
        ["-u", "wss://dcm.example.com:port/agentManager"],
        /-u\/--url: .*the port 'port' is not a number/,
      ],
      [["-u", "ws://dcm.example.com"], /-u\/--url: .*it has no path; .* such as \/agentManager/],
      [["-u", "wss://dcm.example.com:16433/"], /-u\/--url: .*it has no path/],
      [["-c", "Atlantis"], /-c\/--cloud: 'Atlantis' is not a known cloud; use one of Amazon, /],
      [["-C", "carrier-pigeon"], /-C\/--connection-type: .* use ws/],
      [["-d", "maybe"], /-d\/--intrusion-detection-ossec: .*use -d yes or -d no/],
      [["-T", "ten"], /-T\/--ids-alert-threshold: 'ten' is not a whole number/],
      [["--bogus"], /unknown option '--bogus'; see 'dcm-agent configure --help'/],
      [["-u"], /option -u, --url needs a value/],
      [["extra-word"], /unexpected argument 'extra-word'/],
      [["-p", "/"], /-p\/--base-path: '\/' cannot be/],
      [["-U", "bad user"], /-U\/--user: 'bad user' is not a valid user name/],
      // YAML would cut the path at ' #' (a comment) or refuse ': ' in a plain value.
      [
        ["-l", join(dir, "logs #old/agent.log")],
        /-l\/--logfile: .* cannot be written into logging.yaml \(it would be read back as '.*\/logs'\)/,
      ],
      [
        ["-l", join(dir, "logs: old/agent.log")],
        /-l\/--logfile: .* cannot be written into logging.yaml/,
      ],
    ];
    for (const [extra, message] of cases) {
      const run = await configure([...baseArgs(base, ca), ...extra]);
      assert.equal(run.code, 2, `${extra.join(" ")}: ${run.err.join("\n")}`);
      assert.match(run.err.join("\n"), message, extra.join(" "));
      assert.deepEqual(snapshot(base), before, extra.join(" "));
    }
    // No URL at all: the fix is named.
    const run = await configure(["-p", join(dir, "other"), "-c", "Other", "-Z"]);
    assert.equal(run.code, 2);
    assert.match(run.err[0], /no agent manager URL: give one with -u\/--url/);
    // A value the agent would refuse, read with -r, is caught before writing.
    const confFile = join(base, "etc/agent.conf");
    await Deno.writeTextFile(
      confFile,
      (await Deno.readTextFile(confFile)).replace(/^count=2$/m, "count=many"),
    );
    const broken = snapshot(base);
    const bad = await configure(["-r", confFile]);
    assert.equal(bad.code, 2);
    assert.match(
      bad.err[0],
      /\[workers\] count = 'many' is not a whole number.*nothing was changed/,
    );
    assert.deepEqual(snapshot(base), broken);
  });
});

Deno.test("a failure while writing leaves the previous files and no temp files", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    assert.equal((await configure(baseArgs(base, ca))).code, 0);
    const confFile = join(base, "etc/agent.conf");
    // plugin.conf's path is a directory: staging fails after agent.conf was staged.
    await Deno.mkdir(join(dir, "plugin-dir"));
    const text = (await Deno.readTextFile(confFile)).replace(
      /^configfile=.*plugin.conf$/m,
      `configfile=${join(dir, "plugin-dir")}`,
    );
    await Deno.writeTextFile(confFile, text);
    const before = snapshot(base);
    const run = await configure(["-r", confFile, "-u", "ws://127.0.0.1:1/other"]);
    assert.equal(run.code, 1);
    assert.match(
      run.err[0],
      /plugin-dir exists and is not a regular file.*the previous files are unchanged/,
    );
    assert.deepEqual(snapshot(base), before);
  });
});

Deno.test("-i without a terminal is refused with exit 2", async () => {
  const run = await configure(["-i", "-p", "/nonexistent/dcm"]);
  assert.equal(run.code, 2);
  assert.match(run.err[0], /-i\/--interactive needs a terminal on standard input/);
});

/** A scripted terminal: answers in order (null = Ctrl-D), and everything asked, said and printed. */
function scripted(answers: (string | null)[]) {
  const events: string[] = [];
  const asked: string[] = [];
  const said: string[] = [];
  const options: ConfigureOptions = {
    out: (l) => events.push(l),
    prompt: {
      ask: (q) => {
        asked.push(q);
        events.push(q);
        return Promise.resolve(answers.length ? answers.shift()! : null);
      },
      say: (l) => said.push(l),
    },
  };
  return { events, asked, said, options };
}

Deno.test("interactive answers are checked and asked again (scripted)", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const root = join(dir, "root");
    const io = scripted([
      "atlantis",
      "99",
      "openstack",
      "",
      "http://x",
      "wss://dcm.example.com/agentManager",
      "maybe",
      "n",
      "/no/such.pem",
      ca,
      "",
    ]);
    const run = await configure(["-i", "-p", base, "-U", "root", "--root", root], {
      detectCloud: () => Promise.resolve("Amazon"),
      ...io.options,
    });
    assert.equal(run.code, 0, run.err.join("\n"));
    // No vendor URL is offered; Enter at the last question keeps "not installed".
    assert.deepEqual(io.asked, [
      "Cloud (number or name) [Amazon]: ",
      "Cloud (number or name) [Amazon]: ",
      "Cloud (number or name) [Amazon]: ",
      "Agent manager URL: ",
      "Agent manager URL: ",
      "Agent manager URL: ",
      "Disable certificate checking? This is insecure (y/N): ",
      "Disable certificate checking? This is insecure (y/N): ",
      "CA certificate file: ",
      "CA certificate file: ",
      "Start the agent on boot? (y/N): ",
    ]);
    assert.ok(
      io.said.includes(
        "'atlantis' is not on the list; answer with a number from 1 to 25 or a cloud name.",
      ),
    );
    assert.ok(
      io.said.includes(
        "'99' is not on the list; answer with a number from 1 to 25 or a cloud name.",
      ),
    );
    assert.ok(io.said.some((l) => l.startsWith("The agent needs its manager's URL")));
    assert.ok(io.said.some((l) => l.startsWith("'http://x' is not a manager URL")));
    assert.ok(io.said.includes("Please answer y or n."));
    assert.ok(io.said.some((l) => l.startsWith("/no/such.pem does not exist")));
    const file = join(base, "etc/agent.conf");
    const conf = parseConfigText(await Deno.readTextFile(file), file);
    assert.equal(conf.cloud.type, "OpenStack");
    assert.equal(conf.connection.agentmanager_url, "wss://dcm.example.com/agentManager");
    assert.equal(conf.connection.ca_cert, ca);
    // The summary comes before the last question, and the files are written after it.
    const summary = io.events.indexOf("This will write:");
    const question = io.events.indexOf("Start the agent on boot? (y/N): ");
    const wrote = io.events.indexOf(`Wrote ${file}.`);
    assert.ok(summary >= 0 && summary < question && question < wrote, io.events.join("\n"));
    assert.ok(
      io.events.includes(
        `  ${file}: cloud OpenStack, manager wss://dcm.example.com/agentManager (certificates checked with ${ca})`,
      ),
      io.events.join("\n"),
    );
    assert.equal(io.events[0], "detected cloud: Amazon");
    await assert.rejects(Deno.stat(root), Deno.errors.NotFound, "no boot files");
  });
});

Deno.test("-i: a ws:// URL skips the certificate questions; the boot default is what is installed", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const root = join(dir, "root");
    const file = join(base, "etc/agent.conf");
    const unit = join(root, "etc/init.d/dcm-agent");
    let run = await configure([...baseArgs(base, ca), "-B", "--root", root], {
      initSystem: "sysv",
    });
    assert.equal(run.code, 0, run.err.join("\n"));
    Deno.removeSync(unit);

    // Not installed: Enter means no.
    let io = scripted(["", "ws://127.0.0.1:9/agentManager", ""]);
    run = await configure(["-i", "-r", file, "--root", root], {
      initSystem: "sysv",
      ...io.options,
    });
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.deepEqual(io.asked, [
      "Cloud (number or name) [Amazon]: ",
      `Agent manager URL [${URL1}]: `,
      "Start the agent on boot? (y/N): ",
    ]);
    assert.equal(pathExists(unit), false);

    // Installed: Enter keeps it (the boot files are rewritten for the new configuration).
    await configure([...baseArgs(base, ca), "-B", "--root", root], { initSystem: "sysv" });
    io = scripted(["", "", ""]);
    run = await configure(["-i", "-r", file, "--root", root], {
      initSystem: "sysv",
      ...io.options,
    });
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.equal(io.asked.at(-1), "Start the agent on boot? (Y/n): ");
    assert.ok(
      io.events.some((l) => l.startsWith("The agent starts at boot.")),
      io.events.join("\n"),
    );

    // Ctrl-D at the last question: nothing was written yet, so nothing changes.
    const before = snapshot(base);
    io = scripted(["", "ws://127.0.0.1:10/agentManager"]);
    run = await configure(["-i", "-r", file, "--root", root], io.options);
    assert.equal(run.code, 1);
    assert.match(run.err[0], /input ended before every question was answered; nothing was changed/);
    assert.deepEqual(snapshot(base), before);
  });
});

Deno.test("reconfigure prefixes its warnings with its own name; -r warns about misspelled keys", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    assert.equal((await configure(baseArgs(base, ca))).code, 0);
    const file = join(base, "etc/agent.conf");
    await Deno.writeTextFile(
      file,
      (await Deno.readTextFile(file)).replace(
        "[connection]\n",
        "[connection]\nhearbeat_frequency=5\n",
      ),
    );
    const line = (await Deno.readTextFile(file)).split("\n").indexOf("hearbeat_frequency=5") + 1;
    const run = await configure(["-p", base, "-L", "DEBUG"], { reconfigure: true });
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.deepEqual(run.err, [
      `dcm-agent reconfigure: warning: ${file}:${line}: [connection] hearbeat_frequency is not a known key; did you mean 'heartbeat_frequency'? It is ignored.`,
      `dcm-agent reconfigure: warning: -l/-L: ${base}/etc/logging.yaml is kept because of -r; add -R to rewrite it with the new log settings`,
    ]);
  });
});

Deno.test("reconfigure finds the installed agent.conf from -p or the boot unit", async () => {
  await withDir(async (dir, ca) => {
    const base = join(dir, "dcm");
    const root = join(dir, "root");
    let run = await configure([...baseArgs(base, ca), "-B", "--root", root], {
      initSystem: "systemd",
    });
    assert.equal(run.code, 0, run.err.join("\n"));
    const file = join(base, "etc/agent.conf");
    run = await configure(["--root", root, "-u", "wss://b.example.com/agentManager"], {
      reconfigure: true,
    });
    assert.equal(run.code, 0, run.err.join("\n"));
    assert.equal(
      parseConfigText(await Deno.readTextFile(file), file).connection.agentmanager_url,
      "wss://b.example.com/agentManager",
    );
    run = await configure(["-p", base, "-c", "Joyent"], { reconfigure: true });
    assert.equal(run.code, 0, run.err.join("\n"));
    const conf = parseConfigText(await Deno.readTextFile(file), file);
    assert.equal(conf.cloud.type, "Joyent");
    assert.equal(conf.connection.agentmanager_url, "wss://b.example.com/agentManager");
    run = await configure(["-r", file], { reconfigure: true });
    assert.equal(run.code, 2);
    assert.match(run.err[0], /use 'dcm-agent configure -r FILE'/);
  });
});

Deno.test("detectCloud follows the original's order and needs an instance id", async () => {
  const serve = (
    answers: Record<string, string>,
    headers: Record<string, string> = {},
  ): typeof fetch =>
    ((input: string | URL | Request, init?: RequestInit) => {
      const url = String(input instanceof Request ? input.url : input);
      const sent = new Headers(init?.headers);
      const ok = Object.hasOwn(answers, url) &&
        Object.entries(headers).every(([k, v]) => !url.includes("google") || sent.get(k) === v);
      return Promise.resolve(new Response(ok ? answers[url] : "no", { status: ok ? 200 : 404 }));
    }) as typeof fetch;
  const root = await Deno.makeTempDir();
  try {
    const both = serve({
      "http://169.254.169.254/openstack/2012-08-10/meta_data.json": '{"uuid": "u-1"}',
      "http://169.254.169.254/latest/meta-data/instance-id": "i-1",
    });
    assert.equal(await detectCloud({ fetch: both, root }), "OpenStack");
    const amazon = serve({ "http://169.254.169.254/latest/meta-data/instance-id": "i-1" });
    assert.equal(await detectCloud({ fetch: amazon, root }), "Amazon");
    const google = serve({
      "http://metadata.google.internal/computeMetadata/v1/instance/hostname":
        "vm1.c.project.internal",
      "http://metadata.google.internal/computeMetadata/v1/instance/id": "123",
    }, { "Metadata-Flavor": "Google" });
    assert.equal(await detectCloud({ fetch: google, root }), "Google");
    const digitalocean = serve({ "http://169.254.169.254/metadata/v1/id": "42" });
    assert.equal(await detectCloud({ fetch: digitalocean, root }), "DigitalOcean");
    const cloudstack = serve({ "http://md.example/latest/instance-id": "cs-1" });
    assert.equal(
      await detectCloud({ fetch: cloudstack, root, metadataUrl: "http://md.example" }),
      "CloudStack",
    );
    const nothing = serve({});
    assert.equal(await detectCloud({ fetch: nothing, root }), "UNKNOWN");
    await Deno.mkdir(join(root, "var/lib/waagent"), { recursive: true });
    await Deno.writeTextFile(join(root, "var/lib/waagent/ovf-env.xml"), "<xml/>");
    assert.equal(await detectCloud({ fetch: nothing, root }), "Azure");
    // A metadata service that never answers costs one timeout, not one per cloud.
    const hang = (() => new Promise<Response>(() => {})) as unknown as typeof fetch;
    const started = performance.now();
    assert.equal(await detectCloud({ fetch: hang, root, timeoutMs: 200 }), "Azure");
    assert.ok(performance.now() - started < 2000);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});

Deno.test("the CLI: configure --help, exit codes, and reconfigure wiring in main.ts", async () => {
  const run = (...args: string[]) =>
    runProgram(Deno.execPath(), ["run", "-A", join(REPO_ROOT, "main.ts"), ...args]);
  const help = await run("configure", "--help");
  assert.equal(help.code, 0);
  for (
    const option of [
      "-c, --cloud",
      "-u, --url",
      "-p, --base-path",
      "-B, --on-boot",
      "-r, --reload-conf",
      "-A, --cacert-file",
    ]
  ) {
    assert.ok(help.stdout.includes(option), option);
  }
  const bad = await run("configure", "--nope");
  assert.equal(bad.code, 2);
  assert.equal(bad.stdout, "");
  assert.match(bad.stderr, /unknown option '--nope'/);
  const reconfigure = await run("reconfigure", "-p", "/nonexistent-dcm-base");
  assert.equal(reconfigure.code, 2);
  assert.match(reconfigure.stderr, /^dcm-agent reconfigure: no installed agent.conf found/);
  const interactive = await run("configure", "-i");
  assert.equal(interactive.code, 2);
  assert.match(interactive.stderr, /needs a terminal/);
});

Deno.test("the written agent.conf starts the agent, which handshakes with the manager", async () => {
  await withDir(async (dir) => {
    await using manager = await DevManager.start();
    const base = join(dir, "dcm");
    const run = await configure([
      "-p",
      base,
      "-u",
      manager.url,
      "-c",
      "Other",
      "-U",
      "root",
      "-Z",
      "-t",
      join(base, "tmp"),
    ]);
    assert.equal(run.code, 0, run.err.join("\n"));
    const doc = await runUntil(
      Deno.execPath(),
      ["run", "-A", join(REPO_ROOT, "main.ts"), "run", "-c", join(base, "etc/agent.conf")],
      () => manager.waitForHandshake({ timeoutMs: 30_000 }),
      { cwd: dir },
    );
    assert.equal(typeof doc, "object");
    // The agent logged where the written logging.yaml said.
    assert.ok((await Deno.stat(join(base, "logs/agent.log"))).isFile);
  });
});

Deno.test("an existing shared temp path keeps its mode; one inside the base is made 1777", async () => {
  await withDir(async (dir, ca) => {
    const shared = join(dir, "shared-tmp");
    await Deno.mkdir(shared);
    await Deno.chmod(shared, 0o755);
    const base = join(dir, "dcm");
    assert.equal((await configure([...baseArgs(base, ca), "-t", shared])).code, 0);
    assert.equal(((await Deno.stat(shared)).mode ?? 0) & 0o7777, 0o755);
    await Deno.mkdir(join(base, "tmp"));
    await Deno.chmod(join(base, "tmp"), 0o700);
    assert.equal((await configure([...baseArgs(base, ca), "-t", join(base, "tmp")])).code, 0);
    assert.equal(((await Deno.stat(join(base, "tmp"))).mode ?? 0) & 0o7777, 0o1777);
  });
});

Deno.test({
  name: "the tree is given to an existing system user, other files in the base are not",
  ignore: Deno.uid() !== 0 || lookupUser("nobody") === undefined,
  fn: async () => {
    await withDir(async (dir, ca) => {
      const base = join(dir, "dcm");
      await Deno.mkdir(base);
      await Deno.writeTextFile(join(base, "unrelated"), "x");
      const run = await configure([...baseArgs(base, ca), "-U", "nobody"]);
      assert.equal(run.code, 0, run.err.join("\n"));
      const nobody = lookupUser("nobody")!;
      for (
        const path of [
          "",
          "etc",
          "etc/agent.conf",
          "etc/logging.yaml",
          "bin/variables.sh",
          "secure",
          "logs",
          "home",
        ]
      ) {
        assert.equal((await Deno.stat(join(base, path))).uid, nobody.uid, path);
      }
      assert.equal((await Deno.stat(join(base, "unrelated"))).uid, 0);
      assert.match(await Deno.readTextFile(join(base, "etc/logging.yaml")), /owner: nobody$/m);
    });
  },
});

Deno.test("a missing system user is a warning naming the fix", async () => {
  await withDir(async (dir, ca) => {
    const run = await configure([...baseArgs(join(dir, "dcm"), ca), "-U", "no-such-user-dcm"]);
    assert.equal(run.code, 0);
    assert.match(
      run.err.join("\n"),
      /warning: system user 'no-such-user-dcm' does not exist.*useradd --system/,
    );
  });
});

Deno.test("extras package names follow the original's order", () => {
  assert.deepEqual(extrasPackageNames({ name: "ubuntu", version: "14.04" }, "x86_64"), [
    `dcm-agent-extras-ubuntu-14.04-amd64-${VERSION}.deb`,
    `dcm-agent-extras-ubuntu-14-amd64-${VERSION}.deb`,
    "dcm-agent-extras-ubuntu-14.04-amd64.deb",
    "dcm-agent-extras-ubuntu-14-amd64.deb",
  ]);
  assert.deepEqual(extrasPackageNames({ name: "centos", version: "7" }, "x86_64"), [
    `dcm-agent-extras-centos-7-x86_64-${VERSION}.rpm`,
    "dcm-agent-extras-centos-7-x86_64.rpm",
  ]);
  assert.equal(
    extrasPackageNames({ name: "debian", version: "8.2" }, "i686")[2],
    "dcm-agent-extras-debian-8.2-i386.deb",
  );
});
