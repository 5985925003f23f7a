import assert from "node:assert/strict";
import { waitGroupGone } from "../helpers/process_group.ts";
import { createHash } from "node:crypto";
import { deflateSync, gzipSync } from "node:zlib";
import runScript from "../../commands/scripts/run_script.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import type { ReplyPayload } from "../../lib/protocol/messages.ts";
import { findPython, scriptCommand } from "../../lib/os/script_runner.ts";
import { makeTestContext, type TestContext } from "../helpers/context.ts";

interface Sandbox {
  dir: string;
  ctx: TestContext;
  run(args: Record<string, unknown>): Promise<ReplyPayload>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** A context whose temppath and base_dir are a fresh directory, removed afterwards. */
async function sandbox(
  options: { conf?: Record<string, Record<string, string>>; signal?: AbortSignal } = {},
): Promise<Sandbox> {
  const dir = await Deno.makeTempDir({ prefix: "dcm-run-script-test-" });
  const ctx = makeTestContext({
    conf: { storage: { temppath: dir, base_dir: dir }, ...options.conf },
    signal: options.signal,
  });
  return {
    dir,
    ctx,
    run: (args) => executeCommand(runScript, args, ctx),
    [Symbol.asyncDispose]: () => Deno.remove(dir, { recursive: true }),
  };
}

function encode(script: string | Uint8Array): { b64script: string; checksum: string } {
  const bytes = typeof script === "string" ? new TextEncoder().encode(script) : script;
  return {
    b64script: btoa(String.fromCharCode(...bytes)),
    checksum: createHash("sha256").update(bytes).digest("hex"),
  };
}

/** Both arguments for a compressed script: checksum of the plain text, data compressed. */
function encodeCompressed(script: string, compress: (b: Uint8Array) => Uint8Array) {
  const plain = new TextEncoder().encode(script);
  return { b64script: encode(compress(plain)).b64script, checksum: encode(plain).checksum };
}

const decodeError = (reply: ReplyPayload) => decodeURIComponent(reply.error_message);

Deno.test("run_script maps exit code, stdout and stderr to the reply", async () => {
  await using box = await sandbox();
  const reply = await box.run(encode("#!/bin/sh\necho out\necho 'err 50%' >&2\nexit 3\n"));
  assert.deepEqual(reply, {
    return_code: 3,
    reply_type: "void",
    reply_object: null,
    message: "out\n",
    error_message: "err 50%\n",
  });
});

Deno.test("run_script accepts an upper-case checksum", async () => {
  await using box = await sandbox();
  const args = encode("#!/bin/sh\necho hi\n");
  const reply = await box.run({ ...args, checksum: args.checksum.toUpperCase() });
  assert.equal(reply.return_code, 0);
  assert.equal(reply.message, "hi\n");
});

Deno.test('run_script compression "gzip" means zlib, and real gzip is accepted', async () => {
  await using box = await sandbox();
  const script = "#!/bin/sh\necho compressed\n";
  for (const compress of [deflateSync, gzipSync]) {
    const reply = await box.run({ ...encodeCompressed(script, compress), compression: "gzip" });
    assert.equal(reply.return_code, 0, reply.error_message);
    assert.equal(reply.message, "compressed\n");
  }
});

Deno.test("run_script rejects an unknown compression and corrupt zlib data", async () => {
  await using box = await sandbox();
  const bzip = await box.run({ ...encode("#!/bin/sh\n"), compression: "bzip2" });
  assert.equal(bzip.return_code, 1);
  assert.match(
    decodeError(bzip),
    /unsupported compression "bzip2"; run_script accepts only "gzip"/,
  );
  const corrupt = await box.run({ ...encode("not zlib"), compression: "gzip" });
  assert.equal(corrupt.return_code, 1);
  assert.match(decodeError(corrupt), /cannot decompress the script \(zlib\)/);
});

Deno.test("run_script refuses a script that decompresses to more than 64 MiB", async () => {
  await using box = await sandbox();
  const bomb = deflateSync(new Uint8Array(64 * 1024 * 1024 + 1));
  const reply = await box.run({ ...encode(bomb), compression: "gzip" });
  assert.equal(reply.return_code, 1);
  assert.match(decodeError(reply), /the decompressed script is larger than 67108864 bytes/);
});

Deno.test("run_script refuses a script whose checksum does not match", async () => {
  await using box = await sandbox();
  const marker = `${box.dir}/ran`;
  const args = encode(`#!/bin/sh\ntouch ${marker}\n`);
  const reply = await box.run({ ...args, checksum: "ab".repeat(32) });
  assert.equal(reply.return_code, 1);
  assert.equal(reply.message, "");
  assert.match(
    decodeError(reply),
    new RegExp(`^checksum did not match: expected ${"ab".repeat(32)}, got ${args.checksum}`),
  );
  await assert.rejects(() => Deno.stat(marker), Deno.errors.NotFound);
});

Deno.test("run_script rejects bad base64, null and missing arguments", async () => {
  await using box = await sandbox();
  const bad = await box.run({ b64script: "%%%not base64", checksum: "00" });
  assert.equal(bad.return_code, 1);
  assert.match(decodeError(bad), /argument 'b64script' is not valid base64/);
  const nulled = await box.run({ b64script: null, checksum: "00" });
  assert.equal(nulled.return_code, 1);
  assert.match(decodeError(nulled), /'b64script' is null/);
  const missing = await box.run({ b64script: encode("x").b64script });
  assert.equal(missing.return_code, 1);
  assert.match(decodeError(missing), /required argument 'checksum' is missing/);
});

Deno.test("run_script passes arguments as strings", async () => {
  await using box = await sandbox();
  const reply = await box.run({
    ...encode('#!/bin/sh\nfor a in "$@"; do echo "[$a]"; done\n'),
    arguments: [1, "two words", true, null, 2.5],
  });
  assert.equal(reply.return_code, 0, reply.error_message);
  assert.equal(reply.message, "[1]\n[two words]\n[True]\n[None]\n[2.5]\n");
});

Deno.test({
  name: "run_script inpython runs the script with python3",
  ignore: findPython() === "",
  async fn() {
    await using box = await sandbox();
    const reply = await box.run({
      ...encode("import sys\nprint('py', sys.argv[1:])\n"),
      inpython: true,
      arguments: ["a"],
    });
    assert.equal(reply.return_code, 0, reply.error_message);
    assert.equal(reply.message, "py ['a']\n");
  },
});

Deno.test("run_script gives the script exactly the eight DCM variables", async () => {
  await using box = await sandbox({ conf: { system: { user: "dcmtest" } } });
  // /proc/$$/environ is what the agent passed at exec, before the shell adds anything.
  const reply = await box.run(encode('#!/bin/sh\ntr "\\0" "\\n" < /proc/$$/environ\n'));
  assert.equal(reply.return_code, 0, reply.error_message);
  const env = Object.fromEntries(
    reply.message.trim().split("\n").map((line) => {
      const at = line.indexOf("=");
      return [line.slice(0, at), line.slice(at + 1)];
    }),
  );
  assert.deepEqual(Object.keys(env).sort(), [
    "DCM_AGENT_PLATFORM_NAME",
    "DCM_AGENT_PLATFORM_VERSION",
    "DCM_BASEDIR",
    "DCM_LOG_FILE",
    "DCM_PYTHON",
    "DCM_TMP_DIR",
    "DCM_USER",
    "PATH",
  ]);
  assert.equal(env.DCM_USER, "dcmtest");
  assert.equal(env.DCM_BASEDIR, box.dir);
  assert.equal(env.DCM_TMP_DIR, box.dir);
  assert.ok(env.DCM_LOG_FILE.startsWith(`${box.dir}/`));
  assert.equal(env.DCM_PYTHON, findPython());
  assert.equal(env.DCM_AGENT_PLATFORM_NAME, "debian");
  assert.equal(env.DCM_AGENT_PLATFORM_VERSION, "12");
  assert.equal(env.PATH, Deno.env.get("PATH"));
});

Deno.test("run_script forwards DCM_LOG_FILE lines and removes the log and the script", async () => {
  await using box = await sandbox();
  const reply = await box.run(encode(
    '#!/bin/sh\nprintf "[tag] one\\n\\n   \\n[tag] two\\r\\n" >> "$DCM_LOG_FILE"\n' +
      'echo "$0"\necho "$DCM_LOG_FILE"\n',
  ));
  assert.equal(reply.return_code, 0, reply.error_message);
  assert.deepEqual(box.ctx.details, ["[tag] one", "[tag] two"]);
  const [script, logFile] = reply.message.trim().split("\n");
  assert.ok(script.startsWith(`${box.dir}/`) && logFile.startsWith(`${box.dir}/`));
  assert.deepEqual([...Deno.readDirSync(box.dir)], []);
});

Deno.test("run_script writes the script owner-only", async () => {
  await using box = await sandbox();
  const reply = await box.run(encode('#!/bin/sh\nstat -c %a "$0"\n'));
  assert.equal(reply.message, "700\n");
});

Deno.test("run_script timeout kills the whole process tree", async () => {
  await using box = await sandbox();
  const started = Date.now();
  const reply = await box.run({
    ...encode("#!/bin/sh\nsleep 30 &\necho $$\necho started >&2\nsleep 30\n"),
    timeout: "0.5",
  });
  assert.ok(Date.now() - started < 4000, "the timeout did not stop the script quickly");
  assert.notEqual(reply.return_code, 0);
  assert.equal(
    reply.error_message,
    "started\nthe script ran longer than 0.5 s and was killed; " +
      "pass a larger 'timeout' argument or raise [jobs]script_timeout",
  );
  assert.deepEqual(await waitGroupGone(Number(reply.message.trim())), []);
  assert.deepEqual([...Deno.readDirSync(box.dir)], []);
});

Deno.test("run_script [jobs]script_timeout applies when no timeout argument is given", async () => {
  await using box = await sandbox({ conf: { jobs: { script_timeout: "0.3" } } });
  const reply = await box.run(encode("#!/bin/sh\nsleep 30\n"));
  assert.notEqual(reply.return_code, 0);
  assert.match(reply.error_message, /ran longer than 0.3 s and was killed/);
});

Deno.test("run_script is cancelled through the context signal", async () => {
  const controller = new AbortController();
  await using box = await sandbox({ signal: controller.signal });
  const timer = setTimeout(() => controller.abort(), 300);
  const started = Date.now();
  const reply = await box.run(encode("#!/bin/sh\nsleep 30 &\necho $$\nsleep 30\n"));
  clearTimeout(timer);
  assert.ok(Date.now() - started < 4000);
  assert.notEqual(reply.return_code, 0);
  assert.match(reply.error_message, /the script was cancelled .* and was killed/);
  assert.deepEqual(await waitGroupGone(Number(reply.message.trim())), []);
});

Deno.test("run_script caps output at [jobs]max_output_bytes with a marker", async () => {
  await using box = await sandbox({ conf: { jobs: { max_output_bytes: "1024" } } });
  const reply = await box.run(encode("#!/bin/sh\nhead -c 100000 /dev/zero | tr '\\0' x\n"));
  assert.equal(reply.return_code, 0);
  assert.equal(
    reply.message,
    "x".repeat(1024) +
      "\n[dcm-agent: output truncated after 1024 bytes; 100000 bytes were written]",
  );
});

Deno.test('run_script runUnderSudo: the string "false" is false, and root never uses sudo', async () => {
  await using box = await sandbox();
  const fakeSudo = `${box.dir}/fake-sudo`;
  await Deno.writeTextFile(fakeSudo, '#!/bin/sh\necho "via sudo"\nshift\nexec "$@"\n', {
    mode: 0o755,
  });
  box.ctx.config.system.sudo = fakeSudo;
  const script = encode("#!/bin/sh\necho direct\n");
  for (const runUnderSudo of ["false", true]) {
    const reply = await box.run({ ...script, runUnderSudo });
    const expected = Deno.uid() === 0 || runUnderSudo === "false"
      ? "direct\n"
      : "via sudo\ndirect\n";
    assert.equal(reply.message, expected);
  }
});

Deno.test("scriptCommand builds [sudo -E] [python3] file [args]", () => {
  const base = { python: "/usr/bin/python3", sudo: "/usr/bin/sudo", arguments: ["x", 1] };
  assert.deepEqual(
    scriptCommand("/tmp/s", { ...base, inpython: true, runUnderSudo: true, isRoot: false }),
    ["/usr/bin/sudo", "-E", "/usr/bin/python3", "/tmp/s", "x", "1"],
  );
  assert.deepEqual(
    scriptCommand("/tmp/s", { ...base, inpython: false, runUnderSudo: true, isRoot: true }),
    ["/tmp/s", "x", "1"],
  );
  assert.throws(
    () =>
      scriptCommand("/tmp/s", {
        ...base,
        python: "",
        inpython: true,
        runUnderSudo: false,
        isRoot: true,
      }),
    /no python3 interpreter was found/,
  );
});

Deno.test("run_script reports an unusable temppath clearly", async () => {
  await using box = await sandbox();
  box.ctx.config.storage.temppath = `${box.dir}/missing`;
  const reply = await box.run(encode("#!/bin/sh\n"));
  assert.equal(reply.return_code, 1);
  assert.match(decodeError(reply), /cannot create a temporary file in \[storage\]temppath/);
});
