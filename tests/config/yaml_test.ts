/**
 * Tests for lib/config/yaml.ts, the agent's one YAML reader: every accepted document
 * must read as PyYAML (YAML 1.1) reads it, and everything outside the subset must throw
 * instead of being guessed at. The expected values were checked once against npm
 * `yaml` 2.9.1 with `version: "1.1"`; no YAML package is a dependency any more.
 */
import assert from "node:assert/strict";
import template from "../../config/logging.yaml" with { type: "text" };
import { parseYamlSubset } from "../../lib/config/yaml.ts";

type Tree = Record<string, Record<string, Record<string, unknown>>>;

/** A logging.yaml in the style the original Python agent shipped: 4-space indent, `()` keys. */
const ORIGINAL_STYLE = `---
version: 1
disable_existing_loggers: False
formatters:
    simple:
        format: "%(levelname)s %(asctime)s [%(name)s] %(filename)s:%(lineno)d [(REQUEST=%(dcm_request_id)s)] %(message)s"
    wire:
        format: "[%(asctime)s] %(message)s"
        datefmt: "%H:%M"
filters:
    add_request:
        (): dcm.eventlog.tracer.RequestFilter
handlers:
    file_handler:
        class: dcm.agent.logger.DCMAgentLogger
        level: INFO
        formatter: simple
        filename: /var/log/dcm-agent/agent.log
        owner: root
        maxBytes: 10485760
        backupCount: 20
        encoding: utf8
        filters: [add_request]
    syslog:
        class: logging.handlers.SysLogHandler
        address: /dev/log
loggers:
    dcm.agent:
        handlers: [file_handler, syslog]
        level: DEBUG
        propagate: no
    DCM_AGENT_WIRE:
        handlers: [wire_handler]
        level: INFO
        propagate: False
root:
    level: INFO
    handlers: [file_handler]
`;

/** How PyYAML (and npm yaml with YAML 1.1) reads the document of the scalar test. */
const EXPECTED_SCALARS = {
  "a": 1,
  "b": -2.5,
  "c": 1000,
  "d": [true, false, true, false, true, false, true, false, null, null, "it's", 't\tab é A " \\'],
  "e": { "x": 1, "y": ["a", "b"], "z": null },
  "f": Infinity,
  "g": 0,
  "h": "plain text with colons:inside and",
  "i": "quoted # not a comment",
  "j": null,
  "k": ["one", { "two": 2, "three": 3 }, ["nested", "list"], null, ["flow"]],
  "l": ["x", true],
  "m": "http://example.com:8080/path",
  "quoted key": "v",
  "single key": "w",
  "dcm.agent.log.to.agent.manager": { "level": "DEBUG" },
  "()": "factory",
  "empty_flow": [[], {}],
};

Deno.test("the shipped template reads as dcm-agent configure writes it, substituted or not", () => {
  const substituted = template.replaceAll("@LOGFILE_PATH@", "/var/log/dcm/agent.log")
    .replaceAll("@LOG_LEVEL@", "DEBUG").replaceAll("@DCM_USER@", "dcm");
  const doc = parseYamlSubset(substituted) as Tree;
  assert.equal(doc.version as unknown, 1);
  assert.equal(doc.disable_existing_loggers as unknown, false);
  assert.deepEqual(doc.filters, { add_request: { "()": "dcm.eventlog.tracer.RequestFilter" } });
  assert.deepEqual(doc.handlers.file_handler, {
    class: "logging.handlers.RotatingFileHandler",
    level: "DEBUG",
    formatter: "simple",
    filters: ["add_request"],
    filename: "/var/log/dcm/agent.log",
    owner: "dcm",
    maxBytes: 10485760,
    backupCount: 20,
    encoding: "utf8",
  });
  assert.equal(doc.handlers.wire_handler.filename, "/var/log/dcm/agent.log.wire");
  assert.deepEqual(doc.loggers["dcm.agent.log.to.agent.manager"], {
    level: "DEBUG",
    handlers: ["dcm_logger", "file_handler"],
    propagate: false,
  });
  assert.deepEqual(doc.root, { level: "DEBUG", handlers: ["file_handler"] } as unknown);
  assert.equal(
    doc.formatters.simple.format,
    "%(levelname)s %(asctime)s [%(name)s] [(REQUEST=%(dcm_request_id)s)] %(message)s",
  );
  // lib/logging/dict_config.ts marks placeholders this way before parsing.
  const raw = parseYamlSubset(template.replace(/@([A-Z][A-Z0-9_]*)@/g, "__UNSUBSTITUTED_$1__"));
  assert.equal((raw as Tree).handlers.file_handler.level, "__UNSUBSTITUTED_LOG_LEVEL__");
});

