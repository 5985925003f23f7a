/**
 * The scrubber on a throw-away root: users with histories and keys, DHCP
 * leases, logs and agent files; the exact set of deleted files, a dry run,
 * symbolic links out of the tree left alone, and the recovery archive
 * restored byte for byte with openssl and tar (encrypted and not).
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { planScrub, scrub, truncateAgentLogs } from "../../lib/os/scrubber/mod.ts";
import { scrubMain } from "../../lib/cli/scrub.ts";

const PEM_RSA = "-----BEGIN RSA PRIVATE KEY-----\nMIIBfake\n-----END RSA PRIVATE KEY-----\n";
const OPENSSH = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3Blbn\n-----END OPENSSH PRIVATE KEY-----\n";

/** Files of the fake system (path inside the root → content). */
const FILES: Record<string, string> = {
  "/root/.bash_history": "ls\nrm -rf /tmp/x\n",
  "/root/.python_history": "import os\n",
  "/root/.ssh/id_rsa": PEM_RSA,
  "/root/.ssh/id_ed25519": OPENSSH,
  "/root/.ssh/id_rsa.pub": "ssh-rsa AAAA root@host\n",
  "/root/.ssh/authorized_keys": "ssh-rsa AAAA admin\n",
  "/home/alice/.bash_history": "whoami\n",
  "/home/alice/.local/share/.mysql_history": "select 1;\n",
  "/home/alice/notes.txt": "keep me\n",
  "/home/alice/.ssh/authorized_keys": "ssh-ed25519 AAAA alice\n",
  "/home/alice/.ssh/config": "Host *\n",
  "/var/lib/dhcp/dhclient.eth0.leases": "lease {}\n",
  "/var/lib/dhcp/dhclient.conf": "keep\n",
  "/var/lib/dhclient/eth1.info": "info\n",
  "/var/log/auth.log": "auth\n",
  "/var/log/apt/history.log": "apt\n",
  "/var/log/syslog.2.gz": "gz\n",
  "/var/log/syslog": "kept: no .log suffix\n",
  "/var/lib/waagent/provisioned": "",
  "/tmp/boot.log": "boot\n",
  "/tmp/keep.txt": "keep\n",
  "/dcm/logs/agent.log": "agent log\n",
  "/dcm/secure/agentdb.sql": "db\n",
  "/dcm/secure/token": "tok\n",
};

interface Fixture {
  root: string;
  outside: string;
  cleanup(): Promise<void>;
}

async function makeRoot(): Promise<Fixture> {
  const root = await Deno.makeTempDir({ prefix: "dcm-scrub-root-" });
  const outside = await Deno.makeTempDir({ prefix: "dcm-scrub-outside-" });
  for (const [path, text] of Object.entries(FILES)) {
    await Deno.mkdir(join(root, path, ".."), { recursive: true });
    await Deno.writeTextFile(join(root, path), text);
  }
  await Deno.mkdir(join(root, "etc"));
  await Deno.writeTextFile(
    join(root, "etc/passwd"),
    [
      "root:x:0:0:root:/root:/bin/bash",
      "alice:x:1000:1000::/home/alice:/bin/bash",
      "bob:x:1001:1001::/home/bob:/bin/bash",
      "nobody:x:65534:65534::/nonexistent:/usr/sbin/nologin",
      "odd:x:1002:1002::/:/bin/sh",
      "",
    ].join("\n"),
  );
  // Links that point out of the tree: a history file, and bob's whole home.
  await Deno.writeTextFile(join(outside, "precious_history"), "outside\n");
  await Deno.mkdir(join(outside, "bobhome"));
  await Deno.writeTextFile(join(outside, "bobhome/.bash_history"), "bob outside\n");
  await Deno.symlink(join(outside, "precious_history"), join(root, "home/alice/.zsh_history"));
  await Deno.symlink(join(outside, "bobhome"), join(root, "home/bob"));
  await Deno.symlink(join(outside, "precious_history"), join(root, "var/log/linked.log"));
  return {
    root,
    outside,
    cleanup: async () => {
      await Deno.remove(root, { recursive: true });
      await Deno.remove(outside, { recursive: true });
    },
  };
}

