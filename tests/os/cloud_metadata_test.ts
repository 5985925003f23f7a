/**
 * Tests of lib/cloud_metadata.ts against a local metadata server on
 * 127.0.0.1 standing in for Amazon, DigitalOcean, Google, OpenStack and
 * CloudStack, plus a server that never answers.
 */
import assert from "node:assert/strict";
import {
  type CloudMetadata,
  type CloudMetadataOptions,
  createCloudMetadata,
  dhcpServer,
  localIpv4,
} from "../../lib/os/cloud_metadata.ts";
import { type AgentConfig, configFromValues } from "../../lib/config/agent_conf.ts";
import { CLOUD_TYPES } from "../../lib/config/schema.ts";
import { buildHandshake } from "../../lib/transport/handshake.ts";

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
  return {
    base: `http://127.0.0.1:${server.addr.port}`,
    requests,
    [Symbol.asyncDispose]: () => server.shutdown(),
  };
}

/** A temporary directory, removed when its `using` scope ends. */
function tempDir(): Disposable & { path: string } {
  const path = Deno.makeTempDirSync();
  return { path, [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }) };
}

function makeConfig(baseDir: string, type: string, metadataUrl?: string): AgentConfig {
  return configFromValues({
    connection: { agentmanager_url: "ws://127.0.0.1:1/" },
    cloud: { type, ...(metadataUrl ? { metadata_url: metadataUrl } : {}) },
    storage: { base_dir: baseDir },
  });
}

const noEnv = () => undefined;

/** The lookups for `type` with base_dir `dir`; no environment variables unless `options` has some. */
function lookups(
  dir: string,
  type: string,
  metadataUrl?: string,
  options: CloudMetadataOptions = {},
): CloudMetadata {
  return createCloudMetadata(makeConfig(dir, type, metadataUrl), { env: noEnv, ...options });
}

async function all(md: CloudMetadata) {
  const [instanceId, injectedId, ipv4] = await Promise.all([
    md.instanceId(),
    md.injectedId(),
    md.ipv4Addresses(),
  ]);
  return { instanceId, injectedId, ipv4 };
}

Deno.test("cloud metadata: Amazon (IMDSv1) paths, with the original's headers", async () => {
  await using server = startMetadataServer();
  using dir = tempDir();
  // configure writes a trailing slash.
  const md = lookups(dir.path, "Amazon", `${server.base}/latest/meta-data/`);
  assert.deepEqual(await all(md), {
    instanceId: "i-0abc",
    injectedId: "launch-7",
    ipv4: ["10.0.1.23"],
  });
  // rename's choice: the metadata's local-ipv4 first, then the local addresses.
  assert.deepEqual(await md.hostAddresses(), ["10.0.1.23", ...localIpv4()]);
  const get = server.requests.find((r) => r.path === "/latest/meta-data/instance-id")!;
  assert.equal(get.method, "GET");
  assert.equal(get.headers.get("content-type"), "application/x-www-form-urlencoded");
  assert.equal(get.headers.get("cache-control"), "no-cache");
  assert.equal(get.headers.get("connection")?.toLowerCase(), "keep-alive");
});

Deno.test("cloud metadata: Amazon uses an IMDSv2 token when the service requires one", async () => {
  await using server = startMetadataServer({ imdsToken: "TKN-1" });
  using dir = tempDir();
  const md = lookups(dir.path, "Amazon", `${server.base}/latest/meta-data`);
  assert.deepEqual(await all(md), {
    instanceId: "i-0abc",
    injectedId: "launch-7",
    ipv4: ["10.0.1.23"],
  });
  const puts = server.requests.filter((r) => r.method === "PUT").length;
  assert.equal(await md.instanceId(), "i-0abc");
  // The token is cached, not fetched again.
  assert.equal(server.requests.filter((r) => r.method === "PUT").length, puts);
});

Deno.test("cloud metadata: DigitalOcean", async () => {
  await using server = startMetadataServer();
  using dir = tempDir();
  const md = lookups(dir.path, "digitalocean", `${server.base}/metadata/v1`);
  assert.deepEqual(await all(md), {
    instanceId: "3164444",
    injectedId: null,
    ipv4: ["203.0.113.9"],
  });
  // The handshake has the public address; rename uses the local ones, as the original did.
  assert.deepEqual(await md.hostAddresses(), localIpv4());
});

Deno.test("cloud metadata: Google sends Metadata-Flavor and joins host label and id", async () => {
  await using server = startMetadataServer();
  using dir = tempDir();
  const md = lookups(dir.path, "Google", `${server.base}/computeMetadata/v1`);
  assert.deepEqual(await all(md), {
    instanceId: "vm-1_4567",
    injectedId: "g-launch",
    ipv4: localIpv4(),
  });
});

Deno.test("cloud metadata: OpenStack reads uuid from meta_data.json", async () => {
  await using server = startMetadataServer();
  using dir = tempDir();
  const md = lookups(dir.path, "OpenStack", `${server.base}/openstack/2012-08-10/meta_data.json`);
  assert.deepEqual(await all(md), {
    instanceId: "os-uuid-1",
    injectedId: null,
    ipv4: localIpv4(),
  });
});

Deno.test("cloud metadata: CloudStack with metadata_url", async () => {
  await using server = startMetadataServer();
  using dir = tempDir();
  assert.equal(await lookups(dir.path, "CloudStack3", `${server.base}/cs`).instanceId(), "cs-9");
});

Deno.test("cloud metadata: CloudStack finds the DHCP server in lease files", () => {
  using dir = tempDir();
  const root = dir.path;
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
});

