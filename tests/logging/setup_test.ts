/**
 * Tests for lib/logging/setup.ts and the modules it uses. The logging set-up is process-wide, so every
 * test here that configures it runs in this file, one after the other (Deno runs the
 * tests of one file sequentially), and ends with shutdownLogging(). Checks of what
 * reaches stderr run in a child process.
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { getLogger } from "../../lib/logging/logger.ts";
import template from "../../config/logging.yaml" with { type: "text" };
import { ConfigError } from "../../lib/config/agent_conf.ts";
import { pathExists as exists, readTextIfPresent } from "../../lib/os/fs_stat.ts";
import {
  configureLogging as configureLoggingWith,
  type LoggingOptions,
  shutdownLogging,
} from "../../lib/logging/setup.ts";
import { lookupUser } from "../../lib/os/passwd.ts";
import { CONSOLE_CATEGORY, WIRE_CATEGORY } from "../../lib/logging/categories.ts";
import { scrubSecrets } from "../../lib/logging/redact.ts";
import type { LogLevel } from "../../lib/protocol/messages.ts";
import { runProgram } from "../helpers/run.ts";

const ROOT = new URL("../..", import.meta.url);
/** Every test's files live under one directory, removed when the test run ends. */
const TMP = Deno.makeTempDirSync({ prefix: "dcm_logging_test_" });
globalThis.addEventListener("unload", () => Deno.removeSync(TMP, { recursive: true }));

/** As the agent calls it: owners are looked up through lib/os. */
function configureLogging(file: string | null, options: LoggingOptions = {}): Promise<void> {
  return configureLoggingWith(file, { resolveUser: lookupUser, ...options });
}

function tempDir(): string {
  return Deno.makeTempDirSync({ dir: TMP });
}

function read(path: string): string {
  return readTextIfPresent(path) ?? "";
}

/** Whether the wire log would write a frame, as lib/connection.ts checks it. */
function wireLogEnabled(): boolean {
  return getLogger([...WIRE_CATEGORY]).isEnabledFor("debug");
}

/** The shipped template as `dcm-agent configure` writes it, in a fresh directory. */
function installTemplate(level: string, edit: (yaml: string) => string = (y) => y): {
  dir: string;
  yaml: string;
  log: string;
} {
  const dir = tempDir();
  const log = `${dir}/logs/agent.log`;
  const text = template.replaceAll("@LOGFILE_PATH@", log).replaceAll("@LOG_LEVEL@", level)
    .replaceAll("@DCM_USER@", "nobody");
  const yaml = `${dir}/logging.yaml`;
  Deno.writeTextFileSync(yaml, edit(text));
  return { dir, yaml, log };
}

function writeYaml(text: string): { dir: string; yaml: string } {
  const dir = tempDir();
  const yaml = `${dir}/logging.yaml`;
  Deno.writeTextFileSync(yaml, text.replaceAll("$DIR", dir));
  return { dir, yaml };
}

/** Runs `code` in a child Deno with `logging` (lib/logging.ts) and `getLogger` imported. */
async function runChild(code: string): Promise<{ stdout: string; stderr: string; ok: boolean }> {
  const dir = tempDir();
  const script = `${dir}/child.ts`;
  Deno.writeTextFileSync(
    script,
    `import { getLogger } from ${JSON.stringify(new URL("lib/logging/logger.ts", ROOT).href)};\n` +
      `import * as logging from "${new URL("lib/logging/mod.ts", ROOT)}";\n` +
      `import { lookupUser } from "${new URL("lib/os/passwd.ts", ROOT)}";\n${code}\n`,
  );
  const out = await runProgram(Deno.execPath(), [
    "run",
    "-A",
    "--config",
    fileURLToPath(new URL("deno.json", ROOT)),
    script,
  ], { timeoutMs: 30_000 });
  return { stdout: out.stdout, stderr: out.stderr, ok: out.code === 0 };
}

