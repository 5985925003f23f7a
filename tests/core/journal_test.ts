import assert from "node:assert/strict";
import { Journal, lostReply, timestamp } from "../../lib/core/journal.ts";
import { makeReply } from "../../lib/protocol/messages.ts";

function tempJournal(): { journal: Journal; dir: string; file: string } {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-journal-" });
  const file = `${dir}/secure/agentdb.sql`;
  return { journal: Journal.open(file), dir, file };
}

const doc = (id: string) => ({
  type: "REQUEST",
  request_id: id,
  payload: { command: "heartbeat", arguments: {} },
});

Deno.test("journal: row lifecycle keeps the stored reply after the ACK", async () => {
  const { journal, dir } = tempJournal();
  try {
    await journal.insertAcked("r1", doc("r1"), { agentId: "A-1" });
    assert.equal(journal.get("r1")?.state, "ACKED");
    assert.equal(journal.get("r1")?.started, false);
    await journal.markStarted("r1");
    assert.equal(journal.get("r1")?.started, true);
    const reply = makeReply(0, { reply_type: "string", reply_object: "STARTING" });
    await journal.storeReply("r1", reply, { messageId: "m1" });
    assert.deepEqual(journal.pendingReplies().map((r) => r.requestId), ["r1"]);
    await journal.setReplyState("r1", "REPLY_ACKED");
    const row = journal.get("r1")!;
    assert.equal(row.state, "REPLY_ACKED");
    assert.deepEqual(row.reply, reply, "the reply survives the ACK (the original nulled it)");
    assert.equal(row.replyMessageId, "m1");
    assert.deepEqual(journal.countByState(), { REPLY_ACKED: 1 });
    assert.deepEqual(journal.statesOfCommand("heartbeat"), ["REPLY_ACKED"]);
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: writes of one tick share one commit and all resolve", async () => {
  const { journal, dir } = tempJournal();
  try {
    await Promise.all(
      Array.from(
        { length: 50 },
        (_, i) => journal.insertAcked(`b${i}`, doc(`b${i}`), { agentId: "A" }),
      ),
    );
    assert.equal(journal.countByState().ACKED, 50);
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: a duplicate insert is refused, not overwritten", async () => {
  const { journal, dir } = tempJournal();
  try {
    await journal.insertAcked("d1", doc("d1"), { agentId: "A" });
    await assert.rejects(journal.insertAcked("d1", doc("d1"), { agentId: "A" }));
    assert.equal(journal.countByState().ACKED, 1);
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: recovery turns started rows into lost replies and returns unstarted ones", async () => {
  const { journal, dir, file } = tempJournal();
  await journal.insertAcked("started", doc("started"), { agentId: "A" });
  await journal.markStarted("started");
  await journal.insertAcked("queued", doc("queued"), { agentId: "A" });
  journal.close();
  const again = Journal.open(file);
  try {
    const rec = again.recover();
    assert.equal(rec.lost, 1);
    assert.deepEqual(rec.notStarted.map((r) => r.requestId), ["queued"]);
    const lost = again.get("started")!;
    assert.equal(lost.state, "REPLY");
    assert.equal(typeof lost.reply, "object", "the lost reply is an object, never a JSON string");
    assert.equal(lost.reply!.return_code, 1);
    assert.equal(
      (lost.reply as unknown as Record<string, unknown>).Exception,
      lostReply().Exception,
    );
  } finally {
    again.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: sweep removes only old terminal rows, never in-flight ones", async () => {
  const { journal, dir } = tempJournal();
  try {
    await journal.insertAcked("old-done", doc("old-done"), { agentId: "A" });
    await journal.storeReply("old-done", makeReply(0), { messageId: "m" });
    await journal.setReplyState("old-done", "REPLY_ACKED");
    await journal.insertAcked("old-running", doc("old-running"), { agentId: "A" });
    await journal.insertAcked("old-replied", doc("old-replied"), { agentId: "A" });
    await journal.storeReply("old-replied", makeReply(0), { messageId: "m2" });
    const future = new Date(Date.now() + 20_000 * 1000);
    assert.equal(
      journal.sweep(14400, new Date()),
      0,
      "nothing is older than db_timeout seconds yet",
    );
    assert.equal(journal.sweep(14400, future), 1);
    assert.equal(journal.get("old-done"), undefined);
    assert.ok(journal.get("old-running"));
    assert.ok(journal.get("old-replied"));
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: purgeOtherAgents keeps unfinished rows of another agent id", async () => {
  const { journal, dir } = tempJournal();
  try {
    await journal.insertAcked("mine", doc("mine"), { agentId: "A" });
    await journal.insertAcked("theirs-running", doc("theirs-running"), { agentId: "B" });
    await journal.insertAcked("theirs-done", doc("theirs-done"), { agentId: "B" });
    await journal.storeReply("theirs-done", makeReply(0), { messageId: "m" });
    await journal.setReplyState("theirs-done", "REPLY_ACKED");
    await journal.purgeOtherAgents("A");
    assert.ok(journal.get("mine"));
    assert.ok(journal.get("theirs-running"));
    assert.equal(journal.get("theirs-done"), undefined);
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: opens a database created by the original agent's schema", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-journal-" });
  const file = `${dir}/agentdb.sql`;
  const { DatabaseSync } = await import("node:sqlite");
  const db = new DatabaseSync(file);
  db.exec(
    "CREATE TABLE requests(request_id TEXT PRIMARY KEY NOT NULL, creation_time date, request_doc text, reply_doc text, state string, agent_id string, last_update_time date)",
  );
  // The original stored reply_doc as JSON text that it later re-sent as a string.
  db.prepare("INSERT INTO requests VALUES(?, ?, ?, ?, ?, ?, ?)").run(
    "py1",
    timestamp(),
    JSON.stringify(doc("py1")),
    JSON.stringify(JSON.stringify({ return_code: 0, reply_type: "void" })),
    "REPLY",
    "A",
    timestamp(),
  );
  // The original ran every command right after its ACK: an ACKED row was running.
  db.prepare("INSERT INTO requests VALUES(?, ?, ?, NULL, 'ACKED', 'A', ?)").run(
    "py2",
    timestamp(),
    JSON.stringify(doc("py2")),
    timestamp(),
  );
  db.close();
  const journal = Journal.open(file);
  try {
    const row = journal.get("py1")!;
    assert.equal(row.state, "REPLY");
    assert.deepEqual(
      row.reply,
      { return_code: 0, reply_type: "void" },
      "double-encoded replies are unwrapped",
    );
    const rec = journal.recover();
    assert.equal(rec.lost, 1, "the original's ACKED row is a lost reply");
    assert.deepEqual(rec.notStarted, [], "and is never run again");
    assert.equal(journal.get("py2")?.state, "REPLY");
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("journal: a SIGKILL right after a commit loses nothing that was acknowledged", async () => {
  const dir = Deno.makeTempDirSync({ prefix: "dcm-journal-" });
  const file = `${dir}/agentdb.sql`;
  const url = new URL("../../lib/core/journal.ts", import.meta.url).href;
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "eval",
      `import { Journal } from "${url}";
       const j = Journal.open(${JSON.stringify(file)});
       for (let i = 0; i < 20; i++) await j.insertAcked("k" + i, {}, { agentId: "A" });
       console.log("committed");
       // Keep writing until killed: the kill lands in the middle of a transaction.
       for (let i = 0; ; i++) await j.insertAcked("more" + i, {}, { agentId: "A" });`,
    ],
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let seen = "";
  while (!seen.includes("committed")) {
    const { value, done } = await reader.read();
    if (done) break;
    seen += value;
  }
  child.kill("SIGKILL");
  await child.status;
  reader.releaseLock();
  await child.stdout.cancel().catch(() => {});
  const journal = Journal.open(file);
  try {
    for (let i = 0; i < 20; i++) assert.ok(journal.get(`k${i}`), `k${i} survived the kill`);
    assert.ok(journal.countByState().ACKED >= 20);
  } finally {
    journal.close();
    Deno.removeSync(dir, { recursive: true });
  }
});
