/**
 * `dcm-agent scrub`: prepares a VM to become an image by deleting histories,
 * keys, leases, logs and the agent's traces, with the original
 * dcm-agent-scrubber's options. Every deleted file can first be saved in an
 * (encrypted) recovery archive.
 */
import { parseArgs } from "node:util";
import { loadConfig } from "../config/mod.ts";

const SCRUB_USAGE = `Usage: dcm-agent scrub [options]

Deletes files that must not end up in an image. /var/lib/waagent/provisioned
is always deleted; the options add more. Symbolic links are never followed
nor deleted.
  -d, --dhcp              DHCP leases (*.lease*, *.info under /var/lib/dhcp*, dhclient, dhcpcd)
  -H, --history           files named .*hist* in every user's home directory
  -k, --private-keys      private keys in every user's ~/.ssh
  -a, --authorized-keys   every user's ~/.ssh/authorized_keys
  -A, --agent             the agent's temporary and report files in /tmp, and
                          its logs and journal (unless -X: the agent is running)
  -t, --agent-token       the agent's token (<base>/secure/token)
  -l, --clean-logs        *.log and *.gz under /var/log
  -r, --rescue-file FILE  save every deleted file in this recovery archive first
  -e, --public-key FILE   encrypt the archive for this RSA public key (ssh-rsa or PEM);
                          restore with: tar xzf FILE && sh recovery.sh DEST PRIVATE_KEY
  -D, --dry-run           list what would be deleted; delete nothing
  -b, --batch             ask nothing (needed when stdin is not a terminal)
  -X, --agent-running     keep the agent's logs and journal (clean_image uses it)
  -c, --cloud-init        accepted for compatibility; does nothing
      --base-dir DIR      the agent's base directory (default: from agent.conf, else /dcm)
      --config FILE       the agent.conf to read the base directory from
      --root DIR          scrub a mounted image at DIR instead of this system
  -v, --verbose           also list what was left alone and why
  -h, --help              print this help`;

/** Where scrub writes and how it asks (tests capture it). */
export interface ScrubIo {
  out(text: string): void;
  err(text: string): void;
  /** Asks a question; null when there is no terminal. */
  ask(question: string): string | null;
}

const CONSOLE_IO: ScrubIo = {
  out: (t) => console.log(t),
  err: (t) => console.error(t),
  ask: (q) => Deno.stdin.isTerminal() ? prompt(q) : null,
};

/** Runs `dcm-agent scrub`; returns the exit code. */
export async function scrubMain(args: string[], io: ScrubIo = CONSOLE_IO): Promise<number> {
  let values;
  try {
    values = parseArgs({
      args,
      strict: true,
      allowPositionals: false,
      options: {
        dhcp: { type: "boolean", short: "d" },
        history: { type: "boolean", short: "H" },
        "private-keys": { type: "boolean", short: "k" },
        "authorized-keys": { type: "boolean", short: "a" },
        agent: { type: "boolean", short: "A" },
        "agent-token": { type: "boolean", short: "t" },
        "clean-logs": { type: "boolean", short: "l" },
        "rescue-file": { type: "string", short: "r" },
        "public-key": { type: "string", short: "e" },
        "dry-run": { type: "boolean", short: "D" },
        batch: { type: "boolean", short: "b" },
        "agent-running": { type: "boolean", short: "X" },
        "agent_running": { type: "boolean" },
        "cloud-init": { type: "boolean", short: "c" },
        "base-dir": { type: "string" },
        config: { type: "string" },
        root: { type: "string" },
        verbose: { type: "boolean", short: "v", multiple: true },
        help: { type: "boolean", short: "h" },
      },
    }).values;
  } catch (err) {
    io.err(`dcm-agent scrub: ${(err as Error).message}\n\n${SCRUB_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(SCRUB_USAGE);
    return 0;
  }
  const dryRun = values["dry-run"] ?? false;
  let rescueFile = values["rescue-file"] ?? null;
  let keyFile = values["public-key"] ?? null;
  if (!values.batch && !dryRun) {
    if (rescueFile === null) {
      const answer = io.ask("Save the deleted files in a recovery archive? Its path (empty: no):");
      if (answer === null) {
        io.err("dcm-agent scrub: stdin is not a terminal; add -b to run without questions");
        return 2;
      }
      rescueFile = answer.trim() || null;
    }
    if (rescueFile !== null && keyFile === null) {
      const home = Deno.env.get("HOME") ?? "/root";
      const answer = io.ask(
        `Encrypt it for an RSA public key? Its path (empty: ${home}/.ssh/id_rsa.pub, '-': no):`,
      );
      const a = (answer ?? "").trim();
      keyFile = a === "-" ? null : a || `${home}/.ssh/id_rsa.pub`;
    }
  }
  let publicKey: string | null = null;
  if (keyFile !== null) {
    try {
      publicKey = Deno.readTextFileSync(keyFile);
    } catch (err) {
      io.err(`dcm-agent scrub: cannot read the public key ${keyFile}: ${(err as Error).message}`);
      return 1;
    }
  }
  const baseDir = values["base-dir"] ?? configuredBaseDir(values.config);
  const { scrub } = await import("../os/scrubber/mod.ts");
  const options = {
    root: values.root ?? "/",
    baseDir,
    dhcp: values.dhcp,
    history: values.history,
    privateKeys: values["private-keys"],
    authorizedKeys: values["authorized-keys"],
    agent: values.agent,
    agentToken: values["agent-token"],
    agentRunning: values["agent-running"] || values["agent_running"],
    cleanLogs: values["clean-logs"],
    rescueFile,
    publicKey,
  };
  if (!values.batch && !dryRun) {
    const preview = await scrub({ ...options, dryRun: true });
    for (const f of preview.files) io.out(f);
    const answer = io.ask(`Delete these ${preview.files.length} file(s)? [y/N]`) ?? "";
    if (!/^y(es)?$/i.test(answer.trim())) {
      io.err("dcm-agent scrub: nothing deleted");
      return 1;
    }
  }
  try {
    const result = await scrub({ ...options, dryRun });
    for (const f of result.files) io.out(dryRun ? f : `deleted ${f}`);
    if (values.verbose?.length || dryRun) {
      for (const s of result.skipped) io.err(`left alone: ${s.path}: ${s.reason}`);
    }
    if (result.rescueFile) {
      io.err(
        `recovery archive: ${result.rescueFile} (${
          result.encrypted ? "encrypted" : "not encrypted"
        })` +
          `; restore with: tar xzf ${result.rescueFile} && sh recovery.sh DEST` +
          (result.encrypted ? " PRIVATE_KEY" : ""),
      );
    }
    return 0;
  } catch (err) {
    io.err(`dcm-agent scrub: ${(err as Error).message}`);
    return 1;
  }
}

/** The base directory from agent.conf, or /dcm when there is none. */
function configuredBaseDir(file: string | undefined): string {
  try {
    return loadConfig({ file }).storage.base_dir ?? "/dcm";
  } catch {
    return "/dcm";
  }
}