Deno.test("without a file, INFO and above go to stderr and DEBUG does not", async () => {
  const child = await runChild(`
    await logging.configureLogging(null);
    getLogger(["dcm", "agent", "jobs"]).debug("hidden debug line");
    getLogger(["dcm", "agent", "jobs"]).info("visible info line");
    getLogger(["dcm", "agent", "connection"]).error("visible error line {n}", { n: 3 });
    await logging.shutdownLogging();
  `);
  assert.ok(child.ok, child.stderr);
  assert.equal(child.stdout, "", "nothing may reach stdout");
  const lines = child.stderr.trim().split("\n");
  assert.equal(lines.length, 2, child.stderr);
  assert.match(
    lines[0],
    /^INFO \d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[dcm\.agent\.jobs\] visible info line$/,
  );
  assert.match(lines[1], /^ERROR .* \[dcm\.agent\.connection\] visible error line 3$/);
});

Deno.test("the stderr option echoes the main log at its configured level, without the wire log", async () => {
  for (
    const [level, expected] of [["DEBUG", ["DEBUG", "INFO", "WARNING"]], ["WARNING", ["WARNING"]]]
  ) {
    const { yaml, log } = installTemplate(level as string);
    const child = await runChild(`
      await logging.configureLogging(${
      JSON.stringify(yaml)
    }, { stderr: true, resolveUser: lookupUser });
      getLogger(["dcm", "agent", "jobs"]).debug("a debug line");
      getLogger(["dcm", "agent", "jobs"]).info("an info line");
      getLogger(["dcm", "agent", "jobs"]).warn("a warning line token=s3cr3t");
      getLogger(["DCM_AGENT_WIRE"]).info("a wire frame");
      await logging.shutdownLogging();
    `);
    assert.ok(child.ok, child.stderr);
    const levels = child.stderr.trim().split("\n").map((l) => l.split(" ")[0]);
    assert.deepEqual(levels, expected, child.stderr);
    assert.doesNotMatch(child.stderr, /wire frame|s3cr3t/);
    assert.match(read(log), /\] a warning line/);
  }
});

Deno.test("unsubstituted placeholders are tolerated with warnings", async () => {
  const dir = tempDir();
  Deno.writeTextFileSync(`${dir}/logging.yaml`, template);
  const child = await runChild(`
    await logging.configureLogging(${JSON.stringify(`${dir}/logging.yaml`)});
    getLogger(["dcm", "agent", "jobs"]).debug("hidden debug line");
    getLogger(["dcm", "agent", "jobs"]).info("still logged");
    console.log(getLogger(logging.WIRE_CATEGORY).isEnabledFor("debug"));
    await logging.shutdownLogging();
  `);
  assert.ok(child.ok, child.stderr);
  assert.equal(child.stdout, "false\n");
  assert.match(child.stderr, /placeholder @LOG_LEVEL@ .*using INFO/);
  assert.match(child.stderr, /placeholder @LOGFILE_PATH@ .*stderr instead/);
  assert.match(child.stderr, /\[dcm\.agent\.jobs\] still logged/);
  assert.doesNotMatch(child.stderr, /hidden debug line/);
  assert.equal([...Deno.readDirSync(dir)].length, 1, "no file named after a placeholder");
});

Deno.test("the template writes agent.log at its level and keeps the wire log off", async () => {
  const { yaml, log } = installTemplate("INFO");
  try {
    await configureLogging(yaml);
    assert.equal(wireLogEnabled(), false);
    getLogger(["dcm", "agent", "messaging"]).info("message received");
    getLogger(["dcm", "agent", "messaging"]).debug("debug detail");
    getLogger(["dcm", "agent", "plugins"]).warn("plugin warning");
    getLogger(["some", "library"]).error("root logger line");
    getLogger([...WIRE_CATEGORY]).debug("INCOMING {frame}", { frame: '{"type":"CMD"}' });
  } finally {
    await shutdownLogging();
  }
  const text = read(log);
  assert.match(text, /^INFO .* \[dcm\.agent\.messaging\] message received$/m);
  assert.match(text, /^WARNING .* \[dcm\.agent\.plugins\] plugin warning$/m);
  assert.match(text, /^ERROR .* \[some\.library\] root logger line$/m);
  assert.doesNotMatch(text, /debug detail/);
  assert.equal(read(`${log}.wire`), "");
  assert.ok(exists(`${log}.job_runner`), "job_runner log is created like the original's");
});

