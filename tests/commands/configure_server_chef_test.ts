/**
 * configure_server with Chef, end to end through the development manager.
 *
 * Why a stand-in: no Chef client can be installed on these machines (Debian 12
 * has none, and only the npm registry and Debian's archive are reachable). So
 * `chef-client` here is a small shell script on the agent's PATH that records
 * its arguments and checks what the agent gives it (client.rb content, the
 * validation key's mode 0600, the run list in first-boot.json). Everything up
 * to the client is real: the agent process, the manager, the files, the
 * installer download with its SHA-256 check. The stand-in also prints the
 * validation key, as a leaky tool might, for the secrets test.
 */
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { b64, configureServer, logFrames, startCmAgent } from "../helpers/config_management.ts";
import { buildReport } from "../../lib/cli/report.ts";
import { loadConfig } from "../../lib/config/mod.ts";
import { runProgram } from "../helpers/run.ts";
import { waitFor } from "../helpers/wait.ts";
import { pathExists } from "../../lib/os/fs_stat.ts";

/** The stand-in chef-client; behaviour chosen by the file $RECORD/mode ("ok" or "fail"). */
function standIn(record: string): string {
  return `#!/bin/sh
# Stand-in chef-client for tests (see the test file header).
rec=${record}
printf '%s\\n' "$@" > "$rec/args"
conf=""; json=""; env=""
while [ $# -gt 0 ]; do
  case "$1" in
    -c) conf="$2"; shift 2 ;;
    -j) json="$2"; shift 2 ;;
    -E) env="$2"; shift 2 ;;
    *) echo "unexpected argument $1" >&2; exit 64 ;;
  esac
done
cp "$conf" "$rec/client.rb"
cp "$json" "$rec/first-boot.json"
key=$(sed -n "s/^validation_key '\\(.*\\)'$/\\1/p" "$conf")
echo "$key" > "$rec/key-path"
stat -c %a "$key" > "$rec/key-mode"
id -u > "$rec/uid"
echo "Starting Chef Client, environment $env"
# A leaky tool: the key itself on both streams. The agent must mask it.
cat "$key"
if [ "$(cat "$rec/mode")" = hang ]; then
  sleep 300 &
  echo $! > "$rec/child-pid"
  wait
fi
if [ "$(cat "$rec/mode")" = fail ]; then
  echo "FATAL: Chef::Exceptions::ValidationFailed: dcm chef test failure"
  exit 1
fi
cat "$key" >&2
echo "Chef Client finished, 3/3 resources updated"
`;
}

function canaryKey(canary: string): string {
  // The canary is base64-safe text standing whole on PEM body lines.
  const body = [canary.padEnd(64, "A"), "B".repeat(64), canary.padEnd(44, "C")].join("\n");
  return `-----BEGIN RSA PRIVATE KEY-----\n${body}\n-----END RSA PRIVATE KEY-----\n`;
}

