import assert from "node:assert/strict";
import {
  compareLogLevel,
  configure,
  getLogger,
  type LogRecord,
  reset,
  type Sink,
} from "../../lib/logging/logger.ts";

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
    assert.deepEqual(agent.records[0].properties, { who: "manager" });
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
      { category: ["a"], sinks: ["child"], lowestLevel: "debug" },
      { category: ["a", "quiet"], sinks: ["child"], parentSinks: "override", lowestLevel: null },
    ],
  });
  try {
    getLogger("a.b").warn("both");
    getLogger("a.b").debug("child only, below root's level");
    getLogger(["a", "quiet"]).fatal("nobody");
    assert.deepEqual(child.records.map((r) => r.level), ["warning", "debug"]);
    assert.deepEqual(root.records.map((r) => r.level), ["warning"]);
    assert.equal(getLogger(["a", "quiet"]).isEnabledFor("fatal"), false);
    assert.equal(getLogger("a.b").isEnabledFor("trace"), false);
    assert.equal(getLogger("a.b").isEnabledFor("debug"), true);
    assert.equal(getLogger("other").isEnabledFor("debug"), false);
    assert.equal(getLogger("other").isEnabledFor("info"), true);
  } finally {
    await reset();
  }
});

Deno.test("log: a logger without sinks passes records on, or stops them with override", async () => {
  const root = capture();
  await configure({
    sinks: { root: root.sink },
    loggers: [
      { category: [], sinks: ["root"], lowestLevel: "info" },
      { category: ["a"], lowestLevel: "debug" },
      { category: ["a", "stop"], parentSinks: "override" },
    ],
  });
  try {
    getLogger("a.b").info("reaches root");
    getLogger("a.b").debug("below root's level");
    getLogger("a.stop.c").error("stopped");
    assert.deepEqual(root.records.map((r) => r.message), [["reaches root"]]);
    assert.equal(getLogger("a.b").isEnabledFor("info"), true);
    assert.equal(getLogger("a.b").isEnabledFor("debug"), false);
    assert.equal(getLogger("a.stop.c").isEnabledFor("fatal"), false);
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
  await configure({ sinks: { good: out.sink }, loggers: [{ category: [], sinks: ["good"] }] });
  try {
    await assert.rejects(
      configure({
        sinks: {} as Record<string, Sink>,
        loggers: [{ category: [], sinks: [] }, { category: "x", sinks: ["nope"] }],
      }),
      /unknown sink 'nope'/,
    );
    getLogger("any").info("the old set-up is kept");
    assert.equal(out.records.length, 2);
  } finally {
    await reset();
  }
});