Deno.test("the wire log is written when its logger and handler are set to DEBUG", async () => {
  // In the template only the wire logger and wire_handler are at INFO.
  const { yaml, log } = installTemplate("INFO", (y) => y.replaceAll("level: INFO", "level: DEBUG"));
  try {
    await configureLogging(yaml);
    assert.equal(wireLogEnabled(), true);
    getLogger([...WIRE_CATEGORY]).debug("INCOMING {frame}", { frame: '{"type":"CMD"}' });
    getLogger([...WIRE_CATEGORY]).debug("OUTGOING {frame}", { frame: '{"type":"REPLY"}' });
  } finally {
    await shutdownLogging();
  }
  const wire = read(`${log}.wire`).trim().split("\n");
  assert.equal(wire.length, 2);
  assert.match(wire[0], /^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3}\] INCOMING \{"type":"CMD"\}$/);
  assert.match(wire[1], /OUTGOING \{"type":"REPLY"\}$/);
  assert.doesNotMatch(read(log), /INCOMING/, "the wire log does not propagate to agent.log");
  assert.equal(wireLogEnabled(), false, "shutdown turns the wire log off");
});

Deno.test("the manager sink gets console events at or above its level, with the request id", async () => {
  const { yaml, log } = installTemplate("INFO");
  const sent: { level: LogLevel; line: string }[] = [];
  try {
    await configureLogging(yaml, { managerSink: (level, line) => sent.push({ level, line }) });
    const consoleLog = getLogger([...CONSOLE_CATEGORY]);
    consoleLog.debug("job detail {line}", { line: "x", requestId: "r1" });
    consoleLog.info("Job {name} started", { name: "run_script", requestId: "r1" });
    consoleLog.warn("unknown parameter {p}", { p: "password", requestId: "r1" });
    consoleLog.error("Job {name} failed", { name: "run_script", requestId: "r1" });
    consoleLog.fatal("The agent is overloaded");
    getLogger(["dcm", "agent", "messaging"]).error("not for the manager");
    getLogger([...WIRE_CATEGORY]).fatal("not for the manager either");
  } finally {
    await shutdownLogging();
  }
  assert.deepEqual(sent.map((s) => s.level), ["INFO", "WARNING", "ERROR", "CRITICAL"]);
  assert.match(
    sent[0].line,
    /^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} \[dcm\.agent\.log\.to\.agent\.manager\] \[\(REQUEST=r1\)\] Job run_script started$/,
  );
  assert.match(sent[3].line, /\[dcm\.agent\.log\.to\.agent\.manager\] The agent is overloaded$/);
  assert.match(
    read(log),
    /\[\(REQUEST=r1\)\] Job run_script failed/,
    "console events also reach agent.log",
  );
});

Deno.test("a rotating file handler rotates to .1, .2 and keeps backupCount files", async () => {
  const { dir, yaml } = writeYaml(`
version: 1
formatters: {plain: {format: "%(message)s"}}
handlers:
  rotating:
    class: logging.handlers.RotatingFileHandler
    filename: $DIR/deep/er/agent.log
    formatter: plain
    maxBytes: 200
    backupCount: 2
root: {level: DEBUG, handlers: [rotating]}
`);
  const log = `${dir}/deep/er/agent.log`;
  try {
    await configureLogging(yaml);
    for (let i = 0; i < 40; i++) {
      getLogger(["dcm", "agent", "jobs"]).info("record {i} padded to make it longer", {
        i: String(i).padStart(3, "0"),
      });
    }
  } finally {
    await shutdownLogging();
  }
  // Each line is 36 bytes, so a file holds five: a sixth would reach maxBytes.
  const lines = (from: number): string =>
    [0, 1, 2, 3, 4].map((k) =>
      `record ${String(from + k).padStart(3, "0")} padded to make it longer\n`
    )
      .join("");
  assert.equal(read(`${log}.2`), lines(25));
  assert.equal(read(`${log}.1`), lines(30));
  assert.equal(read(log), lines(35));
  assert.ok(!exists(`${log}.3`), "no more than backupCount backups");
});

