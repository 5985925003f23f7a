/** Tests for lib/rotating_file_sink.ts: Python RotatingFileHandler rotation, directory creation, no loss at dispose. */
import assert from "node:assert/strict";
import { readTextIfPresent as read } from "../../lib/os/fs_stat.ts";
import type { LogRecord } from "../../lib/logging/logger.ts";
import { createRotatingFileSink } from "../../lib/logging/rotating_file_sink.ts";

const TMP = Deno.makeTempDirSync({ prefix: "dcm_sink_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

function record(text: string): LogRecord {
  return {
    category: ["test"],
    level: "info",
    message: [text],
    properties: {},
    timestamp: Date.now(),
  };
}

const line = (record: LogRecord) => `${record.message[0]}\n`;

Deno.test("rotates name to name.1 … name.N, newest first, keeping backupCount files", () => {
  const path = `${Deno.makeTempDirSync({ dir: TMP })}/agent.log`;
  // Each line is 4 bytes; with maxBytes 10 a file holds two lines (a third would reach 12).
  const sink = createRotatingFileSink(path, { formatter: line, maxBytes: 10, backupCount: 2 });
  for (let i = 0; i < 9; i++) sink(record(`r:${i}`));
  sink[Symbol.dispose]();
  assert.equal(read(path), "r:8\n");
  assert.equal(read(`${path}.1`), "r:6\nr:7\n");
  assert.equal(read(`${path}.2`), "r:4\nr:5\n");
  assert.equal(read(`${path}.3`), undefined, "no more than backupCount backups");
});

Deno.test("counts the bytes already in the file when it is reopened", () => {
  const path = `${Deno.makeTempDirSync({ dir: TMP })}/agent.log`;
  Deno.writeTextFileSync(path, "old\nold\n");
  const sink = createRotatingFileSink(path, { formatter: line, maxBytes: 10, backupCount: 1 });
  sink(record("new"));
  sink[Symbol.dispose]();
  assert.equal(read(`${path}.1`), "old\nold\n");
  assert.equal(read(path), "new\n");
});

Deno.test("a zero maxBytes or backupCount never rotates, as in Python", () => {
  for (const options of [{ maxBytes: 0, backupCount: 3 }, { maxBytes: 5, backupCount: 0 }]) {
    const path = `${Deno.makeTempDirSync({ dir: TMP })}/agent.log`;
    const sink = createRotatingFileSink(path, { formatter: line, ...options });
    for (let i = 0; i < 5; i++) sink(record(`r:${i}`));
    sink[Symbol.dispose]();
    assert.equal(read(path), "r:0\nr:1\nr:2\nr:3\nr:4\n");
    assert.equal(read(`${path}.1`), undefined);
  }
});

Deno.test("a record longer than maxBytes is written whole to a fresh file", () => {
  const path = `${Deno.makeTempDirSync({ dir: TMP })}/agent.log`;
  const sink = createRotatingFileSink(path, { formatter: line, maxBytes: 4, backupCount: 1 });
  sink(record("a long record"));
  sink(record("another long one"));
  sink[Symbol.dispose]();
  assert.equal(read(`${path}.1`), "a long record\n");
  assert.equal(read(path), "another long one\n");
});

Deno.test("creates missing directories and loses nothing at dispose", () => {
  const path = `${Deno.makeTempDirSync({ dir: TMP })}/deep/er/agent.log`;
  const sink = createRotatingFileSink(path, { formatter: line });
  const expected: string[] = [];
  for (let i = 0; i < 1000; i++) {
    sink(record(`record ${i}`));
    expected.push(`record ${i}\n`);
  }
  sink[Symbol.dispose]();
  sink(record("after dispose"));
  assert.equal(read(path), expected.join(""), "every record, in order, and none after dispose");
});

Deno.test("fails at creation when the file cannot be opened", () => {
  const dir = Deno.makeTempDirSync({ dir: TMP });
  Deno.writeTextFileSync(`${dir}/blocker`, "a file where a directory should be");
  assert.throws(() => createRotatingFileSink(`${dir}/blocker/agent.log`, { formatter: line }));
});

Deno.test({
  name: "gives each file a rotation creates to the owner",
  ignore: Deno.uid() !== 0,
  fn() {
    const path = `${Deno.makeTempDirSync({ dir: TMP })}/agent.log`;
    const owner = { uid: 65534, gid: 65534 };
    const sink = createRotatingFileSink(path, {
      formatter: line,
      maxBytes: 5,
      backupCount: 1,
      owner,
    });
    sink(record("one"));
    sink(record("two"));
    sink[Symbol.dispose]();
    assert.equal(Deno.statSync(path).uid, owner.uid);
    assert.equal(read(path), "two\n");
  },
});
