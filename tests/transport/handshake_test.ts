/** Tests of lib/handshake.ts. */
import assert from "node:assert/strict";
import { createCloudMetadata } from "../../lib/os/cloud_metadata.ts";
import { configFromValues } from "../../lib/config/agent_conf.ts";
import { buildHandshake, type HandshakeOptions } from "../../lib/transport/handshake.ts";

const config = configFromValues({
  connection: { agentmanager_url: "ws://127.0.0.1:1/" },
  features: { custom: "yes", plugins: "overridden" },
});

/** Metadata with fixed answers, each after `delayMs`. */
function fixedMetadata(delayMs = 0): HandshakeOptions["metadata"] {
  const later = <T>(v: T) => new Promise<T>((resolve) => setTimeout(() => resolve(v), delayMs));
  return {
    instanceId: () => later("i-0abc1234"),
    injectedId: () => later(null),
    ipv4Addresses: () => later(["10.0.1.23"]),
  };
}

function options(metadata: HandshakeOptions["metadata"]): HandshakeOptions {
  return {
    agentId: null,
    token: "tok-1",
    metadata,
    platform: { name: "ubuntu", version: "14.04" },
    version: "1.2.4",
    plugins: ["add_user", "configure_server.*", "unmount.*"],
    pluginFeatures: { mount: true, format: true },
  };
}

Deno.test("handshake: exactly the 11 keys of protocol 104 with their values", async () => {
  const doc = await buildHandshake(config, options(fixedMetadata()));
  assert.deepEqual(doc, {
    ipv4: ["10.0.1.23"],
    ipv6: [],
    agent_id: null,
    token: "tok-1",
    vm_instance: "i-0abc1234",
    injected_id: null,
    version: "1.2.4",
    protocol_version: 104,
    platform: "ubuntu",
    platform_version: "14.04",
    features: {
      custom: "yes",
      mount: true,
      format: true,
      plugins: ["add_user", "configure_server.*", "unmount.*"],
    },
  });
  assert.deepEqual(Object.keys(doc).sort(), [
    "agent_id",
    "features",
    "injected_id",
    "ipv4",
    "ipv6",
    "platform",
    "platform_version",
    "protocol_version",
    "token",
    "version",
    "vm_instance",
  ]);
});

Deno.test("handshake: the agent id from the last accepted handshake is sent", async () => {
  const doc = await buildHandshake(config, { ...options(fixedMetadata()), agentId: "agent-9" });
  assert.equal(doc.agent_id, "agent-9");
});

Deno.test("handshake: the metadata lookups run in parallel", async () => {
  const start = performance.now();
  await buildHandshake(config, options(fixedMetadata(200)));
  const took = performance.now() - start;
  assert.ok(took < 450, `took ${took} ms; sequential lookups would take 600 ms`);
});

Deno.test("handshake: with the Konami test cloud the metadata comes from the environment", async () => {
  const base = Deno.makeTempDirSync();
  try {
    const konami = configFromValues({
      connection: { agentmanager_url: "ws://127.0.0.1:1/" },
      cloud: { type: "Konami" },
      storage: { base_dir: base },
    });
    const env: Record<string, string> = {
      DCM_KONAMI_INSTANCE_ID: "k-1",
      DCM_KONAMI_PRIVATE_IP: "10.0.0.1",
      DCM_KONAMI_PUBLIC_IP: "198.51.100.1",
      DCM_AGENT_INJECTED_ID: "inj-2",
    };
    const metadata = createCloudMetadata(konami, { env: (n) => env[n] });
    const doc = await buildHandshake(konami, options(metadata));
    assert.deepEqual(doc.ipv4, ["10.0.0.1", "198.51.100.1"]);
    assert.equal(doc.vm_instance, "k-1");
    assert.equal(doc.injected_id, "inj-2");
    assert.deepEqual(doc.features, {
      mount: true,
      format: true,
      plugins: ["add_user", "configure_server.*", "unmount.*"],
    });
  } finally {
    Deno.removeSync(base, { recursive: true });
  }
});