Deno.test("handler levels and logger levels both filter", async () => {
  const { dir, yaml } = writeYaml(`
version: 1
formatters: {short: {format: "%(levelname)s %(name)s %(message)s"}}
handlers:
  all: {class: logging.FileHandler, filename: $DIR/all.log, formatter: short, level: DEBUG}
  important: {class: logging.FileHandler, filename: $DIR/important.log, formatter: short, level: WARN}
  own: {class: logging.FileHandler, filename: $DIR/own.log, formatter: short}
loggers:
  dcm.agent.quiet: {level: ERROR}
  dcm.agent.alone: {level: INFO, handlers: [own], propagate: False}
root: {level: DEBUG, handlers: [all, important]}
`);
  try {
    await configureLogging(yaml);
    for (const area of ["x", "quiet", "alone"]) {
      const logger = getLogger(["dcm", "agent", area]);
      logger.debug("d");
      logger.info("i");
      logger.warn("w");
      logger.error("e");
      logger.fatal("c");
    }
    // A child of a configured logger inherits its level.
    getLogger(["dcm", "agent", "quiet", "child"]).warn("w");
  } finally {
    await shutdownLogging();
  }
  assert.equal(
    read(`${dir}/all.log`),
    "DEBUG dcm.agent.x d\nINFO dcm.agent.x i\nWARNING dcm.agent.x w\nERROR dcm.agent.x e\n" +
      "CRITICAL dcm.agent.x c\nERROR dcm.agent.quiet e\nCRITICAL dcm.agent.quiet c\n",
  );
  assert.equal(
    read(`${dir}/important.log`),
    "WARNING dcm.agent.x w\nERROR dcm.agent.x e\nCRITICAL dcm.agent.x c\n" +
      "ERROR dcm.agent.quiet e\nCRITICAL dcm.agent.quiet c\n",
  );
  assert.equal(
    read(`${dir}/own.log`),
    "INFO dcm.agent.alone i\nWARNING dcm.agent.alone w\nERROR dcm.agent.alone e\nCRITICAL dcm.agent.alone c\n",
  );
});

Deno.test("a logging.yaml written for the original Python agent loads and works", async () => {
  const { dir, yaml } = writeYaml(`---
version: 1
disable_existing_loggers: False
formatters:
    simple:
        format: "%(levelname)s %(asctime)s [%(name)s] %(filename)s:%(lineno)d [(REQUEST=%(dcm_request_id)s)] %(message)s"
    todcm:
        format: "%(asctime)s [%(name)s] %(filename)s:%(lineno)d [(REQUEST=%(dcm_request_id)s)] %(message)s"
    wire:
        format: "[%(asctime)s] %(message)s"
        datefmt: "%H:%M"
filters:
    add_request:
        (): dcm.eventlog.tracer.RequestFilter
    only_errors:
        (): mypackage.OnlyErrors
handlers:
    file_handler:
        class: dcm.agent.logger.DCMAgentLogger
        level: INFO
        formatter: simple
        filename: $DIR/agent.log
        owner: root
        maxBytes: 10485760
        backupCount: 20
        encoding: utf8
        filters: [add_request]
    wire_handler:
        class: logging.handlers.RotatingFileHandler
        level: INFO
        formatter: wire
        filename: $DIR/agent.log.wire
        maxBytes: 10485760
        backupCount: 20
    syslog:
        class: logging.handlers.SysLogHandler
        address: /dev/log
    dcm_logger:
        class: dcm.agent.logger.dcmLogger
        level: INFO
        formatter: todcm
        filters: [add_request]
loggers:
    dcm.agent:
        handlers: [file_handler, syslog]
        level: DEBUG
        propagate: no
    dcm.agent.log.to.agent.manager:
        handlers: [dcm_logger, file_handler]
        level: DEBUG
        propagate: False
    DCM_AGENT_WIRE:
        handlers: [wire_handler]
        level: INFO
        propagate: False
root:
    level: INFO
    handlers: [file_handler]
`);
  const sent: string[] = [];
  try {
    await configureLogging(yaml, { managerSink: (level, line) => sent.push(`${level} ${line}`) });
    getLogger(["dcm", "agent", "messaging"]).info("plain line");
    getLogger([...CONSOLE_CATEGORY]).info("Job {name} succeeded", {
      name: "heartbeat",
      requestId: "abc",
    });
  } finally {
    await shutdownLogging();
  }
  const text = read(`${dir}/agent.log`);
  assert.match(text, /^INFO \S+ \S+ \[dcm\.agent\.messaging\] plain line$/m);
  assert.match(
    text,
    /^INFO \S+ \S+ \[dcm\.agent\.log\.to\.agent\.manager\] \[\(REQUEST=abc\)\] Job heartbeat succeeded$/m,
  );
  assert.match(text, /handlers\.SysLogHandler is not supported/);
  assert.match(text, /filter only_errors \(mypackage\.OnlyErrors\) is not supported/);
  assert.match(text, /handler syslog: unknown key "address"/);
  assert.match(text, /datefmt is not supported/);
  assert.doesNotMatch(
    text,
    /add_request|owner/,
    "the original's request filter and owner key are understood",
  );
  assert.equal(sent.length, 1);
  assert.match(
    sent[0],
    /^INFO \S+ \S+ \[dcm\.agent\.log\.to\.agent\.manager\] \[\(REQUEST=abc\)\] Job heartbeat succeeded$/,
  );
});