/** Every regular file and link below `dir` (paths relative to it, with "/" first) → content or link target. */
function snapshot(dir: string, sub = ""): Map<string, string> {
  const out = new Map<string, string>();
  for (const e of Deno.readDirSync(join(dir, sub))) {
    const rel = `${sub}/${e.name}`;
    if (e.isSymlink) out.set(rel, `-> ${Deno.readLinkSync(join(dir, rel))}`);
    else if (e.isDirectory) { for (const [k, v] of snapshot(dir, rel)) out.set(k, v); }
    else out.set(rel, Deno.readTextFileSync(join(dir, rel)));
  }
  return out;
}

const ALL = {
  dhcp: true,
  history: true,
  privateKeys: true,
  authorizedKeys: true,
  agent: true,
  agentToken: true,
  cleanLogs: true,
};

const EXPECTED_ALL = [
  "/dcm/logs/agent.log",
  "/dcm/secure/agentdb.sql",
  "/dcm/secure/token",
  "/home/alice/.bash_history",
  "/home/alice/.local/share/.mysql_history",
  "/home/alice/.ssh/authorized_keys",
  "/root/.bash_history",
  "/root/.python_history",
  "/root/.ssh/authorized_keys",
  "/root/.ssh/id_ed25519",
  "/root/.ssh/id_rsa",
  "/tmp/boot.log",
  "/var/lib/dhclient/eth1.info",
  "/var/lib/dhcp/dhclient.eth0.leases",
  "/var/lib/waagent/provisioned",
  "/var/log/apt/history.log",
  "/var/log/auth.log",
  "/var/log/syslog.2.gz",
];

async function sh(cmd: string[], cwd?: string): Promise<string> {
  const out = await new Deno.Command(cmd[0], { args: cmd.slice(1), cwd, stderr: "piped" }).output();
  const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
  assert.equal(out.code, 0, `${cmd.join(" ")} failed: ${text}`);
  return text;
}

Deno.test("scrub: dry run lists exactly the files, deletes nothing, skips links out of the tree", async () => {
  const f = await makeRoot();
  try {
    const before = snapshot(f.root);
    const r = await scrub({ root: f.root, ...ALL, dryRun: true, rescueFile: "/nonexistent/x" });
    assert.deepEqual(r.files, EXPECTED_ALL);
    assert.deepEqual(snapshot(f.root), before);
    assert.deepEqual(r.skipped.map((s) => s.path), [
      "/home/alice/.zsh_history",
      "/home/bob",
      "/var/log/linked.log",
    ]);
    // Only the always-deleted marker without options; -X keeps the agent's logs and journal.
    assert.deepEqual(planScrub({ root: f.root }).files, ["/var/lib/waagent/provisioned"]);
    assert.deepEqual(planScrub({ root: f.root, agent: true, agentRunning: true }).files, [
      "/tmp/boot.log",
      "/var/lib/waagent/provisioned",
    ]);
    // The CLI prints the same list, one path a line, and still deletes nothing.
    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: () => {}, ask: () => null };
    assert.equal(
      await scrubMain(["--root", f.root, "-D", "-dHkaAtl", "--base-dir", "/dcm"], io),
      0,
    );
    assert.deepEqual(lines, EXPECTED_ALL);
    assert.deepEqual(snapshot(f.root), before);
    // Without -b and without a terminal it refuses to run.
    assert.equal(await scrubMain(["--root", f.root, "-H"], io), 2);
    assert.deepEqual(snapshot(f.root), before);
  } finally {
    await f.cleanup();
  }
});