Deno.test({
  name: "configure_server runs chef-client (a stand-in) with client.rb, key and run list",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const work = await Deno.makeTempDir({ prefix: "dcm-chef-test-" });
    const bin = `${work}/bin`;
    const record = `${work}/record`;
    const chefDir = `${work}/etc-chef`;
    await Deno.mkdir(bin);
    await Deno.mkdir(record);
    await Deno.mkdir(chefDir);
    await Deno.writeTextFile(`${chefDir}/client.rb`, "# the previous client.rb\n");
    await Deno.writeTextFile(`${record}/mode`, "ok");
    await Deno.writeTextFile(`${bin}/chef-client`, standIn(record), { mode: 0o755 });

    // An installer that puts the stand-in in place, served over http.
    const installer = `#!/bin/sh\necho "installer $*" > ${record}/installer-ran\n` +
      `cat > ${bin}/chef-client <<'STANDIN'\n${
        standIn(record)
      }STANDIN\nchmod 755 ${bin}/chef-client\n`;
    const installerSha = createHash("sha256").update(installer).digest("hex");
    let served = installer;
    const http = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      () => new Response(served),
    );
    const canary = `CANARY${crypto.randomUUID().replaceAll("-", "")}`;
    const key = canaryKey(canary);
    const base = {
      configType: "chef",
      endpoint: "https://chef.example.test/organizations/dcm",
      authId: "dcm-validator",
      encryptedAuthSecret: b64(key),
      configClientName: "node-1.example.test",
      runListIds: ["recipe[base]", "role[web]"],
      environmentId: "production",
    };
    const cm = await startCmAgent({
      conf: {
        configuration_management: {
          chef_config_dir: chefDir,
          chef_installer_url: `http://127.0.0.1:${http.addr.port}/install.sh`,
          chef_installer_sha256: installerSha,
          chef_client_version: "18.2.7",
        },
      },
      env: { PATH: `${bin}:/usr/sbin:/usr/bin:/sbin:/bin` },
    });
    try {
      await t.step("chef-client gets client.rb, a 0600 key and the run list", async () => {
        const { reply } = await configureServer(cm, base);
        assert.equal(reply.return_code, 0, JSON.stringify(reply));
        assert.equal(reply.reply_type, "string");
        assert.match(String(reply.reply_object), /Chef Client finished/);
        const args = (await Deno.readTextFile(`${record}/args`)).trim().split("\n");
        assert.deepEqual(args.slice(0, 2), ["-c", `${chefDir}/client.rb`]);
        assert.equal(args[2], "-j");
        assert.deepEqual(args.slice(4), ["-E", "production"]);
        const clientRb = await Deno.readTextFile(`${record}/client.rb`);
        assert.match(
          clientRb,
          /^chef_server_url 'https:\/\/chef\.example\.test\/organizations\/dcm'$/m,
        );
        assert.match(clientRb, /^validation_client_name 'dcm-validator'$/m);
        assert.match(clientRb, /^node_name 'node-1\.example\.test'$/m);
        assert.match(clientRb, /^log_location STDOUT$/m);
        assert.equal((await Deno.readTextFile(`${record}/key-mode`)).trim(), "600");
        assert.deepEqual(JSON.parse(await Deno.readTextFile(`${record}/first-boot.json`)), {
          run_list: ["recipe[base]", "role[web]"],
        });
        // The validation key is gone; the previous client.rb was kept.
        assert.ok(!pathExists((await Deno.readTextFile(`${record}/key-path`)).trim()));
        assert.equal(
          await Deno.readTextFile(`${chefDir}/client.rb.orig`),
          "# the previous client.rb\n",
        );
        assert.equal(await Deno.readTextFile(`${chefDir}/client.rb`), clientRb);
        // The leaked key was masked in the reply.
        assert.ok(!String(reply.reply_object).includes(canary));
        assert.match(String(reply.reply_object), /<redacted>/);
      });

      await t.step("a failed run: exit code, and the tail of stdout as the message", async () => {
        await Deno.writeTextFile(`${record}/mode`, "fail");
        const { reply } = await configureServer(cm, base);
        await Deno.writeTextFile(`${record}/mode`, "ok");
        assert.equal(reply.return_code, 1, JSON.stringify(reply));
        // stderr is empty: the tail of stdout says why.
        assert.match(String(reply.message), /dcm chef test failure/);
        assert.ok(!String(reply.message).includes(canary));
        assert.ok(!pathExists((await Deno.readTextFile(`${record}/key-path`)).trim()));
        assert.ok(
          logFrames(cm.manager).some((l) =>
            l.level === "INFO" && /dcm chef test failure/.test(l.message)
          ),
        );
      });

      await t.step("CANCEL of the job's request stops the whole process tree", async () => {
        await Deno.writeTextFile(`${record}/mode`, "hang");
        await Deno.remove(`${record}/child-pid`).catch(() => {});
        const requestId = `cancel-${crypto.randomUUID()}`;
        const job = configureServer(cm, base, { timeoutMs: 60_000, requestId });
        const pid = Number(
          await waitFor(
            () => {
              try {
                return Deno.readTextFileSync(`${record}/child-pid`).trim() || undefined;
              } catch {
                return undefined;
              }
            },
            30_000,
            "the stand-in's child",
          ),
        );
        const started = performance.now();
        cm.manager.send({ type: "CANCEL", request_id: requestId });
        const { reply } = await job;
        await Deno.writeTextFile(`${record}/mode`, "ok");
        assert.ok(performance.now() - started < 20_000);
        assert.notEqual(reply.return_code, 0);
        assert.match(String(reply.message), /cancelled/);
        await waitFor(() => !pathExists(`/proc/${pid}`), 5000, "the child to be killed");
        assert.ok(!pathExists((await Deno.readTextFile(`${record}/key-path`)).trim()));
      });

      await t.step(
        "a missing chef-client: an installer with a wrong SHA-256 never runs",
        async () => {
          await Deno.remove(`${bin}/chef-client`);
          served = `${installer}\n# tampered\n`;
          const { reply } = await configureServer(cm, base);
          assert.equal(reply.return_code, 1);
          const error = decodeURIComponent(String(reply.error_message));
          assert.match(error, /has SHA-256 [0-9a-f]{64}, not the configured/);
          assert.ok(!pathExists(`${record}/installer-ran`));
        },
      );

      await t.step("a missing chef-client is installed from the checked installer", async () => {
        served = installer;
        const { reply } = await configureServer(cm, base);
        assert.equal(reply.return_code, 0, JSON.stringify(reply));
        assert.equal(
          (await Deno.readTextFile(`${record}/installer-ran`)).trim(),
          "installer -v 18.2.7",
        );
      });

      await t.step("the canary key is in no log file, LOG frame or --report", async () => {
        for (const l of logFrames(cm.manager)) assert.ok(!l.message.includes(canary), l.message);
        for (const r of cm.manager.frames) {
          if (r.dir === "in") assert.ok(!JSON.stringify(r.frame).includes(canary));
        }
        const logs = `${cm.agent.baseDir}/logs`;
        const names = [...Deno.readDirSync(logs)].map((e) => e.name);
        assert.ok(names.some((n) => n.startsWith("configure_server-chef-")), names.join(","));
        assert.ok(names.includes("agent.log.wire"));
        // The wire log did record the request, with the secret hidden.
        assert.match(
          await Deno.readTextFile(`${logs}/agent.log.wire`),
          /"encryptedAuthSecret":"<redacted/,
        );
        for (const n of names) {
          const text = await Deno.readTextFile(`${logs}/${n}`);
          assert.ok(!text.includes(canary), `${n} holds the canary`);
          assert.ok(!text.includes(b64(key)), `${n} holds the base64 key`);
        }
        const config = loadConfig({ file: cm.agent.confFile, skipSystemFile: true });
        const tarball = `${work}/report.tar.gz`;
        await buildReport(config, { output: tarball });
        const listing = await runProgram("tar", ["-tzf", tarball]);
        assert.match(listing.stdout, /logs\/configure_server-chef-/, listing.stderr);
        const unpacked = `${work}/report`;
        await Deno.mkdir(unpacked);
        await runProgram("tar", ["-xzf", tarball, "-C", unpacked]);
        const grep = await runProgram("grep", ["-rl", canary, unpacked]);
        assert.equal(grep.stdout, "", `the canary is in ${grep.stdout}`);
      });
    } finally {
      await cm.close();
      await http.shutdown();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