Deno.test("cloud metadata: errors and non-200 answers give null", async () => {
  await using server = startMetadataServer();
  using dir = tempDir();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const refused = `http://127.0.0.1:${listener.addr.port}`;
  listener.close();
  const broken = lookups(dir.path, "Amazon", `${server.base}/broken`);
  assert.deepEqual(await all(broken), { instanceId: null, injectedId: null, ipv4: [null] });
  const missing = lookups(dir.path, "DigitalOcean", `${server.base}/nothing`);
  assert.deepEqual(await all(missing), { instanceId: null, injectedId: null, ipv4: [null] });
  assert.equal(await lookups(dir.path, "Google", refused).instanceId(), null);
});

Deno.test("cloud metadata: a service that never answers costs one timeout per handshake", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const c of listener) conns.push(c);
  })().catch(() => {});
  using dir = tempDir();
  try {
    const url = `http://127.0.0.1:${listener.addr.port}/latest/meta-data`;
    const metadata = lookups(dir.path, "Amazon", url, { timeoutMs: 300 });
    const start = performance.now();
    const handshake = await buildHandshake(makeConfig(dir.path, "Amazon", url), {
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
  }
});

Deno.test("cloud metadata: an injected fetch that ignores the signal is still bounded", async () => {
  using dir = tempDir();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const slow = () =>
      new Promise<Response>((resolve) =>
        timer = setTimeout(() => resolve(new Response("late")), 2000)
      );
    const md = lookups(dir.path, "DigitalOcean", undefined, { timeoutMs: 100, fetch: slow });
    const start = performance.now();
    assert.equal(await md.instanceId(), null);
    assert.ok(performance.now() - start < 500);
  } finally {
    clearTimeout(timer);
  }
});

Deno.test("cloud metadata: Konami reads the DCM_KONAMI_* variables", async () => {
  using dir = tempDir();
  const env: Record<string, string> = {
    DCM_KONAMI_INSTANCE_ID: "k-1",
    DCM_KONAMI_INJECTED_ID: "k-inj",
    DCM_KONAMI_PRIVATE_IP: "10.0.0.1",
    DCM_KONAMI_PUBLIC_IP: "198.51.100.1",
  };
  assert.deepEqual(await all(lookups(dir.path, "Konami", undefined, { env: (n) => env[n] })), {
    instanceId: "k-1",
    injectedId: "k-inj",
    ipv4: ["10.0.0.1", "198.51.100.1"],
  });
  assert.deepEqual(await all(lookups(dir.path, "Konami")), {
    instanceId: null,
    injectedId: null,
    ipv4: [null, null],
  });
});

Deno.test("cloud metadata: DCM_AGENT_INJECTED_ID is persisted (0600, truncated) and read back", async () => {
  using dir = tempDir();
  const file = `${dir.path}/secure/injected_id`;
  const injectedId = (env: (name: string) => string | undefined) =>
    lookups(dir.path, "UNKNOWN", undefined, { env }).injectedId();
  const long = "x".repeat(100);
  assert.equal(await injectedId(() => long), long);
  assert.equal(
    await injectedId((n) => n === "DCM_AGENT_INJECTED_ID" ? "inj-1" : undefined),
    "inj-1",
  );
  assert.equal(Deno.readTextFileSync(file), "inj-1");
  assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
  assert.equal(Deno.statSync(`${dir.path}/secure`).mode! & 0o777, 0o700);
  // Without the variable the file is used; a blank variable counts as unset.
  assert.equal(await injectedId(noEnv), "inj-1");
  assert.equal(await injectedId(() => "  "), "inj-1");
  Deno.writeTextFileSync(file, " \n");
  assert.equal(await injectedId(noEnv), null);
});

Deno.test("cloud metadata: a cloud-specific injected id comes before the variable", async () => {
  using dir = tempDir();
  const env = (n: string) =>
    ({ DCM_KONAMI_INJECTED_ID: "from-cloud", DCM_AGENT_INJECTED_ID: "from-env" })[n];
  assert.equal(await lookups(dir.path, "Konami", undefined, { env }).injectedId(), "from-cloud");
});

Deno.test({
  name: "cloud metadata: Joyent runs mdata-get from the first location that works",
  ignore: Deno.uid() !== 0,
  async fn() {
    using dir = tempDir();
    const root = dir.path;
    Deno.mkdirSync(`${root}/lib/smartdc`, { recursive: true });
    const script = `${root}/lib/smartdc/mdata-get`;
    Deno.writeTextFileSync(
      script,
      '#!/bin/sh\n[ "$1" = "es:dmcm-launch-id" ] && echo joyent-7 && exit 0\nexit 1\n',
    );
    Deno.chmodSync(script, 0o755);
    assert.deepEqual(await all(lookups(root, "Joyent", undefined, { root })), {
      instanceId: "joyent-7",
      injectedId: "joyent-7",
      ipv4: localIpv4(),
    });
  },
});

Deno.test("cloud metadata: Azure derives the instance id from the host name", async () => {
  using dir = tempDir();
  const h = Deno.hostname().split(".")[0];
  assert.equal(await lookups(dir.path, "Azure").instanceId(), `${h}:${h}:${h}`);
});

Deno.test("cloud metadata: every cloud type works and never throws", async () => {
  using dir = tempDir();
  // No request may leave the machine: every fetch fails at once.
  const offline = () => Promise.reject(new TypeError("offline"));
  for (const type of CLOUD_TYPES) {
    const got = await all(lookups(dir.path, type, undefined, { fetch: offline, root: dir.path }));
    assert.ok(Array.isArray(got.ipv4), type);
    if (!["Azure", "Konami"].includes(type)) assert.equal(got.instanceId, null, type);
  }
});

Deno.test("cloud metadata: local IPv4 addresses include the loopback", () => {
  assert.ok(localIpv4().includes("127.0.0.1"));
});