Deno.test("unknown levels fall back to INFO with a warning", async () => {
  const { dir, yaml } = writeYaml(`
version: 1
handlers:
  f: {class: logging.FileHandler, filename: $DIR/a.log, level: LOUD}
root: {level: 10, handlers: [f]}
`);
  try {
    await configureLogging(yaml);
    getLogger(["dcm", "agent", "jobs"]).debug("debug line");
    getLogger(["dcm", "agent", "jobs"]).info("info line");
  } finally {
    await shutdownLogging();
  }
  const text = read(`${dir}/a.log`);
  assert.match(text, /unknown level "LOUD"; using INFO/);
  assert.match(text, /^info line$/m);
  assert.doesNotMatch(text, /debug line/);
});

Deno.test("scrubSecrets hides tokens, scripts, passwords and private keys", () => {
  const pem = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----";
  assert.equal(
    scrubSecrets(`{"type":"CMD","token":"s3cr3t","request_id":"r1","b64script":"ZWNobyBoaQ=="}`),
    `{"type":"CMD","token":"<redacted>","request_id":"r1","b64script":"<redacted>"}`,
  );
  assert.equal(
    scrubSecrets(`{"type":"LOG","token":"","level":"INFO"}`),
    `{"type":"LOG","token":"","level":"INFO"}`,
  );
  assert.equal(scrubSecrets(`{"token":"<redacted 36 bytes>"}`), `{"token":"<redacted 36 bytes>"}`);
  assert.equal(
    scrubSecrets(`{ encryptedAuthSecret: "abc", agentID: "a1", 'password': 'pw' }`),
    `{ encryptedAuthSecret: "<redacted>", agentID: "a1", 'password': '<redacted>' }`,
  );
  assert.equal(
    scrubSecrets("login password=hunter2 user=bob"),
    "login password=<redacted> user=bob",
  );
  assert.equal(
    scrubSecrets(`key follows ${pem} done`),
    "key follows -----BEGIN RSA PRIVATE KEY-----<redacted>-----END RSA PRIVATE KEY----- done",
  );
  assert.equal(
    scrubSecrets("cut -----BEGIN PRIVATE KEY-----\nMIIE"),
    "cut -----BEGIN PRIVATE KEY-----<redacted>-----END PRIVATE KEY-----",
  );
  assert.equal(scrubSecrets("nothing to hide here"), "nothing to hide here");
});

Deno.test("scrubSecrets stays fast on long lines", () => {
  const noise = "A1b2C3keyD4e5F6".repeat(20_000);
  const start = performance.now();
  scrubSecrets(`{"data":"${noise}","token":"t"} ${noise}`);
  assert.ok(performance.now() - start < 500, "no catastrophic backtracking");
});

Deno.test("secrets never reach a log file or the manager, whatever the call", async () => {
  const { yaml, log } = installTemplate(
    "DEBUG",
    (y) => y.replaceAll("level: INFO", "level: DEBUG"),
  );
  const sent: string[] = [];
  try {
    await configureLogging(yaml, { managerSink: (_level, line) => sent.push(line) });
    getLogger(["dcm", "agent", "jobs"]).info("careless {frame}", {
      frame: '{"token":"tok-123","password":"pw-456"}',
    });
    getLogger([...CONSOLE_CATEGORY]).debug("script line {line}", {
      line: "password=pw-789",
      requestId: "r",
    });
    getLogger([...WIRE_CATEGORY]).debug("INCOMING {frame}", {
      frame: { b64script: "c2NyaXB0LTAxMg==" },
    });
  } finally {
    await shutdownLogging();
  }
  const everything = read(log) + read(`${log}.wire`) + sent.join("\n");
  for (const secret of ["tok-123", "pw-456", "pw-789", "c2NyaXB0LTAxMg=="]) {
    assert.ok(!everything.includes(secret), `${secret} leaked:\n${everything}`);
  }
  assert.match(everything, /b64script: "<redacted>"/);
});

