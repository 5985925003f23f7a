/**
 * Tests of lib/cloud_metadata.ts against a local metadata server on
 * 127.0.0.1 standing in for Amazon, DigitalOcean, Google, OpenStack and
 * CloudStack, plus a server that never answers.
 */
import assert from "node:assert/strict";
import {
  type CloudMetadata,
  createCloudMetadata,
  dhcpServer,
  localIpv4,
} from "../lib/cloud_metadata.ts";
import { type AgentConfig, configFromValues } from "../lib/config.ts";
import { CLOUD_TYPES } from "../lib/config_schema.ts";
import { buildHandshake } from "../lib/handshake.ts";

/** A metadata server; `imdsToken` makes the Amazon paths require an IMDSv2 token. */
function startMetadataServer(options: { imdsToken?: string } = {}) {
  const requests: { method: string; path: string; headers: Headers }[] = [];
  const routes: Record<string, string> = {
    "/latest/meta-data/instance-id": "i-0abc",
    "/latest/meta-data/local-ipv4": "10.0.1.23",
    "/latest/meta-data/es:dmcm-launch-id": "launch-7",
    "/metadata/v1/id": "3164444",
    "/metadata/v1/interfaces/public/0/ipv4/address": "203.0.113.9",
    "/computeMetadata/v1/instance/hostname": "vm-1.c.project.internal",
    "/computeMetadata/v1/instance/id": "4567",
    "/computeMetadata/v1/instance/attributes/es-dmcm-launch-id": "g-launch",
    "/openstack/2012-08-10/meta_data.json": JSON.stringify({ uuid: "os-uuid-1", name: "vm" }),
    "/cs/latest/instance-id": "cs-9",
    "/broken/instance-id": "never",
  };
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = decodeURIComponent(new URL(req.url).pathname);
    requests.push({ method: req.method, path, headers: new Headers(req.headers) });
    if (path === "/latest/api/token") {
      if (req.method !== "PUT" || !options.imdsToken) return new Response("", { status: 404 });
      return new Response(options.imdsToken);
    }
    if (path.startsWith("/broken/")) return new Response("oops", { status: 500 });
    if (path.startsWith("/latest/") && options.imdsToken) {
      if (req.headers.get("x-aws-ec2-metadata-token") !== options.imdsToken) {
        return new Response("", { status: 401 });
      }
    }
    if (path.startsWith("/computeMetadata/") && req.headers.get("metadata-flavor") !== "Google") {
      return new Response("", { status: 403 });
    }
    const body = routes[path];
    return body === undefined ? new Response("not found", { status: 404 }) : new Response(body);
  });
  return { base: `http://127.0.0.1:${server.addr.port}`, requests, close: () => server.shutdown() };
}

function makeConfig(baseDir: string, type: string, metadataUrl?: string): AgentConfig {
  return configFromValues({
    connection: { agentmanager_url: "ws://127.0.0.1:1/" },
    cloud: { type, ...(metadataUrl ? { metadata_url: metadataUrl } : {}) },
    storage: { base_dir: baseDir },
  });
}

const noEnv = () => undefined;

async function all(md: CloudMetadata) {
  const [instanceId, injectedId, ipv4] = await Promise.all([
    md.instanceId(),
    md.injectedId(),
    md.ipv4Addresses(),
  ]);
  return { instanceId, injectedId, ipv4 };
}

