/**
 * `dcm-agent configure -i` driven through a real terminal (a private tmux
 * server): the questions in order, Enter keeping the value shown, a wrong
 * answer explained and asked again, and -r values offered as defaults.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { parseConfigText } from "../../lib/config/agent_conf.ts";
import { REPO_ROOT } from "../../scripts/agent_process.ts";
import { delay } from "../helpers/wait.ts";

const PEM = "-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n";

function hasTmux(): boolean {
  try {
    return new Deno.Command("tmux", { args: ["-V"], stdout: "null", stderr: "null" }).outputSync()
      .success;
  } catch {
    return false;
  }
}

const TMUX = hasTmux();
if (!TMUX) {
  console.warn("configure_interactive_test: tmux is not installed (apt-get install tmux); skipped");
}

/** One configure run in its own tmux server. */
class Terminal {
  readonly #socket = `dcm-configure-test-${crypto.randomUUID().slice(0, 8)}`;
  readonly #rcFile: string;

  private constructor(rcFile: string) {
    this.#rcFile = rcFile;
  }

  /** Starts `configure ARGS` in a 200x60 terminal. */
  static start(dir: string, args: string[]): Terminal {
    const t = new Terminal(join(dir, `rc-${crypto.randomUUID()}`));
    const command = [Deno.execPath(), "run", "-A", join(REPO_ROOT, "main.ts"), "configure", ...args]
      .map((w) => `'${w}'`).join(" ");
    t.#tmux(
      "new-session",
      "-d",
      "-s",
      "t",
      "-x",
      "200",
      "-y",
      "60",
      `${command}; echo $? > '${t.#rcFile}'; sleep 60`,
    );
    return t;
  }

  #tmux(...args: string[]): string {
    const out = new Deno.Command("tmux", {
      args: ["-L", this.#socket, ...args],
      stdout: "piped",
      stderr: "piped",
    })
      .outputSync();
    if (!out.success) {
      throw new Error(`tmux ${args[0]} failed: ${new TextDecoder().decode(out.stderr)}`);
    }
    return new TextDecoder().decode(out.stdout);
  }

  /** The whole terminal contents, scrollback included. */
  screen(): string {
    return this.#tmux("capture-pane", "-p", "-t", "t", "-S", "-1000");
  }

  /** Waits until `text` is on the screen `count` times. */
  async waitFor(text: string, count = 1): Promise<void> {
    const deadline = Date.now() + 30_000;
    // capture-pane drops the blanks at line ends, such as the one after a question.
    const wanted = text.trimEnd();
    while (this.screen().split(wanted).length - 1 < count) {
      if (Date.now() > deadline) {
        throw new Error(`'${text}' (x${count}) never appeared; the screen:\n${this.screen()}`);
      }
      await delay(100);
    }
  }

  /** Types `text` and Enter. */
  answer(text: string): void {
    if (text !== "") this.#tmux("send-keys", "-t", "t", "-l", text);
    this.#tmux("send-keys", "-t", "t", "Enter");
  }

  /** Waits for configure to exit and returns its exit code. */
  async exitCode(): Promise<number> {
    const deadline = Date.now() + 30_000;
    while (true) {
      try {
        return Number((await Deno.readTextFile(this.#rcFile)).trim());
      } catch {
        if (Date.now() > deadline) {
          throw new Error(`configure did not exit; the screen:\n${this.screen()}`);
        }
        await delay(100);
      }
    }
  }

  /** Stops this test's own tmux server. */
  close(): void {
    try {
      this.#tmux("kill-server");
    } catch { /* already gone */ }
  }
}

Deno.test({
  name:
    "configure -i in a terminal: defaults, wrong answers asked again, then -r offers the current values",
  ignore: !TMUX,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "dcm-interactive-" });
    const base = join(dir, "dcm");
    const ca = join(dir, "ca.pem");
    const confFile = join(base, "etc/agent.conf");
    await Deno.writeTextFile(ca, PEM);
    try {
      // A fresh configuration; -c proposes Amazon, Enter keeps it.
      let t = Terminal.start(dir, [
        "-i",
        "-c",
        "Amazon",
        "-p",
        base,
        "-U",
        "root",
        "--root",
        join(dir, "root"),
      ]);
      try {
        await t.waitFor("Which cloud does this server run on?");
        await t.waitFor("Cloud (number or name) [Amazon]: ");
        t.answer("atlantis");
        await t.waitFor(
          "'atlantis' is not on the list; answer with a number from 1 to 25 or a cloud name.",
        );
        await t.waitFor("Cloud (number or name) [Amazon]: ", 2);
        t.answer("");
        await t.waitFor("Agent manager URL: ");
        t.answer("https://dcm.example.com/agentManager");
        await t.waitFor("the scheme 'https' is not ws or wss");
        await t.waitFor("Agent manager URL: ", 2);
        t.answer("wss://127.0.0.1:8080/agentManager");
        await t.waitFor("Disable certificate checking? This is insecure (y/N): ");
        t.answer("n");
        await t.waitFor("CA certificate file");
        t.answer(join(dir, "missing.pem"));
        await t.waitFor(
          "missing.pem does not exist; give the path of a PEM file of CA certificates.",
        );
        t.answer(ca);
        await t.waitFor("This will write:");
        await t.waitFor("Start the agent on boot? (y/N): ");
        t.answer("y");
        await t.waitFor(`Wrote ${confFile}.`);
        assert.equal(await t.exitCode(), 0, t.screen());
        assert.match(
          t.screen(),
          /The agent starts at boot\. Start it now with: \/etc\/init\.d\/dcm-agent start/,
        );
      } finally {
        t.close();
      }
      const conf = parseConfigText(await Deno.readTextFile(confFile), confFile);
      assert.equal(conf.cloud.type, "Amazon");
      assert.equal(conf.cloud.metadata_url, "http://169.254.169.254/latest/meta-data/");
      assert.equal(conf.connection.agentmanager_url, "wss://127.0.0.1:8080/agentManager");
      assert.equal(conf.connection.allow_unknown_certs, false);
      assert.equal(conf.connection.ca_cert, ca);
      assert.ok((await Deno.stat(join(dir, "root/etc/init.d/dcm-agent"))).isFile);

      // -r: every question shows the value read from the file; Enter keeps them all.
      const before = await Deno.readTextFile(confFile);
      t = Terminal.start(dir, ["-i", "-r", confFile, "--root", join(dir, "root2")]);
      try {
        await t.waitFor("Cloud (number or name) [Amazon]: ");
        t.answer("");
        await t.waitFor("Agent manager URL [wss://127.0.0.1:8080/agentManager]: ");
        t.answer("");
        await t.waitFor("Disable certificate checking? This is insecure (y/N): ");
        t.answer("");
        await t.waitFor(`CA certificate file [${ca}]: `);
        t.answer("");
        await t.waitFor("Start the agent on boot? (y/N): ");
        t.answer("");
        assert.equal(await t.exitCode(), 0, t.screen());
      } finally {
        t.close();
      }
      assert.equal(await Deno.readTextFile(confFile), before);
      await assert.rejects(Deno.stat(join(dir, "root2")));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
