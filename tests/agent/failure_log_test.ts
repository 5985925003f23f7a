/**
 * The VM's own log tells why a request failed: a real agent (with a real
 * logging.yaml writing agent.log) against the development manager gets an
 * unknown command, a run_script without its checksum, one with a wrong
 * checksum and one that exits 3 printing a secret, plus a misspelled
 * agent.conf key. Each failure is one agent.log line with the request id,
 * the command and the reason, decoded, on one line, with the secret hidden.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { DevManager, RequestNackedError } from "../../scripts/dev_manager.ts";
import { waitFor } from "../helpers/wait.ts";

const LOGGING_YAML = (logfile: string) =>
  `version: 1
formatters:
  simple:
    format: "%(levelname)s %(asctime)s [%(name)s] [(REQUEST=%(dcm_request_id)s)] %(message)s"
handlers:
  file_handler:
    class: logging.handlers.RotatingFileHandler
    level: INFO
    formatter: simple
    filename: ${logfile}
root:
  level: DEBUG
  handlers: [file_handler]
`;

const code = (r: { reply: Record<string, unknown> }) =>
  (r.reply.payload as Record<string, unknown>).return_code;

function script(text: string, checksum?: string): Record<string, unknown> {
  const bytes = new TextEncoder().encode(text);
  return {
    b64script: btoa(String.fromCharCode(...bytes)),
    checksum: checksum ?? createHash("sha256").update(bytes).digest("hex"),
  };
}

Deno.test("every failed or rejected request is one agent.log line with id, command and reason", async () => {
  const base = await Deno.makeTempDir({ prefix: "dcm-failure-log-" });
  const logfile = `${base}/logs/agent.log`;
  await Deno.mkdir(`${base}/etc`, { recursive: true });
  await Deno.writeTextFile(`${base}/etc/logging.yaml`, LOGGING_YAML(logfile));
  await using manager = await DevManager.start();
  const agent = await AgentProcess.start({
    managerUrl: manager.url,
    baseDir: base,
    conf: {
      logging: { configfile: `${base}/etc/logging.yaml` },
      connection: { hearbeat_frequency: "5" },
    },
  });
  try {
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 30_000 }), "the handshake");
    const ids = {
      unknown: "req-unknown-1",
      noChecksum: "req-no-checksum-2",
      mismatch: "req-mismatch-3",
      exit3: "req-exit-3",
    };
    await assert.rejects(
      manager.request("no_such_command", {}, { requestId: ids.unknown }),
      RequestNackedError,
    );
    const { b64script } = script("echo hi\n");
    let r = await manager.request("run_script", { b64script }, { requestId: ids.noChecksum });
    assert.equal(code(r), 1);
    r = await manager.request("run_script", script("echo hi\n", "0".repeat(64)), {
      requestId: ids.mismatch,
    });
    assert.notEqual(code(r), 0);
    r = await manager.request(
      "run_script",
      script("echo 'first line' >&2\necho 'password=hunter2' >&2\nexit 3\n"),
      { requestId: ids.exit3 },
    );
    assert.equal(code(r), 3);

    const lines = () => Deno.readTextFileSync(logfile).split("\n");
    const lineOf = (id: string) => lines().filter((l) => l.includes(`request ${id} `));
    await waitFor(() => lineOf(ids.exit3).length > 0, 10_000).catch(() => {});
    const log = Deno.readTextFileSync(logfile);
    assert.deepEqual(lineOf(ids.unknown).length, 1, log);
    assert.match(
      lineOf(ids.unknown)[0],
      /^WARNING .*\[dcm\.agent\.messaging\] \[\(REQUEST=req-unknown-1\)\] request req-unknown-1 \(no_such_command\) rejected: the command 'no_such_command' is not known to this agent/,
    );
    assert.equal(lineOf(ids.noChecksum).length, 1, log);
    assert.match(
      lineOf(ids.noChecksum)[0],
      /request req-no-checksum-2 \(run_script\) failed with return code 1: .*'checksum'/,
    );
    assert.doesNotMatch(lineOf(ids.noChecksum)[0], /%20|%27/, "decoded for people");
    assert.equal(lineOf(ids.mismatch).length, 1, log);
    assert.match(
      lineOf(ids.mismatch)[0],
      /request req-mismatch-3 \(run_script\) failed .*checksum/,
    );
    assert.equal(lineOf(ids.exit3).length, 1, log);
    assert.match(
      lineOf(ids.exit3)[0],
      /request req-exit-3 \(run_script\) failed with return code 3: first line \| password=<redacted>$/,
    );
    assert.doesNotMatch(log, /hunter2/);
    // The misspelled key, with the closest known key, the file and the line.
    assert.match(
      log,
      /WARNING .* agent\.conf: .*\/etc\/agent\.conf:\d+: \[connection\] hearbeat_frequency is not a known key; did you mean 'heartbeat_frequency'\? It is ignored\./,
    );
  } finally {
    try {
      await agent.stop();
    } finally {
      await agent.cleanup();
      await Deno.remove(base, { recursive: true });
    }
  }
});
