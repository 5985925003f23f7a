/**
 * The alert file readers: the three formats, records completed without a
 * following one, position resumed after a restart, and rotation by rename,
 * by truncation and into OSSEC's compressed daily file.
 */
import assert from "node:assert/strict";
import { gzipSync } from "node:zlib";
import { createHash } from "node:crypto";
import {
  type AlertBatch,
  AlertFileFollower,
  type AlertFormat,
  alertHash,
  type FileCursor,
  parseJsonAlert,
} from "../../lib/os/ossec/mod.ts";
import type { AlertFields } from "../../lib/protocol/mod.ts";
import { ossecLogRecord } from "../helpers/ossec_records.ts";

/** Reads every batch the follower has now (up to `steps` reads), committing each. */
async function drain(f: AlertFileFollower, steps = 10): Promise<AlertFields[]> {
  const out: AlertFields[] = [];
  for (let i = 0; i < steps; i++) {
    const b: AlertBatch | null = await f.read();
    if (!b) break;
    out.push(...b.alerts);
    f.commit(b.cursor);
  }
  return out;
}

function follower(path: string, format: AlertFormat, cursor: FileCursor | null = null) {
  const notices: string[] = [];
  const f = new AlertFileFollower(path, { format, cursor, onNotice: (m) => notices.push(m) });
  return { f, notices };
}