Deno.test("configuring again switches files and closes the old ones", async () => {
  const first = installTemplate("INFO");
  const second = installTemplate("INFO");
  try {
    await configureLogging(first.yaml);
    getLogger(["dcm", "agent", "jobs"]).info("one");
    await configureLogging(second.yaml);
    getLogger(["dcm", "agent", "jobs"]).info("two");
    await configureLogging(second.yaml);
    getLogger(["dcm", "agent", "jobs"]).info("three");
  } finally {
    await shutdownLogging();
  }
  assert.match(read(first.log), /\] one\n$/);
  assert.doesNotMatch(read(first.log), /two|three/);
  const lines = read(second.log).trim().split("\n");
  assert.deepEqual(lines.map((l) => l.split("] ").at(-1)), ["two", "three"]);
});

Deno.test("a file that cannot be read or parsed gives a clear error and keeps the old setup", async () => {
  const good = installTemplate("INFO");
  const { dir, yaml: bad } = writeYaml("version: 1\nhandlers: [oops\n");
  try {
    await configureLogging(good.yaml);
    await assert.rejects(
      () => configureLogging(bad),
      (err: Error) =>
        err instanceof ConfigError && err.message.includes(bad) &&
        /not valid YAML[\s\S]*; fix/.test(err.message),
    );
    await assert.rejects(
      () => configureLogging(`${dir}/missing.yaml`),
      (err: Error) => err instanceof ConfigError && err.message.includes(`${dir}/missing.yaml`),
    );
    // YAML the reader does not support is an error naming the file, the line and the construct.
    Deno.writeTextFileSync(bad, "version: 1\nroot:\n  level: &lvl INFO\n");
    await assert.rejects(
      () => configureLogging(bad),
      (err: Error) =>
        err instanceof ConfigError && err.message.includes(`${bad} line 3`) &&
        /anchors \(&name\) are not supported/.test(err.message),
    );
    Deno.writeTextFileSync(bad, "- just\n- a list\n");
    await assert.rejects(() => configureLogging(bad), /not a mapping/);
    getLogger(["dcm", "agent", "jobs"]).info("still logging");
  } finally {
    await shutdownLogging();
  }
  assert.match(read(good.log), /\] still logging$/m);
});

Deno.test("an unwritable log file is a clear error", async () => {
  const { dir, yaml } = writeYaml(`
version: 1
handlers:
  f: {class: logging.FileHandler, filename: $DIR/blocker/agent.log}
root: {handlers: [f]}
`);
  Deno.writeTextFileSync(`${dir}/blocker`, "a file where a directory should be");
  await assert.rejects(
    () => configureLogging(yaml),
    (err: Error) =>
      err instanceof ConfigError &&
      /cannot open the log file .*blocker\/agent\.log/.test(err.message),
  );
  await shutdownLogging();
});

Deno.test({
  name: "log files go to the owner the injected resolver finds; without one they keep theirs",
  // Giving a file away needs root.
  ignore: Deno.uid() !== 0,
  fn: async () => {
    const asked: string[] = [];
    const resolved = installTemplate("INFO");
    try {
      await configureLoggingWith(resolved.yaml, {
        resolveUser: (name) => {
          asked.push(name);
          return { uid: 65534, gid: 65534 };
        },
      });
      getLogger(["dcm", "agent", "jobs"]).info("owned");
    } finally {
      await shutdownLogging();
    }
    assert.ok(asked.every((name) => name === "nobody") && asked.length > 0, String(asked));
    assert.equal(Deno.statSync(resolved.log).uid, 65534);
    assert.doesNotMatch(read(resolved.log), /not a local user/);

    const plain = installTemplate("INFO");
    try {
      await configureLoggingWith(plain.yaml);
      getLogger(["dcm", "agent", "jobs"]).info("kept");
    } finally {
      await shutdownLogging();
    }
    assert.equal(Deno.statSync(plain.log).uid, 0);
    assert.match(read(plain.log), /handler file_handler: owner nobody is not a local user/);
  },
});
