/**
 * Tests for lib/yaml_subset.ts: every accepted document must read exactly as npm
 * `yaml` reads it with YAML 1.1 (the reference, imported here only), and everything
 * outside the subset must throw instead of being guessed at.
 */
import assert from "node:assert/strict";
import { parse } from "yaml";
import template from "../../config/logging.yaml" with { type: "text" };
import { parseYamlSubset } from "../../lib/config/yaml.ts";

function sameAsYaml(text: string): unknown {
  const ours = parseYamlSubset(text);
  assert.deepEqual(ours, parse(text, { version: "1.1" }));
  return ours;
}

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

Deno.test("the shipped template reads as npm yaml reads it, substituted or not", () => {
  const substituted = template.replaceAll("@LOGFILE_PATH@", "/var/log/dcm/agent.log")
    .replaceAll("@LOG_LEVEL@", "DEBUG").replaceAll("@DCM_USER@", "dcm");
  const doc = sameAsYaml(substituted) as Record<string, Record<string, Record<string, unknown>>>;
  assert.equal(doc.handlers.wire_handler.filename, "/var/log/dcm/agent.log.wire");
  assert.equal(doc.loggers["dcm.agent"].propagate, false);
  // lib/logging.ts marks placeholders this way before parsing.
  sameAsYaml(template.replace(/@([A-Z][A-Z0-9_]*)@/g, "__UNSUBSTITUTED_$1__"));
});

Deno.test("a logging.yaml in the original agent's style reads as npm yaml reads it", () => {
  const doc = sameAsYaml(ORIGINAL_STYLE) as Record<string, Record<string, Record<string, unknown>>>;
  assert.equal(doc.filters.add_request["()"], "dcm.eventlog.tracer.RequestFilter");
  assert.equal(doc.loggers["dcm.agent"].propagate, false);
});

Deno.test("scalars, flow collections and sequences read as npm yaml reads them", () => {
  sameAsYaml(`# leading comment
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
  sameAsYaml("- just\n- a list\n");
  sameAsYaml("just a scalar\n");
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
    ["a: |\n  block\n", /line 1: .*"\|"/],
    ["a: &anchor x\nb: *anchor\n", /line 1: .*"&"/],
    ["a: !!str 1\n", /line 1: .*"!"/],
    ["a: 0x1F\n", /line 1: the value 0x1F looks like a number/],
    ["a: 2001-12-14\n", /looks like a number or date/],
    ["a: 1_000\n", /looks like a number/],
    ["a: 'open\n", /line 1: missing closing '/],
    ['a: "bad \\q"\n', /unknown escape \\q/],
    ["a: b: c\n", /line 1: a mapping cannot start/],
    ["a: 1\n---\nb: 2\n", /line 2: several documents/],
    ["%YAML 1.1\n---\na: 1\n", /line 1: .*directives/],
    ["? complex\n: key\n", /line 1: .*"\?"/],
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