Deno.test("ossec: alerts.log records, hash, source_ip/user, last record without a following one", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-ossec-" });
  try {
    const path = `${dir}/alerts.log`;
    const { f, notices } = follower(path, "ossec_log");
    assert.equal(await f.read(), null);
    assert.equal(notices.length, 1, "says once that it waits for the file");
    assert.equal(await f.read(), null);
    assert.equal(notices.length, 1);

    Deno.writeTextFileSync(
      path,
      ossecLogRecord("1733306400.123", {
        rule: 5716,
        level: 5,
        subject: "SSHD authentication failed.",
        srcIp: "10.1.2.3",
        user: "root",
        body: "Dec  4 10:00:00 host sshd[1]: Failed password for root from 10.1.2.3",
      }),
    );
    const [a] = await drain(f);
    assert.equal(a.alert_timestamp, 1733306400123);
    assert.equal(a.rule, 5716);
    assert.equal(a.level, 5);
    assert.equal(a.subject, "SSHD authentication failed.");
    assert.equal(a.source_ip, "10.1.2.3");
    assert.equal(a.user, "root");
    assert.match(a.message, /^2024 Dec 04 10:00:00 host->\/var\/log\/auth.log\n/);
    assert.ok(a.message.endsWith("from 10.1.2.3\n"));
    const expected = createHash("sha256").update(`${a.alert_timestamp}${a.subject}${a.message}`)
      .digest("hex");
    assert.equal(a.alert_hash, expected);
    assert.equal(
      alertHash({ alert_timestamp: 1, subject: "s", message: "m" }),
      createHash("sha256").update("1sm").digest("hex"),
    );

    // A last record without its blank line: sent once the file stops growing, not held back.
    Deno.writeTextFileSync(
      path,
      "** Alert 1733306500.5: - x\nRule: 1002 (level 12) -> 'Unknown problem'\nline one",
      { append: true },
    );
    assert.deepEqual(await drain(f, 1), []);
    const [b] = await drain(f);
    assert.equal(b.rule, 1002);
    assert.equal(b.level, 12);
    assert.equal(b.message, "line one\n");
    assert.equal(b.user, null);
    assert.deepEqual(await drain(f), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ossec: OSSEC alerts.json and Wazuh alerts.json", async () => {
  const ossec = parseJsonAlert(
    JSON.stringify({
      rule: { level: 10, comment: "Multiple failed logins.", sidid: 5720, firedtimes: 1 },
      srcip: "192.0.2.7",
      dstuser: "admin",
      full_log: "sshd[2]: Failed password",
      TimeStamp: 1733306400123,
      location: "/var/log/auth.log",
    }),
    "ossec_json",
  );
  assert.ok(typeof ossec !== "string");
  assert.deepEqual(
    { ...ossec, alert_hash: undefined },
    {
      alert_timestamp: 1733306400123,
      level: 10,
      rule: 5720,
      user: "admin",
      source_ip: "192.0.2.7",
      message: "sshd[2]: Failed password",
      subject: "Multiple failed logins.",
      alert_hash: undefined,
    },
  );
  const wazuh = parseJsonAlert(
    JSON.stringify({
      timestamp: "2024-12-04T10:00:00.250+0000",
      rule: { level: 7, description: "sshd: brute force", id: "5712", groups: ["sshd"] },
      agent: { id: "000", name: "host" },
      data: { srcip: "198.51.100.9", srcuser: "bob" },
      full_log: "Dec  4 10:00:00 host sshd[3]: Invalid user bob",
    }),
    "wazuh_json",
  );
  assert.ok(typeof wazuh !== "string");
  assert.equal(wazuh.alert_timestamp, Date.UTC(2024, 11, 4, 10, 0, 0, 250));
  assert.equal(wazuh.rule, 5712);
  assert.equal(wazuh.level, 7);
  assert.equal(wazuh.subject, "sshd: brute force");
  assert.equal(wazuh.user, "bob");
  assert.equal(wazuh.source_ip, "198.51.100.9");
  assert.match(String(parseJsonAlert("{not json", "wazuh_json")), /not valid JSON/);
  assert.match(String(parseJsonAlert('{"rule":{}}', "wazuh_json")), /timestamp/);

  // Followed as a file: a bad line is reported and skipped, the rest is read.
  const dir = await Deno.makeTempDir({ prefix: "dcm-ossec-" });
  try {
    const path = `${dir}/alerts.json`;
    const line = (i: number) =>
      JSON.stringify({ rule: { level: i, comment: `c${i}`, sidid: i }, TimeStamp: 1000 + i }) +
      "\n";
    Deno.writeTextFileSync(path, line(1) + "garbage\n" + line(2));
    const { f, notices } = follower(path, "ossec_json");
    assert.deepEqual((await drain(f)).map((a) => a.rule), [1, 2]);
    assert.ok(notices.some((n) => n.includes("not valid JSON")));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("ossec: position resumes after a restart; rotation by rename, truncation and .gz loses nothing", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-ossec-" });
  const rec = (i: number) =>
    ossecLogRecord(`17333064${String(i).padStart(2, "0")}.0`, {
      rule: 100 + i,
      level: 10,
      subject: `alert ${i}`,
      body: `body ${i} ${"x".repeat(40)}`,
    });
  try {
    const path = `${dir}/alerts.log`;
    Deno.writeTextFileSync(path, rec(1) + rec(2));
    const first = follower(path, "ossec_log");
    assert.deepEqual((await drain(first.f)).map((a) => a.rule), [101, 102]);
    const saved = first.f.cursor!;
    first.f.close();

    // Restart: only what came after the stored position.
    Deno.writeTextFileSync(path, rec(3), { append: true });
    const second = follower(path, "ossec_log", saved);
    assert.deepEqual((await drain(second.f)).map((a) => a.rule), [103]);

    // Rename + new file while running: the rest of the old file first, then the new one.
    Deno.writeTextFileSync(path, rec(4), { append: true });
    Deno.renameSync(path, `${path}.1`);
    Deno.writeTextFileSync(path, rec(5));
    assert.deepEqual((await drain(second.f)).map((a) => a.rule), [104, 105]);

    // Moved away and deleted (compressed elsewhere): the open handle still has the rest.
    Deno.writeTextFileSync(path, rec(10), { append: true });
    Deno.mkdirSync(`${dir}/elsewhere`);
    Deno.renameSync(path, `${dir}/elsewhere/old.log`);
    Deno.removeSync(`${dir}/elsewhere/old.log`);
    Deno.writeTextFileSync(path, rec(11));
    assert.deepEqual((await drain(second.f)).map((a) => a.rule), [110, 111]);

    // Truncation in place (copytruncate): the copy is found by its first bytes.
    Deno.writeTextFileSync(path, rec(6), { append: true });
    Deno.copyFileSync(path, `${path}.1`);
    Deno.truncateSync(path, 0);
    Deno.writeTextFileSync(path, rec(7), { append: true });
    assert.deepEqual((await drain(second.f)).map((a) => a.rule), [106, 107]);
    const beforeGz = second.f.cursor!;
    second.f.close();

    // While stopped, the file is rotated into OSSEC's compressed daily file.
    Deno.writeTextFileSync(path, rec(8), { append: true });
    const d = new Date();
    const month = d.toLocaleString("en-US", { month: "short" });
    const archive = `${dir}/${d.getFullYear()}/${month}`;
    Deno.mkdirSync(archive, { recursive: true });
    const day = String(d.getDate()).padStart(2, "0");
    Deno.writeFileSync(`${archive}/ossec-alerts-${day}.log.gz`, gzipSync(Deno.readFileSync(path)));
    Deno.removeSync(path);
    Deno.removeSync(`${path}.1`);
    Deno.writeTextFileSync(path, rec(9));
    const third = follower(path, "ossec_log", beforeGz);
    assert.deepEqual((await drain(third.f)).map((a) => a.rule), [108, 109]);
    assert.ok(third.notices.some((n) => n.includes("rotated")));
    third.f.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
