import assert from "node:assert/strict";
import {
  compareLogLevel,
  configure,
  getLogger,
  type LogRecord,
  reset,
  type Sink,
} from "../lib/log.ts";

function capture(): { records: LogRecord[]; sink: (r: LogRecord) => void } {
  const records: LogRecord[] = [];
  return { records, sink: (r) => void records.push(r) };
}

Deno.test("log: a record goes to the nearest configured category, filtered by its level", async () => {
  const root = capture();
  const agent = capture();
  await configure({
    sinks: { root: root.sink, agent: agent.sink },
    loggers: [
      { category: [], sinks: ["root"], lowestLevel: "warning" },
      {
        category: ["dcm", "agent"],
        sinks: ["agent"],
        parentSinks: "override",
        lowestLevel: "info",
      },
    ],
  });
  try {
    getLogger(["dcm", "agent", "connection"]).info("hello {who}", { who: "manager" });
    getLogger(["dcm", "agent"]).debug("dropped");
    getLogger(["other"]).info("dropped by root's level");
    getLogger(["other"]).error("kept");
    assert.deepEqual(agent.records.map((r) => r.message), [["hello ", "manager", ""]]);
    assert.deepEqual(agent.records[0].category, ["dcm", "agent", "connection"]);
    assert.equal(agent.records[0].rawMessage, "hello {who}");
    assert.deepEqual(root.records.map((r) => r.message), [["kept"]], "override stops at dcm.agent");
  } finally {
    await reset();
  }
});

Deno.test("log: inherit also feeds the parent's sinks; a null level logs nothing", async () => {
  const root = capture();
  const child = capture();
  await configure({
    sinks: { root: root.sink, child: child.sink },
    loggers: [
      { category: [], sinks: ["root"], lowestLevel: "info" },
      { category: ["a"], sinks: ["child"], lowestLevel: "info" },
      { category: ["a", "quiet"], sinks: ["child"], parentSinks: "override", lowestLevel: null },
    ],
  });
  try {
    getLogger("a.b").warn("both");
    getLogger(["a", "quiet"]).fatal("nobody");
    assert.equal(child.records.length, 1);
    assert.equal(root.records.length, 1);
    assert.equal(child.records[0].level, "warning");
    assert.equal(getLogger(["a", "quiet"]).isEnabledFor("fatal"), false);
    assert.equal(getLogger("a.b").isEnabledFor("debug"), false);
    assert.equal(getLogger("a.b").isEnabledFor("info"), true);
  } finally {
    await reset();
  }
});

Deno.test("log: lazy messages are built only when enabled; braces can be escaped", async () => {
  const out = capture();
  await configure({
    sinks: { s: out.sink },
    loggers: [{ category: ["x"], sinks: ["s"], lowestLevel: "info" }],
  });
  try {
    let built = 0;
    getLogger("x").debug((l) => {
      built++;
      return l`never ${1}`;
    });
    assert.equal(built, 0);
    getLogger("x").info((l) => l`value ${42} end`);
    getLogger("x").info("literal {{braces}} and {missing}");
    assert.deepEqual(out.records.map((r) => r.message), [
      ["value ", 42, " end"],
      ["literal {braces} and ", undefined, ""],
    ]);
  } finally {
    await reset();
  }
});

Deno.test("log: a throwing sink never breaks the caller; reset silences everything", async () => {
  const out = capture();
  await configure({
    sinks: {
      bad: () => {
        throw new Error("disk full");
      },
      good: out.sink,
    },
    loggers: [{ category: [], sinks: ["bad", "good"], lowestLevel: "trace" }],
  });
  getLogger("any").error("still delivered");
  assert.equal(out.records.length, 1);
  await reset();
  getLogger("any").fatal("nobody listens");
  assert.equal(out.records.length, 1);
  assert.ok(compareLogLevel("debug", "info") < 0 && compareLogLevel("fatal", "error") > 0);
  await assert.rejects(
    configure({ sinks: {} as Record<string, Sink>, loggers: [{ category: "x", sinks: ["nope"] }] }),
    /unknown sink 'nope'/,
  );
});
