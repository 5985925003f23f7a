import assert from "node:assert/strict";
import { groupMembers, waitGroupGone } from "../helpers/process_group.ts";
import {
  killAllProcessGroups,
  ProcessStartError,
  runningProcessCount,
  runProcess,
} from "../../lib/os/process_runner.ts";

const BASE = { env: { PATH: "/usr/bin:/bin" }, clearEnv: true, maxOutputBytes: 65536 };

Deno.test("runProcess returns exit code, stdout and stderr and passes exactly env", async () => {
  const result = await runProcess(
    ["sh", "-c", 'echo "out $FOO"; echo err >&2; tr "\\0" "\\n" < /proc/$$/environ; exit 7'],
    { ...BASE, env: { PATH: "/usr/bin:/bin", FOO: "bar" } },
  );
  assert.equal(result.code, 7);
  assert.equal(result.stderr, "err\n");
  const [first, ...environ] = result.stdout.trim().split("\n");
  assert.equal(first, "out bar");
  assert.deepEqual(environ.sort(), ["FOO=bar", "PATH=/usr/bin:/bin"]);
  assert.deepEqual(
    [result.timedOut, result.cancelled, result.truncated],
    [false, false, false],
  );
  assert.equal(runningProcessCount(), 0);
});

Deno.test("runProcess writes the stdin text to the child, and copes with a child that ignores it", async () => {
  const fed = await runProcess(["sh", "-c", "cat; echo end"], {
    ...BASE,
    stdin: "line 1\nline 2\n",
  });
  assert.equal(fed.code, 0);
  assert.equal(fed.stdout, "line 1\nline 2\nend\n");
  // More than a pipe buffer holds, to a child that exits without reading: no hang, no error.
  const ignored = await runProcess(["sh", "-c", "exit 5"], {
    ...BASE,
    stdin: "x".repeat(1024 * 1024),
    timeoutMs: 5000,
  });
  assert.equal(ignored.code, 5);
  assert.equal(ignored.timedOut, false);
  const closed = await runProcess(["sh", "-c", "cat | wc -c"], BASE);
  assert.equal(closed.stdout.trim(), "0", "without stdin text the child reads /dev/null");
});

Deno.test("runProcess decodes invalid UTF-8 leniently", async () => {
  const result = await runProcess(["printf", "a\\377b"], BASE);
  assert.equal(result.stdout, "a\uFFFDb");
});

Deno.test("runProcess reports a missing executable with a clear error", async () => {
  await assert.rejects(
    () => runProcess(["/nonexistent/dcm-no-such-program"], BASE),
    (err: Error) => {
      assert.ok(err instanceof ProcessStartError);
      assert.match(err.message, /cannot start '\/nonexistent\/dcm-no-such-program'/);
      assert.match(err.message, /No such file/);
      return true;
    },
  );
  assert.equal(runningProcessCount(), 0);
});

Deno.test("runProcess timeout kills the whole process tree", async () => {
  const started = Date.now();
  const result = await runProcess(
    ["sh", "-c", "sleep 30 & echo $$ $!; sleep 30"],
    { ...BASE, timeoutMs: 300 },
  );
  assert.ok(Date.now() - started < 3000, "the timeout did not stop the process quickly");
  assert.equal(result.timedOut, true);
  assert.equal(result.cancelled, false);
  assert.notEqual(result.code, 0);
  const [pgid, background] = result.stdout.trim().split(" ").map(Number);
  assert.ok(pgid > 0 && background > 0);
  assert.deepEqual(await waitGroupGone(pgid), []);
  assert.equal(runningProcessCount(), 0);
});

Deno.test("runProcess escalates to SIGKILL for children that ignore SIGTERM", async () => {
  const started = Date.now();
  const result = await runProcess(
    ["sh", "-c", "(trap '' TERM; sleep 30) & echo $$; trap '' TERM; sleep 30"],
    { ...BASE, timeoutMs: 200, killGraceMs: 300 },
  );
  const elapsed = Date.now() - started;
  assert.ok(elapsed >= 450 && elapsed < 3000, `took ${elapsed} ms`);
  assert.equal(result.timedOut, true);
  assert.deepEqual(await waitGroupGone(Number(result.stdout.trim())), []);
});

Deno.test("runProcess abort signal kills the tree and reports cancelled", async () => {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), 200);
  const result = await runProcess(
    ["sh", "-c", "sleep 30 & echo $$; sleep 30"],
    { ...BASE, signal: controller.signal },
  );
  clearTimeout(timer);
  assert.equal(result.cancelled, true);
  assert.equal(result.timedOut, false);
  assert.deepEqual(await waitGroupGone(Number(result.stdout.trim())), []);
});

Deno.test("runProcess does not start a child when the signal is already aborted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "dcm-runner-test-" });
  try {
    // A marker file shows whether the child ran at all; empty stdout alone would not.
    const marker = `${dir}/ran`;
    const result = await runProcess(["sh", "-c", `touch ${marker}; echo never`], {
      ...BASE,
      signal: AbortSignal.abort(),
    });
    assert.deepEqual(result, {
      code: 1,
      stdout: "",
      stderr: "",
      timedOut: false,
      cancelled: true,
      truncated: false,
    });
    await new Promise((resolve) => setTimeout(resolve, 100));
    await assert.rejects(() => Deno.stat(marker), Deno.errors.NotFound);
    assert.equal(runningProcessCount(), 0);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("runProcess caps each stream, marks the cut and keeps draining", async () => {
  const result = await runProcess(
    ["sh", "-c", "head -c 5000000 /dev/zero | tr '\\0' a; head -c 3000 /dev/zero | tr '\\0' b >&2"],
    { ...BASE, maxOutputBytes: 1000 },
  );
  assert.equal(result.code, 0);
  assert.equal(result.truncated, true);
  assert.equal(
    result.stdout,
    "a".repeat(1000) +
      "\n[dcm-agent: output truncated after 1000 bytes; 5000000 bytes were written]",
  );
  assert.ok(result.stderr.startsWith("b".repeat(1000) + "\n[dcm-agent: output truncated"));
});

Deno.test("runProcess returns when the child exits but a background process holds the pipes", async () => {
  const started = Date.now();
  const result = await runProcess(["sh", "-c", "sleep 30 & echo $$ $!"], BASE);
  assert.ok(Date.now() - started < 3000, "waited for the background process");
  assert.equal(result.code, 0);
  const [pgid, background] = result.stdout.trim().split(" ").map(Number);
  // A script that finished normally may leave services behind: they are not killed.
  assert.deepEqual(groupMembers(pgid), [background]);
  Deno.kill(background, "SIGKILL");
  assert.deepEqual(await waitGroupGone(pgid), []);
});

Deno.test("killAllProcessGroups kills running children and runningProcessCount tracks them", async () => {
  const running = runProcess(["sh", "-c", "sleep 30 & sleep 30"], BASE);
  for (let i = 0; i < 100 && runningProcessCount() === 0; i++) {
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  assert.equal(runningProcessCount(), 1);
  killAllProcessGroups();
  const result = await running;
  assert.equal(result.code, 137);
  assert.equal(runningProcessCount(), 0);
});
