/**
 * Intrusion-detection alerts end to end: the real agent follows an alert file
 * in a throw-away directory and sends ALERT frames to the development manager
 * over a real websocket, with the real SQLite journal underneath.
 */
import assert from "node:assert/strict";
import { DatabaseSync } from "node:sqlite";
import { delay, waitFor } from "../helpers/wait.ts";
import { DevManager, type Frame } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { ossecLogRecord } from "../helpers/ossec_records.ts";

function alertConf(dir: string, extra: Record<string, string> = {}) {
  return {
    intrusion_detection: {
      ossec: "True",
      alert_file: `${dir}/alerts.log`,
      alert_format: "ossec_log",
      alert_threshold: "7",
      max_process_time: "0.1",
      ossec_control: `${dir}/ossec-control`,
      ...extra,
    },
  };
}

function alertsIn(m: DevManager, since = 0): Frame[] {
  return m.frames.slice(since).filter((r) => r.dir === "in" && (r.frame as Frame).type === "ALERT")
    .map((r) => r.frame as Frame);
}

function rssKiB(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(Deno.readTextFileSync(`/proc/${pid}/status`));
  return m ? Number(m[1]) : NaN;
}

function queued(dbfile: string): number {
  const db = new DatabaseSync(dbfile, { readOnly: true });
  try {
    return (db.prepare("SELECT count(*) AS n FROM alert_queue").get() as { n: number }).n;
  } finally {
    db.close();
  }
}

