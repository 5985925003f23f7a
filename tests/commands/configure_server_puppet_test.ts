/**
 * configure_server with a real Puppet: Debian's puppet-agent against a private
 * puppetserver on 127.0.0.1 (one start for this file: it takes one to three
 * minutes on a loaded two-core machine), driven end to end through the
 * development manager, the job polled with get_job_description.
 */
import assert from "node:assert/strict";
import { startPuppetServer } from "../helpers/puppetserver.ts";
import { b64, configureServer, logFrames, startCmAgent } from "../helpers/config_management.ts";

function keyBody(pem: string): string[] {
  return pem.split("\n").filter((l) => l.length >= 32 && !l.startsWith("-----"));
}

async function leftovers(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) if (e.name.startsWith("dcm-cm-")) out.push(e.name);
  return out;
}

Deno.test({
  name: "configure_server runs Puppet against a private puppetserver",
  // The server's JVM and the agent outlive single steps; they are stopped at the end.
  sanitizeResources: false,
  sanitizeOps: false,
  async fn(t) {
    const server = await startPuppetServer();
    console.log(`puppetserver started in ${server.startMs} ms`);
    const work = await Deno.makeTempDir({ prefix: "dcm-puppet-test-" });
    const cm = await startCmAgent();
    try {
      const node = `dcm-node-${crypto.randomUUID().slice(0, 8)}`;
      const { cert, key } = await server.generateCert(node);
      const args = {
        configType: "Puppet",
        endpoint: `127.0.0.1:${server.port}`,
        configClientName: node,
        configCert: b64(cert),
        configKey: b64(key),
      };

      await t.step(
        "a manifest that creates a file: return_code 0 with Puppet's output",
        async () => {
          const target = `${work}/created-by-puppet.txt`;
          await server.setManifest(
            `node default { file { '${target}': content => "hello from puppet\\n" } }\n`,
          );
          const { job, reply } = await configureServer(cm, args, { timeoutMs: 180_000 });
          assert.equal(job.job_status, "COMPLETE", JSON.stringify(job));
          assert.equal(reply.return_code, 0, JSON.stringify(reply));
          assert.equal(reply.reply_type, "string");
          assert.match(String(reply.reply_object), /Applied catalog/);
          assert.equal(await Deno.readTextFile(target), "hello from puppet\n");
          // The key files and the whole private directory are gone.
          assert.deepEqual(await leftovers(`${cm.agent.baseDir}/tmp`), []);
          // Puppet's output reached the console at INFO.
          assert.ok(
            logFrames(cm.manager).some((l) =>
              l.level === "INFO" && /Applied catalog/.test(l.message)
            ),
          );
          // The full output is in the log directory, owner-only.
          const logs = [...Deno.readDirSync(`${cm.agent.baseDir}/logs`)]
            .filter((e) => e.name.startsWith("configure_server-puppet-"));
          assert.equal(logs.length, 1);
          const logPath = `${cm.agent.baseDir}/logs/${logs[0].name}`;
          assert.equal(Deno.statSync(logPath).mode! & 0o777, 0o600);
          assert.match(await Deno.readTextFile(logPath), /Applied catalog/);
          // The node key never reached a log.
          const agentLog = await Deno.readTextFile(cm.logFile);
          const wireLog = await Deno.readTextFile(`${cm.logFile}.wire`);
          for (const line of keyBody(key)) {
            assert.ok(!agentLog.includes(line), "the key is in agent.log");
            assert.ok(!wireLog.includes(line), "the key is in the wire log");
          }
        },
      );

      await t.step(
        "a failing manifest: Puppet's exit code and its error as the message",
        async () => {
          await server.setManifest(`node default { fail("dcm test failure ${node}") }\n`);
          const { reply } = await configureServer(cm, args, { timeoutMs: 180_000 });
          assert.notEqual(reply.return_code, 0, JSON.stringify(reply));
          assert.match(String(reply.message), new RegExp(`dcm test failure ${node}`));
          assert.deepEqual(await leftovers(`${cm.agent.baseDir}/tmp`), []);
          assert.ok(
            logFrames(cm.manager).some((l) =>
              l.level === "WARNING" && /dcm test failure/.test(l.message)
            ),
          );
        },
      );

      await t.step("a missing certificate is refused with a clear message", async () => {
        const { reply } = await configureServer(cm, { ...args, configCert: null });
        assert.equal(reply.return_code, 1);
        assert.match(
          decodeURIComponent(String(reply.error_message)),
          /needs configCert and configKey/,
        );
      });
    } finally {
      await cm.close();
      await server.stop();
      await Deno.remove(work, { recursive: true }).catch(() => {});
    }
  },
});
