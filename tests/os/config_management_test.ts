/**
 * The configuration-management adapter on its own: argument checks, secret
 * masking, the time limit, the output cap with the full output on disk, and a
 * missing Chef client. Chef runs use a stand-in `chef-client` (no Chef client
 * can be installed on these machines: none in Debian 12, and only npm and
 * Debian's archive are reachable).
 */
import assert from "node:assert/strict";
import {
  type ConfigSettings,
  maskSecrets,
  runConfigurationManagement,
} from "../../lib/os/config_management/mod.ts";
import {
  checkCertname,
  parsePuppetServer,
  puppetConf,
} from "../../lib/os/config_management/puppet.ts";
import { installCommand } from "../../lib/os/config_management/workspace.ts";
import { clientRb, rubyString } from "../../lib/os/config_management/chef.ts";
import { checkPlaybook, isGitEndpoint } from "../../lib/os/config_management/ansible.ts";
import type { ConfigRequest } from "../../lib/os/config_management/types.ts";

Deno.test("Puppet server endpoints: host, host:port, URL, IPv6; junk is refused", () => {
  assert.deepEqual(parsePuppetServer("puppet.example.com"), {
    host: "puppet.example.com",
    port: null,
  });
  assert.deepEqual(parsePuppetServer("10.1.2.3:8141"), { host: "10.1.2.3", port: "8141" });
  assert.deepEqual(parsePuppetServer("https://puppet:8140/x"), { host: "puppet", port: "8140" });
  assert.deepEqual(parsePuppetServer("[::1]:8140"), { host: "::1", port: "8140" });
  assert.throws(() => parsePuppetServer("a b"), /is not a Puppet server/);
  assert.throws(() => parsePuppetServer(""), /is not a Puppet server|no valid host/);
  assert.equal(checkCertname("node-1.example"), "node-1.example");
  assert.throws(() => checkCertname("../etc/passwd"), /not a valid Puppet certificate name/);
  assert.throws(() => checkCertname("Upper"), /not a valid Puppet certificate name/);
  assert.throws(() => checkCertname(null), /not a valid Puppet certificate name/);
  const conf = puppetConf("/w", "node", { host: "10.0.0.1", port: "8141" });
  assert.match(conf, /^\[agent\]\ncertname = node\nserver = 10\.0\.0\.1\nserverport = 8141$/m);
  assert.match(conf, /^ssldir = \/w\/ssl$/m);
  assert.deepEqual(installCommand("debian", "puppet-agent"), [
    "apt-get",
    "install",
    "-y",
    "-q",
    "--no-install-recommends",
    "puppet-agent",
  ]);
  assert.throws(() => installCommand("plan9", "puppet-agent"), /cannot install puppet-agent/);
});

Deno.test("client.rb quotes values for Ruby and refuses line breaks", () => {
  assert.equal(rubyString("it's \\ fine", "x"), "'it\\'s \\\\ fine'");
  assert.throws(() => rubyString("a\nb", "authId"), /authId contains a line break/);
  const request: ConfigRequest = {
    tool: "chef",
    endpoint: "https://chef/organizations/o",
    clientName: "node",
    authId: "validator",
    authSecret: "key",
    clientCert: null,
    clientKey: null,
    environmentId: null,
    runList: [],
    runAs: "root",
  };
  const text = clientRb(request, "/tmp/w/validation.pem", "/etc/chef");
  assert.match(text, /^chef_server_url 'https:\/\/chef\/organizations\/o'$/m);
  assert.match(text, /^validation_key '\/tmp\/w\/validation\.pem'$/m);
  assert.match(text, /^client_key '\/etc\/chef\/client\.pem'$/m);
  assert.throws(
    () => clientRb({ ...request, endpoint: "x'\nsystem('rm -rf /')" }, "/k", "/etc/chef"),
    /endpoint contains a line break/,
  );
});

Deno.test("Ansible endpoints and playbook paths", () => {
  assert.ok(isGitEndpoint("https://git.example.com/ops/site.git"));
  assert.ok(isGitEndpoint("git@github.example:ops/site.git"));
  assert.ok(isGitEndpoint("ssh://git@host/repo"));
  assert.ok(isGitEndpoint("file:///srv/repo"));
  assert.ok(!isGitEndpoint("https://files.example.com/playbooks.tar.gz"));
  assert.equal(checkPlaybook("roles/../site.yml"), "site.yml");
  assert.throws(() => checkPlaybook("../x.yml"), /outside the repository/);
  assert.throws(() => checkPlaybook("/etc/x.yml"), /outside the repository/);
  assert.throws(() => checkPlaybook("--become"), /is not a playbook path/);
  assert.throws(() => checkPlaybook(3), /is not a playbook path/);
});

