/**
 * The journal's alert queue on a real SQLite file: an alert is queued once,
 * survives reopening, moves to the `alerts` table on ACK and is never queued
 * again; the sender keeps a bounded window and retransmits until the ACK.
 */
import assert from "node:assert/strict";
import { AlertSender, Journal } from "../../lib/core/mod.ts";
import type { AlertFields } from "../../lib/protocol/mod.ts";
import { delay, waitFor } from "../helpers/wait.ts";

function alert(i: number): AlertFields {
  return {
    alert_timestamp: 1000 + i,
    level: 10,
    rule: i,
    user: null,
    source_ip: null,
    message: `m${i}`,
    subject: `s${i}`,
    alert_hash: `hash-${i}`,
  };
}

Deno.test("alert queue: dedupe, durable across reopen, ACK moves the alert to the alerts table", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-alertq-" });
  const file = `${dir}/agentdb.sql`;
  try {
    let j = Journal.open(file);
    assert.equal(await j.alerts.enqueue([alert(1), alert(2), alert(1)], "c1"), 2);
    assert.equal(await j.alerts.enqueue([alert(2), alert(3)], "c2"), 1);
    assert.equal(j.alerts.cursor(), "c2");
    const ids = j.alerts.pending(0, 10).map((r) => r.requestId);
    assert.equal(new Set(ids).size, 3);
    j.close();

    j = Journal.open(file);
    const rows = j.alerts.pending(0, 10);
    assert.deepEqual(rows.map((r) => r.requestId), ids, "same ids after reopening");
    assert.deepEqual(rows.map((r) => r.alert.rule), [1, 2, 3]);
    assert.equal(await j.alerts.acknowledge(ids[0]), true);
    assert.equal(await j.alerts.acknowledge(ids[0]), false);
    assert.equal(
      await j.alerts.enqueue([alert(1)], "c3"),
      0,
      "an acknowledged alert is not queued again",
    );
    assert.equal(j.alerts.size(), 2);

    // The sender: window of 1, retransmission, ACK, next alert.
    const sent: Record<string, unknown>[] = [];
    let open = false;
    const sender = new AlertSender({
      store: j.alerts,
      transport: { send: (f) => open && sent.push(f) > 0, isOpen: () => open },
      retransmitSeconds: () => 0.1,
      window: 1,
    });
    sender.start();
    await delay(150);
    assert.equal(sent.length, 0, "nothing is sent while disconnected");
    open = true;
    sender.onOpen();
    await waitFor(() => sent.length >= 2, 2000, "a retransmission");
    assert.ok(sent.every((f) => f.request_id === ids[1] && f.type === "ALERT"));
    assert.equal(sender.inFlight, 1);
    assert.equal(await sender.onAck(ids[1]), true);
    await waitFor(() => sent.some((f) => f.request_id === ids[2]), 2000, "the next alert");
    assert.equal(await sender.onAck(ids[1]), true, "a repeated ACK is not an error");
    assert.equal(await sender.onAck("unknown"), false);
    assert.equal(await sender.onAck(ids[2]), true);
    sender.stop();
    assert.equal(j.alerts.size(), 0);
    j.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
