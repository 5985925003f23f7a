/**
 * The exe plugin contract called directly: stderr lines become job details,
 * argument declarations in plugin.conf, and loading `type = exe` sections.
 */
import assert from "node:assert/strict";
import { exePluginModule, parseArgDeclaration, parsePluginConf } from "../../lib/core/mod.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import { makeTestContext } from "../helpers/context.ts";

Deno.test("exe plugin: stderr lines are job details, stdout is the reply", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-exe-" });
  try {
    const path = `${dir}/p`;
    Deno.writeTextFileSync(
      path,
      '#!/bin/sh\nread -r line\necho "got $line" >&2\necho "second" >&2\n' +
        'echo \'{"return_code": 2, "reply_type": "void", "message": "m", "error_message": "e"}\'\n',
      { mode: 0o755 },
    );
    const m = exePluginModule("p", new Map([["path", path], ["arg.n", "int; default=3"]]));
    assert.ok(typeof m !== "string", String(m));
    const ctx = makeTestContext();
    const reply = await executeCommand(m, {}, ctx);
    assert.deepEqual(reply, {
      return_code: 2,
      reply_type: "void",
      reply_object: null,
      message: "m",
      error_message: "e",
    });
    assert.deepEqual(ctx.details, [
      `got {"command":"p","arguments":{"n":3},"request_id":"${ctx.requestId}"}`,
      "second",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("exe plugin: argument declarations and plugin.conf sections", () => {
  assert.deepEqual(parseArgDeclaration('str; required; default="x"; help=the name'), {
    type: "str",
    required: true,
    default: "x",
    help: "the name",
  });
  assert.match(String(parseArgDeclaration("number")), /not an argument type/);
  assert.match(String(parseArgDeclaration("str; default=x")), /not JSON/);
  assert.match(String(parseArgDeclaration("str; sometimes")), /not understood/);
  assert.match(String(exePluginModule("x", new Map([["path", "rel/p"]]))), /absolute/);
  assert.match(
    String(exePluginModule("x", new Map([["path", "/bin/sh"], ["timeout", "0"]]))),
    /timeout/,
  );
  const table = parsePluginConf(
    "[plugin:sh]\ntype = exe\npath = /bin/sh\nlonger_runner = True\n[plugin:gone]\ntype = exe\npath = /no/such/file\n",
    { file: "test.conf", commands: [] },
  );
  assert.deepEqual(table.names(), ["sh"]);
  assert.equal(table.find("sh")?.execution, "long");
});