Deno.test("scrub: deletes exactly the planned files; the encrypted archive restores them byte for byte", async () => {
  const f = await makeRoot();
  const keys = await Deno.makeTempDir({ prefix: "dcm-scrub-keys-" });
  try {
    await sh(["openssl", "genrsa", "-out", join(keys, "id_rsa"), "2048"]);
    const sshPub = await sh(["ssh-keygen", "-y", "-f", join(keys, "id_rsa")]);
    await Deno.writeTextFile(join(keys, "id_rsa.pub"), sshPub);
    const before = snapshot(f.root);
    const outsideBefore = snapshot(f.outside);
    const rescue = join(keys, "rescue.tar.gz");
    const lines: string[] = [];
    const io = { out: (t: string) => lines.push(t), err: () => {}, ask: () => null };
    const code = await scrubMain([
      "--root",
      f.root,
      "--base-dir",
      "/dcm",
      "-b",
      "-dHkaAtl",
      "-r",
      rescue,
      "-e",
      join(keys, "id_rsa.pub"),
    ], io);
    assert.equal(code, 0);
    assert.deepEqual(lines, EXPECTED_ALL.map((p) => `deleted ${p}`));
    const after = snapshot(f.root);
    const gone = [...before.keys()].filter((k) => !after.has(k)).sort();
    assert.deepEqual(gone, EXPECTED_ALL);
    for (const [k, v] of after) assert.equal(v, before.get(k), k);
    assert.deepEqual(snapshot(f.outside), outsideBefore, "nothing outside the root changed");
    assert.equal(Deno.statSync(rescue).mode! & 0o777, 0o600);

    // The archive: recovery.sh, the encrypted data, the encrypted key; no plain tar inside.
    const unpacked = join(keys, "unpacked");
    await Deno.mkdir(unpacked);
    await sh(["tar", "-xzf", rescue, "-C", unpacked]);
    assert.deepEqual([...Deno.readDirSync(unpacked)].map((e) => e.name).sort(), [
      "data.enc",
      "key",
      "public_key",
      "recovery.sh",
    ]);
    const head = new TextDecoder().decode(
      Deno.readFileSync(join(unpacked, "data.enc")).slice(0, 8),
    );
    assert.equal(head, "Salted__");
    // The wrong private key cannot open it.
    await sh(["openssl", "genrsa", "-out", join(keys, "other"), "2048"]);
    const wrong = await new Deno.Command("sh", {
      args: [join(unpacked, "recovery.sh"), join(keys, "wrong"), join(keys, "other")],
      stdout: "null",
      stderr: "null",
    }).output();
    assert.notEqual(wrong.code, 0);

    const dest = join(keys, "restored");
    await sh(["sh", join(unpacked, "recovery.sh"), dest, join(keys, "id_rsa")]);
    const restored = snapshot(dest);
    assert.deepEqual([...restored.keys()].sort(), EXPECTED_ALL);
    for (const [k, v] of restored) assert.equal(v, before.get(k), `${k} restored byte for byte`);
  } finally {
    await f.cleanup();
    await Deno.remove(keys, { recursive: true });
  }
});

Deno.test("scrub: -X keeps the agent's journal and logs; an unencrypted archive restores too; logs truncate", async () => {
  const f = await makeRoot();
  const work = await Deno.makeTempDir({ prefix: "dcm-scrub-work-" });
  try {
    const rescue = join(work, "rescue.tar.gz");
    const r = await scrub({
      root: f.root,
      agent: true,
      agentRunning: true,
      history: true,
      rescueFile: rescue,
    });
    assert.equal(r.encrypted, false);
    assert.ok(Deno.statSync(join(f.root, "dcm/secure/agentdb.sql")).isFile);
    assert.ok(Deno.statSync(join(f.root, "dcm/logs/agent.log")).isFile);
    await sh(["tar", "-xzf", rescue, "-C", work]);
    await sh(["sh", join(work, "recovery.sh"), join(work, "dest")]);
    const restored = snapshot(join(work, "dest"));
    assert.deepEqual([...restored.keys()].sort(), r.files);
    for (const [k, v] of restored) assert.equal(v, FILES[k]);

    // A bad key refuses before anything is deleted.
    await assert.rejects(
      scrub({ root: f.root, cleanLogs: true, rescueFile: rescue, publicKey: "ssh-ed25519 AAAA" }),
      /RSA public key/,
    );
    assert.ok(Deno.statSync(join(f.root, "var/log/auth.log")).isFile);

    const logs = join(f.root, "dcm/logs");
    await Deno.writeTextFile(join(logs, "agent.log.1"), "old");
    await Deno.writeTextFile(join(logs, "agent.log.2.gz"), "old");
    truncateAgentLogs(logs);
    assert.deepEqual([...Deno.readDirSync(logs)].map((e) => e.name), ["agent.log"]);
    assert.equal(Deno.statSync(join(logs, "agent.log")).size, 0);
  } finally {
    await f.cleanup();
    await Deno.remove(work, { recursive: true });
  }
});
