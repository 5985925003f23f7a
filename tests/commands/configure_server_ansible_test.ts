/**
 * configure_server with a real Ansible (Debian's ansible-core): a playbook
 * archive served over http from 127.0.0.1 and a local git repository run with
 * ansible-pull, success and failure, end to end through the development manager.
 */
import assert from "node:assert/strict";
import { configureServer, logFrames, startCmAgent } from "../helpers/config_management.ts";
import { runProgram } from "../helpers/run.ts";

function requireAnsible(): void {
  for (const f of ["/usr/bin/ansible-playbook", "/usr/bin/ansible-pull", "/usr/bin/git"]) {
    try {
      Deno.statSync(f);
    } catch {
      throw new Error(
        `${f} is missing: install the Debian packages ansible-core and git ` +
          "(scripts/test.sh does) to run the Ansible tests",
      );
    }
  }
}

async function must(cmd: string, args: string[], cwd?: string): Promise<void> {
  const r = await runProgram(cmd, args, { cwd });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${r.stderr}`);
}

/** A playbook that writes `environmentId` into `dest`. */
function writer(dest: string): string {
  return [
    "- hosts: localhost",
    "  gather_facts: false",
    "  tasks:",
    "    - ansible.builtin.copy:",
    `        content: "env={{ environmentId | default('none') }}\\n"`,
    `        dest: ${dest}`,
    "",
  ].join("\n");
}

const FAILING = [
  "- hosts: localhost",
  "  gather_facts: false",
  "  tasks:",
  "    - ansible.builtin.fail:",
  "        msg: dcm ansible test failure",
  "",
].join("\n");

Deno.test({
  name: "configure_server runs Ansible playbooks from an archive and from git",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    requireAnsible();
    const work = await Deno.makeTempDir({ prefix: "dcm-ansible-test-" });
    await Deno.chmod(work, 0o755);
    const out = `${work}/out`;
    await Deno.mkdir(out, { mode: 0o777 });
    await Deno.chmod(out, 0o1777);

    // The archive: project/site.yml, project/fail.yml (one top directory, as `git archive --prefix` makes).
    await Deno.mkdir(`${work}/src/project`, { recursive: true });
    await Deno.writeTextFile(`${work}/src/project/site.yml`, writer(`${out}/from-archive.txt`));
    await Deno.writeTextFile(`${work}/src/project/fail.yml`, FAILING);
    await must("tar", ["-czf", `${work}/playbooks.tar.gz`, "-C", `${work}/src`, "project"]);
    const archive = await Deno.readFile(`${work}/playbooks.tar.gz`);
    const http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      (req) =>
        new URL(req.url).pathname === "/playbooks.tar.gz"
          ? new Response(archive)
          : new Response("not found", { status: 404 }),
    );
    const base = `http://127.0.0.1:${http.addr.port}`;

    // The git repository.
    const repo = `${work}/repo`;
    await Deno.mkdir(repo);
    await must("git", ["init", "-q"], repo);
    await Deno.writeTextFile(`${repo}/local.yml`, writer(`${out}/from-git.txt`));
    await Deno.writeTextFile(`${repo}/fail.yml`, FAILING);
    await must("git", ["add", "."], repo);
    await must("git", [
      "-c",
      "user.email=t@example.com",
      "-c",
      "user.name=t",
      "commit",
      "-qm",
      "init",
    ], repo);

    const user = `dcmans${crypto.randomUUID().slice(0, 6)}`;
    await must("useradd", ["-m", "-s", "/bin/sh", user]);
    const cm = await startCmAgent();
    try {
      await t.step("an archive playbook runs as runAsUser with environmentId", async () => {
        const { reply } = await configureServer(cm, {
          configType: "ansible",
          endpoint: `${base}/playbooks.tar.gz`,
          environmentId: "staging",
          runAsUser: user,
        });
        assert.equal(reply.return_code, 0, JSON.stringify(reply));
        assert.equal(reply.reply_type, "string");
        assert.match(String(reply.reply_object), /PLAY RECAP/);
        assert.equal(await Deno.readTextFile(`${out}/from-archive.txt`), "env=staging\n");
        const uid = Number((await runProgram("id", ["-u", user])).stdout.trim());
        assert.equal(Deno.statSync(`${out}/from-archive.txt`).uid, uid);
        assert.deepEqual(
          [...Deno.readDirSync(`${cm.agent.baseDir}/tmp`)].filter((e) =>
            e.name.startsWith("dcm-cm-")
          ),
          [],
        );
      });

      await t.step("a failing archive playbook: its failed task is the message", async () => {
        const { reply } = await configureServer(cm, {
          configType: "ANSIBLE",
          endpoint: `${base}/playbooks.tar.gz`,
          runListIds: ["fail.yml"],
        });
        assert.equal(reply.return_code, 2, JSON.stringify(reply));
        // Ansible reports failed tasks on stdout; stderr is empty here.
        assert.match(String(reply.message), /dcm ansible test failure/);
        assert.ok(
          logFrames(cm.manager).some((l) =>
            l.level === "INFO" && /dcm ansible test failure/.test(l.message)
          ),
        );
      });

      await t.step("an archive that is not there says so", async () => {
        const { reply } = await configureServer(cm, {
          configType: "ansible",
          endpoint: `${base}/missing.tar.gz`,
        });
        assert.equal(reply.return_code, 1);
        assert.match(decodeURIComponent(String(reply.error_message)), /answered HTTP 404/);
      });

      await t.step("a git repository runs with ansible-pull", async () => {
        const { reply } = await configureServer(cm, {
          configType: "ansible",
          endpoint: `file://${repo}`,
          runListIds: ["local.yml"],
          environmentId: "prod",
        });
        assert.equal(reply.return_code, 0, JSON.stringify(reply));
        assert.equal(await Deno.readTextFile(`${out}/from-git.txt`), "env=prod\n");
      });

      await t.step("a failing git playbook fails", async () => {
        const { reply } = await configureServer(cm, {
          configType: "ansible",
          endpoint: `file://${repo}`,
          runListIds: ["fail.yml"],
        });
        assert.notEqual(reply.return_code, 0, JSON.stringify(reply));
        assert.match(String(reply.message), /dcm ansible test failure/);
      });

      await t.step("a playbook outside the repository is refused", async () => {
        const { reply } = await configureServer(cm, {
          configType: "ansible",
          endpoint: `file://${repo}`,
          runListIds: ["../../etc/evil.yml"],
        });
        assert.equal(reply.return_code, 1);
        assert.match(decodeURIComponent(String(reply.error_message)), /outside the repository/);
      });
    } finally {
      await cm.close();
      await http.shutdown();
      await runProgram("userdel", ["-r", user]);
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