Deno.test("maskSecrets hides every occurrence", () => {
  assert.equal(maskSecrets("a SECRET b SECRET", ["SECRET"]), "a <redacted> b <redacted>");
  assert.equal(maskSecrets("nothing", ["SECRET"]), "nothing");
});

interface Box {
  dir: string;
  bin: string;
  conf: ConfigSettings;
  request: ConfigRequest;
  [Symbol.asyncDispose](): Promise<void>;
}

async function box(standIn: string | null): Promise<Box> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-cm-unit-" });
  const bin = `${dir}/bin`;
  await Deno.mkdir(bin);
  await Deno.mkdir(`${dir}/tmp`);
  if (standIn !== null) {
    await Deno.writeTextFile(`${bin}/chef-client`, `#!/bin/sh\n${standIn}\n`, { mode: 0o755 });
  }
  return {
    dir,
    bin,
    conf: {
      tempDir: `${dir}/tmp`,
      logDir: `${dir}/logs`,
      sudo: null,
      timeoutSeconds: 30,
      replyBytes: 1024,
      platform: "debian",
      puppetPackage: "puppet-agent",
      chefConfigDir: `${dir}/chef`,
      chefInstallerUrl: null,
      chefInstallerSha256: null,
      chefPackage: null,
      chefVersion: null,
      extraPath: [bin],
    },
    request: {
      tool: "chef",
      endpoint: "https://chef.example/organizations/o",
      clientName: "node",
      authId: "validator",
      authSecret:
        "-----BEGIN RSA PRIVATE KEY-----\nSECRETSECRETSECRETSECRET\n-----END RSA PRIVATE KEY-----\n",
      clientCert: null,
      clientKey: null,
      environmentId: null,
      runList: ["recipe[x]"],
      runAs: "root",
    },
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function leftovers(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name);
}

Deno.test("a missing chef-client without an installation source names the keys to set", async () => {
  await using b = await box(null);
  if (
    ["/usr/bin/chef-client", "/opt/chef/bin/chef-client"].some((f) => {
      try {
        return Deno.statSync(f).isFile;
      } catch {
        return false;
      }
    })
  ) throw new Error("this machine has a chef-client; the test expects none");
  await assert.rejects(
    () =>
      runConfigurationManagement(b.request, { conf: b.conf, signal: new AbortController().signal }),
    /chef-client is not installed .* chef_installer_url and chef_installer_sha256 .* chef_package/,
  );
  assert.deepEqual(leftovers(`${b.dir}/tmp`), []);
});

Deno.test("the time limit kills the run's whole tree; the note names the key", async () => {
  await using b = await box(`sleep 300 &\necho $! > ${"$"}(dirname "$0")/child\nwait`);
  const started = performance.now();
  const outcome = await runConfigurationManagement(b.request, {
    conf: { ...b.conf, timeoutSeconds: 1 },
    signal: new AbortController().signal,
  });
  assert.ok(performance.now() - started < 15_000);
  assert.notEqual(outcome.code, 0);
  assert.match(outcome.note, /longer than 1 s .* run_timeout/);
  const child = Number(Deno.readTextFileSync(`${b.bin}/child`).trim());
  for (let i = 0; i < 100; i++) {
    try {
      Deno.statSync(`/proc/${child}`);
    } catch {
      break;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  assert.throws(() => Deno.statSync(`/proc/${child}`), "the child survived");
  assert.deepEqual(leftovers(`${b.dir}/tmp`), []);
});

Deno.test("a long output is capped in the reply and kept whole, masked, in the log directory", async () => {
  await using b = await box(
    `key=$(sed -n "s/^validation_key '\\(.*\\)'$/\\1/p" "$2")\ncat "$key"\nseq 1 20000\necho LAST`,
  );
  const outcome = await runConfigurationManagement(b.request, {
    conf: b.conf,
    signal: new AbortController().signal,
  });
  assert.equal(outcome.code, 0, outcome.stderr);
  assert.ok(outcome.stdout.length < 1400);
  assert.match(
    outcome.stdout,
    /earlier characters cut; the full output is in .*configure_server-chef-/,
  );
  assert.match(outcome.stdout, /LAST\n$/);
  const full = await Deno.readTextFile(outcome.logFile!);
  assert.match(full, /\n1\n2\n3\n/);
  assert.match(full, /\n20000\nLAST\n/);
  assert.ok(!full.includes("SECRETSECRET"), "the key is in the output file");
  assert.match(full, /<redacted>/);
  assert.equal(Deno.statSync(outcome.logFile!).mode! & 0o777, 0o600);
});
