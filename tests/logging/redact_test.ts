/** Tests of lib/logging/redact.ts. */
import assert from "node:assert/strict";
import {
  isSecretKey,
  redactSecrets,
  scrubSecrets,
  SECRET_WORDS,
} from "../../lib/logging/redact.ts";

Deno.test("redact: secrets in a handshake and a request are hidden, ids stay", () => {
  const frame = {
    type: "REQUEST",
    request_id: "r-1",
    message_id: "m-1",
    agent_id: "a-1",
    token: "abc",
    payload: {
      command: "configure_server",
      arguments: {
        configType: "chef",
        encryptedAuthSecret: "PEM",
        configKey: "k",
        configCert: "c",
        storagePrivateKey: "p",
        storagePublicKey: "q",
        parameterList: "x",
        configurationData: { a: 1 },
        encryptedConfigToken: "t",
        runListIds: ["role[web]"],
      },
    },
  };
  assert.deepEqual(redactSecrets(frame), {
    type: "REQUEST",
    request_id: "r-1",
    message_id: "m-1",
    agent_id: "a-1",
    token: "<redacted 3 bytes>",
    payload: {
      command: "configure_server",
      arguments: {
        configType: "chef",
        encryptedAuthSecret: "<redacted 3 bytes>",
        configKey: "<redacted 1 bytes>",
        configCert: "<redacted 1 bytes>",
        storagePrivateKey: "<redacted 1 bytes>",
        storagePublicKey: "<redacted 1 bytes>",
        parameterList: "<redacted 1 bytes>",
        configurationData: "<redacted 7 bytes>",
        encryptedConfigToken: "<redacted 1 bytes>",
        runListIds: ["role[web]"],
      },
    },
  });
});

Deno.test("redact: scripts, passwords, ssh keys and name fragments are hidden", () => {
  const out = redactSecrets({
    b64script: "ZWNobyBoaQ==",
    script: "echo hi",
    authentication: "ssh-rsa AAAA",
    encryptedEphemeralFsKey: "k",
    encryptedFsEncryptionKey: "k",
    dbPassword: "pw",
    client_secret: "s",
    apiKey: "é",
    list: [{ Password: "x" }],
  }) as Record<string, unknown>;
  assert.deepEqual(out, {
    b64script: "<redacted 12 bytes>",
    script: "<redacted 7 bytes>",
    authentication: "<redacted 12 bytes>",
    encryptedEphemeralFsKey: "<redacted 1 bytes>",
    encryptedFsEncryptionKey: "<redacted 1 bytes>",
    dbPassword: "<redacted 2 bytes>",
    client_secret: "<redacted 1 bytes>",
    apiKey: "<redacted 2 bytes>",
    list: [{ Password: "<redacted 1 bytes>" }],
  });
});

Deno.test("redact: identifiers named like secrets are kept; null values are kept", () => {
  assert.deepEqual(redactSecrets({ keyId: "k1", token_id: "t1", customerId: 5, token: null }), {
    keyId: "k1",
    token_id: "t1",
    customerId: 5,
    token: null,
  });
});

Deno.test("redact: the input is not modified and scalars pass through", () => {
  const input = { token: "abc", nested: { password: "pw" } };
  redactSecrets(input);
  assert.deepEqual(input, { token: "abc", nested: { password: "pw" } });
  assert.equal(redactSecrets("text"), "text");
  assert.equal(redactSecrets(null), null);
  assert.equal(redactSecrets(3), 3);
});

Deno.test("redact: never throws on circular or unserialisable values", () => {
  const a: Record<string, unknown> = { name: "a" };
  a.self = a;
  assert.deepEqual(redactSecrets(a), { name: "a", self: "<circular>" });
  const shared = { v: 1 };
  assert.deepEqual(redactSecrets({ x: shared, y: shared }), { x: { v: 1 }, y: { v: 1 } });
  assert.equal(redactSecrets({ secret: 10n }), "<unloggable value>");
  let deep: unknown = "bottom";
  for (let i = 0; i < 100; i++) deep = [deep];
  // Nesting past the copy depth is summarised rather than copied.
  let out = redactSecrets(deep);
  let depth = 0;
  while (Array.isArray(out)) {
    out = out[0];
    depth++;
  }
  assert.equal(out, "<nested too deeply>");
  assert.equal(depth, 64);
});

Deno.test("redact: one word list serves frames and log lines alike", () => {
  for (const word of SECRET_WORDS) {
    const key = `my${word[0].toUpperCase()}${word.slice(1)}`;
    assert.ok(isSecretKey(key), key);
    assert.deepEqual(redactSecrets({ [key]: "v4lue" }), { [key]: "<redacted 5 bytes>" }, key);
    assert.equal(scrubSecrets(`{"${key}":"v4lue"}`), `{"${key}":"<redacted>"}`, key);
    assert.equal(scrubSecrets(`${key}=v4lue x`), `${key}=<redacted> x`, key);
  }
  // A key both paths used to treat differently: `passwd` was only known to the line scrubber.
  assert.deepEqual(redactSecrets({ rootPasswd: "pw" }), { rootPasswd: "<redacted 2 bytes>" });
  assert.equal(scrubSecrets(`{"rootPasswd":"pw"}`), `{"rootPasswd":"<redacted>"}`);
  // Identifiers stay readable on both paths.
  assert.deepEqual(redactSecrets({ tokenId: "t1" }), { tokenId: "t1" });
  assert.equal(scrubSecrets(`{"tokenId":"t1"}`), `{"tokenId":"t1"}`);
});
