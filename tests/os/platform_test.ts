/** Tests of lib/platform.ts against fake /etc trees. */
import assert from "node:assert/strict";
import { configFromValues } from "../../lib/config/agent_conf.ts";
import { detectPlatform, platformFor } from "../../lib/os/platform.ts";

/** Runs `fn` with a temporary root holding the given files. */
function withRoot(files: Record<string, string>, fn: (root: string) => void): void {
  const root = Deno.makeTempDirSync();
  try {
    Deno.mkdirSync(`${root}/etc`);
    for (const [path, text] of Object.entries(files)) {
      Deno.writeTextFileSync(`${root}/${path}`, text);
    }
    fn(root);
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
}

const UBUNTU_LSB = "DISTRIB_ID=Ubuntu\nDISTRIB_RELEASE=14.04\nDISTRIB_CODENAME=trusty\n";

Deno.test("platform: /etc/lsb-release comes first", () => {
  withRoot({ "etc/lsb-release": UBUNTU_LSB, "etc/debian_version": "jessie/sid\n" }, (root) => {
    assert.deepEqual(detectPlatform({ root }), { name: "ubuntu", version: "14.04" });
  });
});

Deno.test("platform: /etc/os-release, with quotes, for modern systems", () => {
  withRoot({
    "etc/os-release": 'PRETTY_NAME="Debian GNU/Linux 12 (bookworm)"\nID=debian\nVERSION_ID="12"\n',
    "etc/debian_version": "12.5\n",
  }, (root) => {
    assert.deepEqual(detectPlatform({ root }), { name: "debian", version: "12" });
  });
});

Deno.test("platform: os-release derivatives map to the family they name", () => {
  withRoot({
    "etc/os-release": 'ID="rocky"\nID_LIKE="rhel centos fedora"\nVERSION_ID="9.3"\n',
  }, (root) => {
    assert.deepEqual(detectPlatform({ root }), { name: "rhel", version: "9.3" });
  });
});

Deno.test("platform: /etc/redhat-release for CentOS and Red Hat", () => {
  withRoot({ "etc/redhat-release": "CentOS release 6.5 (Final)\n" }, (root) => {
    assert.deepEqual(detectPlatform({ root }), { name: "centos", version: "6.5" });
  });
  withRoot({
    "etc/redhat-release": "Red Hat Enterprise Linux Server release 7.2 (Maipo)\n",
  }, (root) => {
    assert.deepEqual(detectPlatform({ root }), { name: "rhel", version: "7.2" });
  });
});

Deno.test("platform: /etc/debian_version last", () => {
  withRoot({ "etc/debian_version": "8.11\n" }, (root) => {
    assert.deepEqual(detectPlatform({ root }), { name: "debian", version: "8.11" });
  });
});

Deno.test("platform: nothing to go by is an error that says what to configure", () => {
  withRoot({}, (root) => {
    assert.throws(() => detectPlatform({ root }), /set \[platform\] name and version/);
  });
});

Deno.test("platform: this machine is detected", () => {
  const p = detectPlatform();
  assert.ok(p.name !== "" && p.version !== "");
});

Deno.test("platform: [platform] name and version from agent.conf win", () => {
  const config = configFromValues({
    connection: { agentmanager_url: "ws://127.0.0.1:1/" },
    platform: { name: "CentOS", version: "6.5" },
  });
  assert.deepEqual(platformFor(config), { name: "centos", version: "6.5" });
  const nameOnly = configFromValues({
    connection: { agentmanager_url: "ws://127.0.0.1:1/" },
    platform: { name: "fedora" },
  });
  assert.deepEqual(platformFor(nameOnly), { name: "fedora", version: detectPlatform().version });
});