Deno.test("alerts: threshold, last alert at once, retransmission until ALERT_ACK, crash re-sends only the unacknowledged", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-alerts-e2e-" });
  const manager = await DevManager.start();
  let agent: AgentProcess | undefined;
  try {
    const marker = `${dir}/ossec-started`;
    Deno.writeTextFileSync(`${dir}/ossec-control`, `#!/bin/sh\necho "$@" > '${marker}'\n`, {
      mode: 0o755,
    });
    agent = await AgentProcess.start({ managerUrl: manager.url, conf: alertConf(dir) });
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 15000 }), "handshaking");
    await waitFor(() => Deno.readTextFileSync(marker).trim() === "start", 5000, "ossec-control");

    const rec = (epoch: string, rule: number, level: number) =>
      ossecLogRecord(epoch, { rule, level, subject: `rule ${rule}`, body: `event ${rule}` });
    // Level 3 stays local; 7 (= threshold) and 12 go out. The last one has no
    // blank line after it and no record following it.
    Deno.writeTextFileSync(
      `${dir}/alerts.log`,
      rec("1733306400.1", 3001, 3) + rec("1733306401.2", 3002, 7) + rec("1733306402.3", 3003, 12)
        .trimEnd(),
    );
    const a7 = await manager.waitForFrame((f) => f.type === "ALERT" && f.rule === 3002);
    const a12 = await manager.waitForFrame((f) => f.type === "ALERT" && f.rule === 3003);
    assert.deepEqual(Object.keys(a12).sort(), [
      "alert_hash",
      "alert_timestamp",
      "current_timestamp",
      "level",
      "message",
      "request_id",
      "rule",
      "source_ip",
      "subject",
      "type",
      "user",
    ]);
    assert.equal(a12.alert_timestamp, 1733306402300);
    assert.equal(a12.level, 12);
    assert.equal(a12.subject, "rule 3003");

    // No ACK: sent again (retransmission_timeout is 1 s in tests) with the same request_id.
    await manager.waitForFrame(
      (f) =>
        f.type === "ALERT" && f.request_id === a7.request_id &&
        f.current_timestamp !== a7.current_timestamp,
      { timeoutMs: 5000 },
    );
    assert.ok(!alertsIn(manager).some((f) => f.rule === 3001), "level 3 is below the threshold");

    // ACK stops it.
    manager.send({ type: "ALERT_ACK", request_id: a7.request_id });
    await delay(300);
    const afterAck = manager.frameCount;
    await delay(2500);
    assert.equal(alertsIn(manager, afterAck).filter((f) => f.rule === 3002).length, 0);
    assert.ok(
      alertsIn(manager, afterAck).some((f) => f.rule === 3003),
      "12 is still retransmitted",
    );

    // An unknown alert id is NACKed.
    manager.send({ type: "ALERT_ACK", request_id: "no-such-alert" });
    await manager.waitForFrame((f) => f.type === "NACK" && f.request_id === "no-such-alert");

    // Crash and restart: only the unacknowledged alert comes again, same id and hash.
    agent.kill("SIGKILL");
    await agent.wait();
    const beforeRestart = manager.frameCount;
    agent = await AgentProcess.start({
      managerUrl: manager.url,
      baseDir: agent.baseDir,
      conf: alertConf(dir),
    });
    const again = await agent.whileRunning(
      manager.waitForFrame((f) => f.type === "ALERT", { since: beforeRestart, timeoutMs: 15000 }),
      "waiting for the alert after the restart",
    );
    assert.equal(again.request_id, a12.request_id);
    assert.equal(again.alert_hash, a12.alert_hash);
    manager.send({ type: "ALERT_ACK", request_id: a12.request_id });
    await delay(2500);
    const resent = alertsIn(manager, beforeRestart);
    assert.ok(resent.every((f) => f.rule === 3003), "the acknowledged alert is never sent again");
    const lastAt = manager.frameCount;
    await delay(1500);
    assert.equal(alertsIn(manager, lastAt).length, 0, "nothing is sent after the last ACK");
    assert.equal(queued(`${agent.baseDir}/secure/agentdb.sql`), 0);
  } finally {
    await agent?.stop();
    await agent?.cleanup();
    await manager.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alerts: OSSEC alerts.json with rotation by rename and by truncation, then Wazuh alerts.json after a SIGHUP", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-alerts-e2e-" });
  const manager = await DevManager.start({ autoAckAlerts: true });
  let agent: AgentProcess | undefined;
  try {
    const path = `${dir}/alerts.json`;
    const ossec = (i: number) =>
      JSON.stringify({
        rule: { level: 10, comment: `ossec ${i}`, sidid: 100 + i },
        srcip: "192.0.2.1",
        dstuser: "root",
        full_log: `log ${i}`,
        TimeStamp: 1733306400000 + i,
      }) + "\n";
    Deno.writeTextFileSync(path, ossec(1) + ossec(2));
    const conf = alertConf(dir, { alert_file: path, alert_format: "ossec_json" });
    agent = await AgentProcess.start({ managerUrl: manager.url, conf });
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 15000 }), "handshaking");
    const rules = () => new Set(alertsIn(manager).map((f) => f.rule));
    await waitFor(() => rules().has(101) && rules().has(102), 10000, "alerts 101 and 102");
    const first = alertsIn(manager).find((f) => f.rule === 101)!;
    assert.equal(first.source_ip, "192.0.2.1");
    assert.equal(first.user, "root");
    assert.equal(first.message, "log 1");

    // Rename + new file: the line written just before the rename is not lost.
    Deno.writeTextFileSync(path, ossec(3), { append: true });
    Deno.renameSync(path, `${path}.1`);
    Deno.writeTextFileSync(path, ossec(4));
    await waitFor(() => rules().has(103) && rules().has(104), 10000, "alerts 103 and 104");
    // Truncation in place, then new lines.
    Deno.truncateSync(path, 0);
    Deno.writeTextFileSync(path, ossec(5));
    await waitFor(() => rules().has(105), 10000, "alert 105 after truncation");
    const hashes = alertsIn(manager).map((f) => f.alert_hash);
    assert.equal(new Set(hashes).size, 5);

    // SIGHUP onto a Wazuh file: the new file and format apply without a restart.
    const wpath = `${dir}/wazuh-alerts.json`;
    Deno.writeTextFileSync(
      wpath,
      JSON.stringify({
        timestamp: "2024-12-04T10:00:00.000+0000",
        rule: { level: 9, description: "wazuh rule", id: "5712" },
        data: { srcip: "198.51.100.1", dstuser: "alice" },
        full_log: "wazuh log",
      }) + "\n",
    );
    const confText = Deno.readTextFileSync(agent.confFile);
    Deno.writeTextFileSync(
      agent.confFile,
      confText.replace(/^alert_file=.*$/m, `alert_file=${wpath}`)
        .replace(/^alert_format=.*$/m, "alert_format=wazuh_json"),
    );
    agent.kill("SIGHUP");
    const w = await agent.whileRunning(
      manager.waitForFrame((f) => f.type === "ALERT" && f.rule === 5712, { timeoutMs: 15000 }),
      "waiting for the Wazuh alert",
    );
    assert.equal(w.alert_timestamp, Date.UTC(2024, 11, 4, 10));
    assert.equal(w.user, "alice");
    assert.equal(w.source_ip, "198.51.100.1");
    assert.equal(w.subject, "wazuh rule");
  } finally {
    await agent?.stop();
    await agent?.cleanup();
    await manager.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("alerts: a burst of 10,000 alerts while the manager is away is delivered in full, memory bounded", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-alerts-e2e-" });
  let manager = await DevManager.start({ autoAckAlerts: true, maxFrames: 100_000 });
  const port = manager.port;
  let agent: AgentProcess | undefined;
  try {
    const path = `${dir}/alerts.json`;
    Deno.writeTextFileSync(path, "");
    agent = await AgentProcess.start({
      managerUrl: manager.url,
      conf: alertConf(dir, { alert_file: path, alert_format: "wazuh_json", alert_threshold: "0" }),
    });
    await agent.whileRunning(manager.waitForHandshake({ timeoutMs: 15000 }), "handshaking");
    await manager.close(); // The manager goes away.
    await delay(500);
    const rssBefore = rssKiB(agent.pid);

    const N = 10_000;
    const lines: string[] = [];
    for (let i = 0; i < N; i++) {
      lines.push(JSON.stringify({
        timestamp: new Date(Date.UTC(2024, 11, 4) + i).toISOString(),
        rule: { level: 5 + (i % 10), description: `burst ${i}`, id: String(i) },
        data: { srcip: "203.0.113.5" },
        full_log: `burst line ${i} ${"y".repeat(200)}`,
      }));
    }
    Deno.writeTextFileSync(path, lines.join("\n") + "\n", { append: true });
    const dbfile = `${agent.baseDir}/secure/agentdb.sql`;
    await agent.whileRunning(
      waitFor(() => queued(dbfile) === N, 60000, `${N} alerts queued in the journal`),
      "queueing the burst",
    );
    const rssQueued = rssKiB(agent.pid);

    // The manager comes back on the same port.
    manager = await DevManager.start({ port, autoAckAlerts: true, maxFrames: 100_000 });
    const started = performance.now();
    const received = new Set<unknown>();
    await agent.whileRunning(
      waitFor(
        () => {
          for (const f of alertsIn(manager)) received.add(f.alert_hash);
          return received.size === N && queued(dbfile) === 0;
        },
        120000,
        `all ${N} alerts acknowledged`,
      ),
      "delivering the burst",
    );
    const seconds = (performance.now() - started) / 1000;
    const rssAfter = rssKiB(agent.pid);
    console.log(
      `10,000 alerts: RSS ${rssBefore} KiB before, ${rssQueued} KiB queued, ${rssAfter} KiB after delivery (${
        seconds.toFixed(1)
      } s to deliver)`,
    );
    // The window in memory is 100 alerts; 10,000 held in memory would be > 2 MB of text alone.
    assert.ok(rssAfter - rssBefore < 64 * 1024, `RSS grew by ${rssAfter - rssBefore} KiB`);
  } finally {
    await agent?.stop();
    await agent?.cleanup();
    await manager.close();
    await Deno.remove(dir, { recursive: true });
  }
});
