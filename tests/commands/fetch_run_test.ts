import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { pathToFileURL } from "node:url";
import fetchRun from "../../commands/scripts/fetch_run.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import type { ReplyPayload } from "../../lib/protocol/messages.ts";
import { makeTestContext, type TestContext } from "../helpers/context.ts";

const SCRIPT = '#!/bin/sh\necho "fetched $*"\necho "[tag] log" >> "$DCM_LOG_FILE"\nexit 4\n';
const SCRIPT_SHA256 = createHash("sha256").update(SCRIPT).digest("hex");

interface Sandbox {
  dir: string;
  ctx: TestContext;
  /** Base URL of a local HTTP server: /script serves SCRIPT, anything else is 404. */
  base: string;
  /** Request headers the server received, by path. */
  seen: Map<string, Headers>;
  run(args: Record<string, unknown>): Promise<ReplyPayload>;
  [Symbol.asyncDispose](): Promise<void>;
}

async function sandbox(): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-fetch-run-test-" });
  const ctx = makeTestContext({ conf: { storage: { temppath: dir, base_dir: dir } } });
  const seen = new Map<string, Headers>();
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, (req) => {
    const path = new URL(req.url).pathname;
    seen.set(path, new Headers(req.headers));
    if (path === "/script") return new Response(SCRIPT);
    if (path === "/stall") {
      // Sends the headers and a first chunk, then nothing until the client gives up.
      const body = new ReadableStream<Uint8Array>({
        start: (controller) => controller.enqueue(new TextEncoder().encode("#!/bin/sh\n")),
      });
      return new Response(body);
    }
    return new Response("no such script", { status: 404, statusText: "Not Found" });
  });
  return {
    dir,
    ctx,
    base: `http://127.0.0.1:${server.addr.port}`,
    seen,
    run: (args) => executeCommand(fetchRun, args, ctx),
    async [Symbol.asyncDispose]() {
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("fetch_run downloads over http, runs with arguments and deletes the file", async () => {
  await using box = await sandbox();
  const reply = await box.run({
    url: `${box.base}/script`,
    checksum: SCRIPT_SHA256.toUpperCase(),
    arguments: ["a", 2],
    runUnderSudo: "false",
    ssl_cert: "ignored",
  });
  assert.deepEqual(reply, {
    return_code: 4,
    reply_type: "void",
    reply_object: null,
    message: "fetched a 2\n",
    error_message: "",
  });
  assert.deepEqual(box.ctx.details, ["[tag] log"]);
  assert.deepEqual([...Deno.readDirSync(box.dir)], []);
  const headers = box.seen.get("/script")!;
  assert.equal(headers.get("cache-control"), "no-cache");
  assert.equal(headers.get("content-type"), "application/x-www-form-urlencoded");
});

Deno.test("fetch_run without a checksum runs the download unchecked", async () => {
  await using box = await sandbox();
  const reply = await box.run({ url: `${box.base}/script` });
  assert.equal(reply.return_code, 4);
  assert.equal(reply.message, "fetched \n");
});

Deno.test("fetch_run reports a 404 as a failed download", async () => {
  await using box = await sandbox();
  const url = `${box.base}/missing`;
  const reply = await box.run({ url });
  assert.equal(reply.return_code, 1);
  assert.equal(
    reply.error_message,
    `Failed to download the URL ${url}: the server answered HTTP 404 Not Found`,
  );
  assert.deepEqual([...Deno.readDirSync(box.dir)], []);
});

Deno.test("fetch_run refuses a download whose checksum does not match", async () => {
  await using box = await sandbox();
  const reply = await box.run({ url: `${box.base}/script`, checksum: "0".repeat(64) });
  assert.equal(reply.return_code, 1);
  assert.equal(reply.message, "");
  assert.match(
    decodeURIComponent(reply.error_message),
    new RegExp(`^checksum did not match: expected ${"0".repeat(64)}, got ${SCRIPT_SHA256}`),
  );
  assert.deepEqual(box.ctx.details, []);
  assert.deepEqual([...Deno.readDirSync(box.dir)], []);
});

Deno.test("fetch_run gives up after connect_timeout when the server never answers", async () => {
  await using box = await sandbox();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    const url = `http://127.0.0.1:${listener.addr.port}/script`;
    const started = Date.now();
    const reply = await box.run({ url, connect_timeout: "1" });
    const elapsed = Date.now() - started;
    assert.ok(elapsed >= 900 && elapsed < 3000, `took ${elapsed} ms`);
    assert.equal(reply.return_code, 1);
    assert.equal(
      reply.error_message,
      `Failed to download the URL ${url}: no answer from the server within 1 s`,
    );
  } finally {
    listener.close();
    await accepting;
    for (const conn of held) conn.close();
  }
});

Deno.test("fetch_run gives up when the body stalls for connect_timeout", async () => {
  await using box = await sandbox();
  const url = `${box.base}/stall`;
  const started = Date.now();
  const reply = await box.run({ url, connect_timeout: 1 });
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 900 && elapsed < 3000, `took ${elapsed} ms`);
  assert.equal(
    reply.error_message,
    `Failed to download the URL ${url}: no answer from the server within 1 s`,
  );
  assert.deepEqual([...Deno.readDirSync(box.dir)], []);
});

Deno.test("fetch_run reports a refused connection as a failed download", async () => {
  await using box = await sandbox();
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const url = `http://127.0.0.1:${listener.addr.port}/script`;
  listener.close();
  const reply = await box.run({ url });
  assert.equal(reply.return_code, 1);
  assert.match(reply.error_message, /^Failed to download the URL .*: .*[Cc]onnection refused/);
});

Deno.test("fetch_run runs a file:// script in place, makes it 0755 and keeps it", async () => {
  await using box = await sandbox();
  const path = `${box.dir}/local.sh`;
  await Deno.writeTextFile(path, SCRIPT, { mode: 0o600 });
  const reply = await box.run({ url: pathToFileURL(path).href, arguments: ["x"] });
  assert.equal(reply.return_code, 4, reply.error_message);
  assert.equal(reply.message, "fetched x\n");
  assert.equal((await Deno.stat(path)).mode! & 0o777, 0o755);
  assert.deepEqual([...Deno.readDirSync(box.dir)].map((e) => e.name), ["local.sh"]);
});

Deno.test("fetch_run reports a missing file:// script clearly", async () => {
  await using box = await sandbox();
  const reply = await box.run({ url: pathToFileURL(`${box.dir}/absent.sh`).href });
  assert.equal(reply.return_code, 1);
  assert.match(decodeURIComponent(reply.error_message), /cannot run the local script .*absent\.sh/);
});

Deno.test("fetch_run refuses other schemes and invalid URLs", async () => {
  await using box = await sandbox();
  const ftp = await box.run({ url: "ftp://example.com/script.sh" });
  assert.equal(ftp.return_code, 1);
  assert.match(
    decodeURIComponent(ftp.error_message),
    /unsupported URL scheme 'ftp:' .* fetch_run accepts only http, https and file URLs/,
  );
  const invalid = await box.run({ url: "not a url" });
  assert.equal(invalid.return_code, 1);
  assert.match(decodeURIComponent(invalid.error_message), /is not valid; send an absolute URL/);
});
