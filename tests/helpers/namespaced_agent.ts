/**
 * An AgentProcess entry point that runs the real agent (main.ts) inside
 * private mount, UTS and PID namespaces, with a copy of /etc, an empty /home
 * and an empty /var/mail bind-mounted over the real ones. The agent's
 * useradd, userdel, visudo, hostname and pkill then change only the copies,
 * and the test machine keeps its users and its name.
 *
 * Usage (through AgentProcess): deno run -A tests/helpers/namespaced_agent.ts run -c FILE,
 * with DCM_TEST_NS_ROOT naming a directory that holds etc/, home/ and mail/.
 */
import { REPO_ROOT } from "../../scripts/agent_process.ts";

const root = Deno.env.get("DCM_TEST_NS_ROOT");
if (!root) {
  console.error("namespaced_agent: set DCM_TEST_NS_ROOT to a directory with etc/, home/, mail/");
  Deno.exit(2);
}
// The paths travel as positional parameters ("$1"...), never inside the script text.
const script = 'mount --bind "$1" /etc && mount --bind "$2" /home && mount --bind "$3" /var/mail' +
  ' && shift 3 && exec "$@"';
const child = new Deno.Command("unshare", {
  args: [
    "--mount",
    "--uts",
    "--pid",
    "--fork",
    "--kill-child",
    "--mount-proc",
    "--propagation",
    "private",
    "--",
    "sh",
    "-c",
    script,
    "sh",
    `${root}/etc`,
    `${root}/home`,
    `${root}/mail`,
    Deno.execPath(),
    "run",
    "-A",
    `${REPO_ROOT}/main.ts`,
    ...Deno.args,
  ],
  stdin: "null",
}).spawn();

// unshare ignores SIGTERM while it waits, so a graceful stop is passed to the whole
// process group (this wrapper leads it), which includes the agent.
let forwarded = false;
Deno.addSignalListener("SIGTERM", () => {
  if (forwarded) return;
  forwarded = true;
  Deno.kill(-Deno.pid, "SIGTERM");
});
const status = await child.status;
Deno.exit(status.code);