Deno.test("a logging.yaml in the original agent's style reads as PyYAML reads it", () => {
  const doc = parseYamlSubset(ORIGINAL_STYLE) as Tree;
  assert.deepEqual(doc.formatters.wire, { format: "[%(asctime)s] %(message)s", datefmt: "%H:%M" });
  assert.equal(doc.filters.add_request["()"], "dcm.eventlog.tracer.RequestFilter");
  assert.deepEqual(doc.handlers.file_handler, {
    class: "dcm.agent.logger.DCMAgentLogger",
    level: "INFO",
    formatter: "simple",
    filename: "/var/log/dcm-agent/agent.log",
    owner: "root",
    maxBytes: 10485760,
    backupCount: 20,
    encoding: "utf8",
    filters: ["add_request"],
  });
  assert.deepEqual(doc.loggers["dcm.agent"], {
    handlers: ["file_handler", "syslog"],
    level: "DEBUG",
    propagate: false,
  });
  assert.deepEqual(doc.root, { level: "INFO", handlers: ["file_handler"] } as unknown);
});

Deno.test("scalars, flow collections and sequences read as PyYAML reads them", () => {
  const doc = parseYamlSubset(`# leading comment
a: 1
b: -2.5
c: 1e3
d: [yes, No, on, OFF, y, n, true, False, ~, null, 'it''s', "t\\tab \\u00e9 \\x41 \\" \\\\"]
e: {x: 1, "y": [a, b], z: }
f: .inf
g: 0
h: plain text with colons:inside and #hash
i: "quoted # not a comment"  # a comment
j:
k:
- one
- two: 2
  three: 3
- - nested
  - list
-
- [flow]
l:
  - x # comment
  -   y
m: http://example.com:8080/path
"quoted key": v
'single key': w
dcm.agent.log.to.agent.manager: {level: DEBUG}
(): factory
empty_flow: [[], {}]
`);
  assert.deepEqual(doc, EXPECTED_SCALARS);
  assert.deepEqual(parseYamlSubset("- just\n- a list\n"), ["just", "a list"]);
  assert.equal(parseYamlSubset("just a scalar\n"), "just a scalar");
  assert.equal(parseYamlSubset(""), null);
  assert.equal(parseYamlSubset("# only a comment\n---\n"), null);
});

