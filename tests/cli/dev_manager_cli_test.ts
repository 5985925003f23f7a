/**
 * The development manager as a person uses it (`deno run -A
 * scripts/dev_manager.ts`), driven through its stdin against a real agent:
 * error texts are shown decoded, a command that would change this machine
 * is held back with a warning, the help says what the run_script checksum
 * is, and the manager stops when its input ends.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { AgentProcess, REPO_ROOT } from "../../scripts/agent_process.ts";
import { waitFor } from "../helpers/wait.ts";

Deno.test("dev manager CLI: decoded errors, a warning before host-changing commands, exit at end of input", async () => {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", join(REPO_ROOT, "scripts/dev_manager.ts"), "--port", "0"],
    cwd: REPO_ROOT,
    env: { NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let out = "";
  const pump = child.stdout.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (out += chunk) }),
  );
  const stderr = new Response(child.stderr).text();
  const stdin = child.stdin.getWriter();
  const type = (line: string) => stdin.write(new TextEncoder().encode(`${line}\n`));
  let agent: AgentProcess | undefined;
  try {
    const url = await waitFor(() => /listening on (ws:\/\/\S+)/.exec(out)?.[1], 30_000, "the URL");
    await waitFor(() => out.includes(":quit"), 10_000, "the help");
    assert.match(out, /checksum is of the script itself, before base64: sha256sum/);
    agent = await AgentProcess.start({ managerUrl: url });
    await agent.whileRunning(
      waitFor(() => out.includes("<- HANDSHAKE #1"), 30_000, "the handshake"),
      "the handshake",
    );

    // The reply's error text is percent-encoded on the wire and shown decoded.
    await type(`!run_script {"b64script":"ZWNobyBoaQo="}`);
    await waitFor(() => out.includes("== reply to run_script"), 30_000, "the run_script reply");
    const reply = out.slice(out.indexOf("== reply to run_script"));
    assert.match(reply, /"error_message": "required argument 'checksum' is missing"/);
    assert.match(out, /required%20argument/, "the frame itself is printed as it came");
    assert.match(out, /error_message, decoded: required argument 'checksum' is missing/);

    // A NACK's reason is decoded too.
    await type("no_such_command {}");
    await waitFor(() => out.includes("== no_such_command failed"), 30_000, "the NACK");
    assert.match(
      out,
      /== no_such_command failed: the agent NACKed it: the command 'no_such_command' is not known/,
    );

    // Held back, with the way to send it anyway: nothing reaches the agent.
    await type(`rename {"serverName":"dcm-cli-test-must-not-rename"}`);
    await waitFor(() => out.includes("== warning: rename"), 30_000, "the warning");
    assert.match(
      out,
      /== warning: rename changes THIS machine for real \(the agent runs here as root\); not sent\. To send it anyway: !rename/,
    );
    assert.doesNotMatch(out, /command=rename/);

    // End of input: the manager stops by itself.
    await stdin.close();
    const status = await agent.whileRunning(child.status, "the manager to exit");
    assert.equal(status.code, 0, await stderr);
    await pump;
    assert.match(out, /== input ended; stopping/);
  } finally {
    try {
      child.kill("SIGKILL");
    } catch { /* exited */ }
    await child.status;
    if (agent) {
      await agent.stop().catch(() => {});
      await agent.cleanup();
    }
  }
});
