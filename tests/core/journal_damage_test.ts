/**
 * A damaged journal never stops the agent: garbage, a truncated file (a
 * half-written page) and a journal of a newer format are moved aside, kept, and
 * a fresh journal starts; the agent logs it and tells the manager, and
 * `dcm-agent status` shows when and why. A journal the agent may not open is a
 * clear error and is left alone.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { Journal } from "../../lib/core/journal.ts";
import { JOURNAL_FORMAT } from "../../lib/core/journal_schema.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { DevManager } from "../../scripts/dev_manager.ts";
import { runProgram } from "../helpers/run.ts";

function tempFile(): string {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-journal-damage-" });
  Deno.chmodSync(dir, 0o755);
  return `${dir}/agentdb.sql`;
}

/** A real journal with a few rows, closed. */
async function goodJournal(file: string): Promise<void> {
  const j = Journal.open(file);
  for (let i = 0; i < 300; i++) {
    await j.insertAcked(`r-${i}`, { pad: "x".repeat(200) }, { agentId: "a", started: true });
  }
  j.close();
}

function movedAside(file: string): string[] {
  const dir = file.slice(0, file.lastIndexOf("/"));
  return [...Deno.readDirSync(dir)].map((e) => e.name).filter((n) => n.includes(".damaged-"));
}

const DAMAGES: [string, (file: string) => Promise<void>, RegExp][] = [
  ["garbage bytes", (f) => {
    Deno.writeFileSync(f, crypto.getRandomValues(new Uint8Array(8192)));
    return Promise.resolve();
  }, /not a database|check failed|malformed/],
  ["a truncated, half-written page", async (f) => {
    await goodJournal(f);
    const data = Deno.readFileSync(f);
    Deno.writeFileSync(f, data.subarray(0, Math.floor(data.length * 0.6) + 100));
  }, /malformed|check failed/],
  ["a newer journal format", async (f) => {
    await goodJournal(f);
    const db = new DatabaseSync(f);
    db.exec(`PRAGMA user_version=${JOURNAL_FORMAT + 1}`);
    db.close();
  }, /newer agent/],
];

for (const [what, damage, reason] of DAMAGES) {
  Deno.test(`journal: ${what} is moved aside, kept, and a fresh journal starts`, async () => {
    const file = tempFile();
    await damage(file);
    const before = Deno.readFileSync(file);
    assert.throws(() => Journal.open(file), reason, "the plain open refuses it");
    const j = Journal.openForAgent(file);
    try {
      assert.ok(j.reset, "the reset is reported");
      assert.match(j.reset.reason, reason);
      assert.deepEqual(Deno.readFileSync(j.reset.savedAs), before, "the damaged file is kept");
      assert.deepEqual(movedAside(file).filter((n) => !n.endsWith("-wal")), [
        j.reset.savedAs.slice(j.reset.savedAs.lastIndexOf("/") + 1),
      ]);
      assert.equal(j.get("r-1"), undefined, "the fresh journal is empty");
      await j.insertAcked("new", {}, { agentId: null });
      assert.equal(j.get("new")?.state, "ACKED");
      assert.deepEqual(j.lastReset(), j.reset, "the event is recorded for status");
    } finally {
      j.close();
    }
    // The next start finds a sound journal and moves nothing.
    const again = Journal.openForAgent(file);
    assert.equal(again.reset, null);
    assert.equal(again.get("new")?.state, "ACKED");
    again.close();
  });
}

Deno.test("journal: the original agent's format (user_version 0) and ours are kept", async () => {
  const file = tempFile();
  await goodJournal(file);
  const db = new DatabaseSync(file);
  db.exec("PRAGMA user_version=0"); // as the original agent leaves it
  db.close();
  const j = Journal.openForAgent(file);
  assert.equal(j.reset, null);
  assert.equal(j.get("r-7")?.state, "ACKED");
  j.close();
  assert.deepEqual(movedAside(file), []);
});

Deno.test("journal: one the agent may not open is a clear error and is left alone", async () => {
  const file = tempFile();
  await goodJournal(file);
  Deno.chmodSync(file, 0o600);
  const before = Deno.readFileSync(file);
  // Root may open any file: try as an unprivileged user, the way a wrong owner shows.
  const code = `import { Journal } from ${
    JSON.stringify(import.meta.resolve("../../lib/core/journal.ts"))
  };
    try { Journal.openForAgent(${JSON.stringify(file)}); console.log("OPENED"); }
    catch (e) { console.log("ERROR " + e.message); }`;
  const res = await runProgram("setpriv", [
    "--reuid=nobody",
    "--regid=nogroup",
    "--clear-groups",
    Deno.execPath(),
    "eval",
    "--no-config",
    code,
  ], { env: { DENO_DIR: Deno.env.get("DENO_DIR") ?? `${Deno.env.get("HOME")}/.cache/deno` } });
  assert.match(res.stdout, /^ERROR cannot open the request journal .* for writing: .*permission/im);
  assert.match(res.stdout, /left as it is/);
  assert.deepEqual(Deno.readFileSync(file), before);
  assert.deepEqual(movedAside(file), []);
});

Deno.test("agent: a damaged journal at start-up: fresh journal, ERROR log, console LOG line, status", async () => {
  const manager = await DevManager.start();
  const baseDir = await Deno.makeTempDir({ prefix: "dcm-agent-test-" });
  await Deno.mkdir(`${baseDir}/secure`, { recursive: true, mode: 0o700 });
  Deno.writeFileSync(
    `${baseDir}/secure/agentdb.sql`,
    new TextEncoder().encode("garbage ".repeat(999)),
  );
  const agent = await AgentProcess.start({ managerUrl: manager.url, baseDir });
  try {
    await manager.waitForHandshake({ timeoutMs: 20000 });
    const log = await manager.waitForFrame((f) =>
      f.type === "LOG" && /journal was damaged/.test(decodeURIComponent(String(f.message)))
    );
    assert.equal(log.level, "ERROR");
    const hb = await manager.request("heartbeat", {}, { retransmitSeconds: 1 });
    assert.equal((hb.reply.payload as Record<string, unknown>).return_code, 0);
    assert.match(agent.output(), /journal was damaged .* moved to .*agentdb\.sql\.damaged-/);
    const status = await runProgram(Deno.execPath(), [
      "run",
      "-A",
      `${import.meta.dirname}/../../main.ts`,
      "status",
      "-c",
      `${baseDir}/etc/agent.conf`,
    ]);
    assert.match(
      status.stdout,
      /Journal replaced at .*: .*(not a database|check failed).*kept as /,
    );
  } finally {
    await agent.stop();
    await Deno.remove(baseDir, { recursive: true });
    await manager.close();
  }
});