Deno.test("anything outside the subset throws with the line number", () => {
  const cases: [string, RegExp][] = [
    ["a:\n\tb: 1\n", /line 2: tabs are not allowed for indentation; use spaces/],
    ["version: 1\nhandlers: [oops\n", /line 2: missing "\]"/],
    ["a: 1\na: 2\n", /line 2: duplicate key "a"/],
    ["a: 1\n  b: 2\n", /line 2: unexpected indentation/],
    ["a: b\n  continued\n", /line 2: unexpected indentation/],
    ["|\n  top-level block\n", /line 1: a block scalar \(\| or >\) is only supported as the value/],
    ["a: |1-2\n  x\n", /line 1: a block scalar header has two indentation indicators/],
    ["a: |x\n  x\n", /line 1: .*"\|": block scalars/],
    ["a: [|]\n", /line 1: .*block scalars \(\|\)/],
    ["a: &anchor x\nb: *anchor\n", /line 1: .*"&": anchors \(&name\) are not supported/],
    ["a: *anchor\n", /line 1: .*"\*": aliases \(\*name\) are not supported/],
    ["a: !!str 1\n", /line 1: .*"!": tags \(!tag\) are not supported/],
    ["a: @x\n", /line 1: .*"@"/],
    ["a: [x,\n  y]\n", /line 1: missing "\]": flow collections must end on the line they start/],
    ["a: {x: 1,\n  y: 2}\n", /line 1: missing "\}"/],
    ['a: "two\n  lines"\n', /line 1: missing closing ": quoted strings must end on the line/],
    ["a: 0x1F\n", /line 1: the value 0x1F looks like a number/],
    ["a: 2001-12-14\n", /looks like a number or date/],
    ["a: 1_000\n", /looks like a number/],
    ["a: 'open\n", /line 1: missing closing '/],
    ['a: "bad \\q"\n', /unknown escape \\q/],
    ["a: b: c\n", /line 1: a mapping cannot start/],
    ["a: 1\n---\nb: 2\n", /line 2: several documents/],
    ["%YAML 1.1\n---\na: 1\n", /line 1: .*directives/],
    ["? complex\n: key\n", /line 1: .*"\?": complex keys/],
    ["a:\n  - x\n  y: 1\n", /line 3: unexpected indentation/],
    ["<<: {a: 1}\n", /line 1: the key <<.*not a plain string/],
    ["a: [x, , y]\n", /line 1: empty entry/],
    ["a: {b: 1} trailing\n", /line 1: unexpected text after the value/],
    ["a:\tb\n", /line 1: .*tabs/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseYamlSubset(text, { name: "logging.yaml" }), message, text);
  }
  assert.throws(() => parseYamlSubset("a: [\n"), /^Error: YAML line 1: /);
});

Deno.test("block scalars: literal and folded, with chomping and indentation indicators", () => {
  const cases: [string, unknown][] = [
    ["a: |\n  line1\n  line2\n", { a: "line1\nline2\n" }],
    ["a: |-\n  line1\n  line2\n\n\nb: 1\n", { a: "line1\nline2", b: 1 }],
    ["a: |+\n  line1\n\n\nb: 1\n", { a: "line1\n\n\n", b: 1 }],
    ["a: |+\n  line1\n\n", { a: "line1\n\n" }],
    [
      "a: >\n  one\n  two\n\n  three\n    more\n    indented\n  back\nb: x\n",
      { a: "one two\nthree\n  more\n  indented\nback\n", b: "x" },
    ],
    ["a: >-\n  folded\n  text # not a comment\n\n", { a: "folded text # not a comment" }],
    ["a: |2\n    two extra\n  base\n", { a: "  two extra\nbase\n" }],
    ["a: |1\n  x\n", { a: " x\n" }],
    ["- |\n  item\n- >\n  folded\n  item\n- x\n", ["item\n", "folded item\n", "x"]],
    ["- - |\n    n\n", [["n\n"]]],
    ["k:\n  - name: |\n      deep\n      text\n    other: 1\n", {
      k: [{ name: "deep\ntext\n", other: 1 }],
    }],
    ["a: | # comment\n  # not a comment\n  x\n", { a: "# not a comment\nx\n" }],
    ["a: |\n\n  after blank\n", { a: "\nafter blank\n" }],
    ["a: |\nb: 1\n", { a: "", b: 1 }],
    ["a:\n  b: |\n    t1\n\n    t2\n  c: >+\n    f\n\nd: 2\n", {
      a: { b: "t1\n\nt2\n", c: "f\n\n" },
      d: 2,
    }],
    ["a: |\r\n  windows\r\n  lines\r\n", { a: "windows\nlines\n" }],
    ["'q: k': |\n  v\n", { "q: k": "v\n" }],
  ];
  for (const [text, expected] of cases) {
    assert.deepEqual(parseYamlSubset(text), expected, JSON.stringify(text));
  }
  // A line less indented than the block's first one ends it; a tab there is an error.
  assert.throws(() => parseYamlSubset("a: |\n    x\n  y\n"), /line 3: unexpected indentation/);
  assert.throws(() => parseYamlSubset("a: |\n  x\n\tb\n"), /line 3: tabs are not allowed/);
});

Deno.test("a logging.yaml with a block scalar format reads", () => {
  const doc = parseYamlSubset(`version: 1
formatters:
  simple:
    format: >-
      %(levelname)s %(asctime)s
      %(message)s
handlers:
  f: {class: logging.FileHandler, filename: /tmp/x.log, formatter: simple}
root: {level: INFO, handlers: [f]}
`) as Tree;
  assert.equal(doc.formatters.simple.format, "%(levelname)s %(asctime)s %(message)s");
});