Deno.test("cloud metadata: Amazon (IMDSv1) paths, with the spec's headers", async () => {
  const server = startMetadataServer();
  const dir = Deno.makeTempDirSync();
  try {
    // configure writes a trailing slash.
    const md = createCloudMetadata(makeConfig(dir, "Amazon", `${server.base}/latest/meta-data/`), {
      env: noEnv,
    });
    assert.deepEqual(await all(md), {
      instanceId: "i-0abc",
      injectedId: "launch-7",
      ipv4: ["10.0.1.23"],
    });
    const get = server.requests.find((r) => r.path === "/latest/meta-data/instance-id")!;
    assert.equal(get.method, "GET");
    assert.equal(get.headers.get("content-type"), "application/x-www-form-urlencoded");
    assert.equal(get.headers.get("cache-control"), "no-cache");
    assert.equal(get.headers.get("connection")?.toLowerCase(), "keep-alive");
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: Amazon uses an IMDSv2 token when the service requires one", async () => {
  const server = startMetadataServer({ imdsToken: "TKN-1" });
  const dir = Deno.makeTempDirSync();
  try {
    const md = createCloudMetadata(makeConfig(dir, "Amazon", `${server.base}/latest/meta-data`), {
      env: noEnv,
    });
    assert.deepEqual(await all(md), {
      instanceId: "i-0abc",
      injectedId: "launch-7",
      ipv4: ["10.0.1.23"],
    });
    const puts = server.requests.filter((r) => r.method === "PUT").length;
    assert.equal(await md.instanceId(), "i-0abc");
    // The token is cached, not fetched again.
    assert.equal(server.requests.filter((r) => r.method === "PUT").length, puts);
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: DigitalOcean", async () => {
  const server = startMetadataServer();
  const dir = Deno.makeTempDirSync();
  try {
    const md = createCloudMetadata(makeConfig(dir, "digitalocean", `${server.base}/metadata/v1`), {
      env: noEnv,
    });
    assert.deepEqual(await all(md), {
      instanceId: "3164444",
      injectedId: null,
      ipv4: ["203.0.113.9"],
    });
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: Google sends Metadata-Flavor and joins host label and id", async () => {
  const server = startMetadataServer();
  const dir = Deno.makeTempDirSync();
  try {
    const md = createCloudMetadata(makeConfig(dir, "Google", `${server.base}/computeMetadata/v1`), {
      env: noEnv,
    });
    assert.deepEqual(await all(md), {
      instanceId: "vm-1_4567",
      injectedId: "g-launch",
      ipv4: localIpv4(),
    });
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: OpenStack reads uuid from meta_data.json", async () => {
  const server = startMetadataServer();
  const dir = Deno.makeTempDirSync();
  try {
    const url = `${server.base}/openstack/2012-08-10/meta_data.json`;
    const md = createCloudMetadata(makeConfig(dir, "OpenStack", url), { env: noEnv });
    assert.deepEqual(await all(md), {
      instanceId: "os-uuid-1",
      injectedId: null,
      ipv4: localIpv4(),
    });
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: CloudStack with metadata_url", async () => {
  const server = startMetadataServer();
  const dir = Deno.makeTempDirSync();
  try {
    const md = createCloudMetadata(makeConfig(dir, "CloudStack3", `${server.base}/cs`), {
      env: noEnv,
    });
    assert.equal(await md.instanceId(), "cs-9");
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: CloudStack finds the DHCP server in lease files", () => {
  const root = Deno.makeTempDirSync();
  try {
    assert.equal(dhcpServer(root), null);
    Deno.mkdirSync(`${root}/var/log`, { recursive: true });
    Deno.writeTextFileSync(
      `${root}/var/log/messages`,
      "dhclient: DHCPACK ... server identifier 10.9.9.9\n",
    );
    assert.equal(dhcpServer(root), "10.9.9.9");
    Deno.mkdirSync(`${root}/var/lib/dhcp`, { recursive: true });
    Deno.writeTextFileSync(
      `${root}/var/lib/dhcp/dhclient.eth0.leases`,
      "lease {\n  option dhcp-server-identifier 10.1.1.1;\n}\nlease {\n  option dhcp-server-identifier 10.1.1.2;\n}\n",
    );
    assert.equal(dhcpServer(root), "10.1.1.2");
  } finally {
    Deno.removeSync(root, { recursive: true });
  }
});

Deno.test("cloud metadata: errors and non-200 answers give null", async () => {
  const server = startMetadataServer();
  const dir = Deno.makeTempDirSync();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = `http://127.0.0.1:${listener.addr.port}`;
  listener.close();
  try {
    const broken = createCloudMetadata(makeConfig(dir, "Amazon", `${server.base}/broken`), {
      env: noEnv,
    });
    assert.deepEqual(await all(broken), { instanceId: null, injectedId: null, ipv4: [null] });
    const missing = createCloudMetadata(makeConfig(dir, "DigitalOcean", `${server.base}/nothing`), {
      env: noEnv,
    });
    assert.deepEqual(await all(missing), { instanceId: null, injectedId: null, ipv4: [null] });
    const down = createCloudMetadata(makeConfig(dir, "Google", refused), { env: noEnv });
    assert.equal(await down.instanceId(), null);
  } finally {
    await server.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: a service that never answers costs one timeout per handshake", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })().catch(() => {});
  const dir = Deno.makeTempDirSync();
  try {
    const url = `http://127.0.0.1:${listener.addr.port}/latest/meta-data`;
    const metadata = createCloudMetadata(makeConfig(dir, "Amazon", url), {
      env: noEnv,
      timeoutMs: 300,
    });
    const start = performance.now();
    const handshake = await buildHandshake(makeConfig(dir, "Amazon", url), {
      agentId: null,
      token: "t",
      metadata,
      platform: { name: "ubuntu", version: "14.04" },
      version: "1.2.4",
      plugins: [],
      pluginFeatures: {},
    });
    const took = performance.now() - start;
    assert.ok(took >= 280 && took < 550, `the handshake took ${took} ms`);
    assert.deepEqual(handshake.ipv4, [null]);
    assert.equal(handshake.vm_instance, null);
    assert.equal(handshake.injected_id, null);
    assert.ok(conns.length >= 1);
  } finally {
    listener.close();
    await accepting;
    for (const c of conns) c.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: an injected fetch that ignores the signal is still bounded", async () => {
  const dir = Deno.makeTempDirSync();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const slow = () =>
      new Promise<Response>((resolve) =>
        timer = setTimeout(() => resolve(new Response("late")), 2000)
      );
    const md = createCloudMetadata(makeConfig(dir, "DigitalOcean"), {
      env: noEnv,
      timeoutMs: 100,
      fetch: slow,
    });
    const start = performance.now();
    assert.equal(await md.instanceId(), null);
    assert.ok(performance.now() - start < 500);
  } finally {
    clearTimeout(timer);
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: Konami reads the DCM_KONAMI_* variables", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const env: Record<string, string> = {
      DCM_KONAMI_INSTANCE_ID: "k-1",
      DCM_KONAMI_INJECTED_ID: "k-inj",
      DCM_KONAMI_PRIVATE_IP: "10.0.0.1",
      DCM_KONAMI_PUBLIC_IP: "198.51.100.1",
    };
    const md = createCloudMetadata(makeConfig(dir, "Konami"), { env: (n) => env[n] });
    assert.deepEqual(await all(md), {
      instanceId: "k-1",
      injectedId: "k-inj",
      ipv4: ["10.0.0.1", "198.51.100.1"],
    });
    const bare = createCloudMetadata(makeConfig(dir, "Konami"), { env: noEnv });
    assert.deepEqual(await all(bare), { instanceId: null, injectedId: null, ipv4: [null, null] });
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: DCM_AGENT_INJECTED_ID is persisted (0600, truncated) and read back", async () => {
  const dir = Deno.makeTempDirSync();
  const file = `${dir}/secure/injected_id`;
  try {
    const config = makeConfig(dir, "UNKNOWN");
    const long = "x".repeat(100);
    assert.equal(await createCloudMetadata(config, { env: () => long }).injectedId(), long);
    const withEnv = createCloudMetadata(config, {
      env: (n) => n === "DCM_AGENT_INJECTED_ID" ? "inj-1" : undefined,
    });
    assert.equal(await withEnv.injectedId(), "inj-1");
    assert.equal(Deno.readTextFileSync(file), "inj-1");
    assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
    assert.equal(Deno.statSync(`${dir}/secure`).mode! & 0o777, 0o700);
    // Without the variable the file is used; a blank variable counts as unset.
    assert.equal(await createCloudMetadata(config, { env: noEnv }).injectedId(), "inj-1");
    assert.equal(await createCloudMetadata(config, { env: () => "  " }).injectedId(), "inj-1");
    Deno.writeTextFileSync(file, " \n");
    assert.equal(await createCloudMetadata(config, { env: noEnv }).injectedId(), null);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: a cloud-specific injected id comes before the variable", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const env = (n: string) =>
      ({ DCM_KONAMI_INJECTED_ID: "from-cloud", DCM_AGENT_INJECTED_ID: "from-env" })[n];
    assert.equal(
      await createCloudMetadata(makeConfig(dir, "Konami"), { env }).injectedId(),
      "from-cloud",
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  name: "cloud metadata: Joyent runs mdata-get from the first location that works",
  ignore: Deno.uid() !== 0,
  async fn() {
    const root = Deno.makeTempDirSync();
    try {
      Deno.mkdirSync(`${root}/lib/smartdc`, { recursive: true });
      const script = `${root}/lib/smartdc/mdata-get`;
      Deno.writeTextFileSync(
        script,
        '#!/bin/sh\n[ "$1" = "es:dmcm-launch-id" ] && echo joyent-7 && exit 0\nexit 1\n',
      );
      Deno.chmodSync(script, 0o755);
      const md = createCloudMetadata(makeConfig(root, "Joyent"), { env: noEnv, root });
      assert.deepEqual(await all(md), {
        instanceId: "joyent-7",
        injectedId: "joyent-7",
        ipv4: localIpv4(),
      });
    } finally {
      Deno.removeSync(root, { recursive: true });
    }
  },
});

Deno.test("cloud metadata: Azure derives the instance id from the host name", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    const h = Deno.hostname().split(".")[0];
    assert.equal(
      await createCloudMetadata(makeConfig(dir, "Azure"), { env: noEnv }).instanceId(),
      `${h}:${h}:${h}`,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: every cloud type works and never throws", async () => {
  const dir = Deno.makeTempDirSync();
  // No request may leave the machine: every fetch fails at once.
  const offline = () => Promise.reject(new TypeError("offline"));
  try {
    for (const type of CLOUD_TYPES) {
      const md = createCloudMetadata(makeConfig(dir, type), {
        env: noEnv,
        fetch: offline,
        root: dir,
      });
      const got = await all(md);
      assert.ok(Array.isArray(got.ipv4), type);
      if (!["Azure", "Konami"].includes(type)) assert.equal(got.instanceId, null, type);
    }
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("cloud metadata: local IPv4 addresses include the loopback", () => {
  assert.ok(localIpv4().includes("127.0.0.1"));
});
