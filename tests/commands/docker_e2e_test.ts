/**
 * End to end: the development manager sends every docker_* command over the
 * websocket to a real agent process, which drives a private Debian dockerd
 * (its own socket and directories; TLS with a client certificate on
 * 127.0.0.1). The image is made with `docker import` of busybox-static; pulls
 * come from Debian's docker-registry on 127.0.0.1, never a public registry.
 */
import assert from "node:assert/strict";
import { DockerClient, dockerSettings } from "../../lib/os/docker/mod.ts";
import {
  cannotRunDocker,
  type ClientCerts,
  DockerDaemon,
  ensureDockerPackages,
  makeDockerCerts,
} from "../helpers/docker_daemon.ts";
import { type AgentSession, failed, ok, startAgent } from "../helpers/agent_session.ts";

const IMAGE = "dcmtest/busybox:1";
const PAGE = 12 * 1024;
const DOCKER_COMMANDS = [
  "docker_create_container",
  "docker_delete_container",
  "docker_delete_image",
  "docker_get_container_details",
  "docker_get_logs",
  "docker_host",
  "docker_import_image",
  "docker_list_containers",
  "docker_list_images",
  "docker_pull_repo",
  "docker_restart_container",
  "docker_start_container",
  "docker_stop_container",
  "docker_top_container",
];

/** The parts of the Engine's inspect document the test reads. */
interface Inspect {
  State: { Status: string; Running: boolean };
  Config: {
    Cmd: string[];
    Env: string[];
    Hostname: string;
    ExposedPorts: Record<string, unknown>;
  };
  HostConfig: { Memory: number; CapDrop: string[] };
}

const bytes = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;

const SKIP = cannotRunDocker();

Deno.test({
  name: "e2e: the docker_* commands against a private Docker Engine" +
    (SKIP ? ` (skipped: ${SKIP})` : ""),
  ignore: SKIP !== null,
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async (t) => {
    await ensureDockerPackages();
    const certDir = await Deno.makeTempDir({ prefix: "dcm-dkr-certs-" });
    let certs: ClientCerts;
    let daemon: DockerDaemon | undefined;
    let main: AgentSession | undefined;
    try {
      certs = await makeDockerCerts(certDir);
      daemon = await DockerDaemon.start({ certs });
      const tarball = await daemon.importBusybox(IMAGE);
      main = await startAgent({ docker: { base_url: `unix://${daemon.socket}` } });
      const { ask } = main;
      const d = daemon;

      await t.step("handshake advertises the commands and the docker feature", () => {
        const f = main!.handshake.features as { docker: string; plugins: string[] };
        assert.equal(f.docker, "1.1.2");
        for (const name of DOCKER_COMMANDS) assert.ok(f.plugins.includes(name), name);
      });

      await t.step("docker_host", async () => {
        const r = ok(await ask("docker_host"), "docker_host");
        assert.equal(r.reply_type, "boolean");
        assert.equal(r.reply_object, true);
      });

      const LINES = 5000;
      await t.step("create, start, inspect, and logs paged to the end", async () => {
        const script =
          `i=1; while [ $i -le ${LINES} ]; do echo "log line $i of the paging test"; ` +
          `i=$((i+1)); done; echo "to stderr" >&2`;
        const created = ok(
          await ask("docker_create_container", {
            image: IMAGE,
            command: `sh -c '${script}'`,
            hostname: "dcm-e2e",
            mem_limit: 64 * 1024 * 1024,
            ports: [8080, "53/udp"],
            environment: { GREETING: "hello world", N: 5 },
            name: "dcm-e2e-logs",
          }),
          "create",
        );
        assert.equal(created.reply_type, "docker_create_container");
        const id = (created.reply_object as { Id: string }).Id;
        assert.match(id, /^[0-9a-f]{64}$/);
        ok(await ask("docker_start_container", { container: "dcm-e2e-logs" }), "start");
        let state = "";
        let details = {} as Inspect;
        for (let i = 0; i < 100 && state !== "exited"; i++) {
          const r = ok(await ask("docker_get_container_details", { container: id }), "details");
          assert.equal(r.reply_type, "docker_inspect_container");
          details = r.reply_object as Inspect;
          state = details.State.Status;
          if (state !== "exited") await new Promise((res) => setTimeout(res, 200));
        }
        assert.equal(state, "exited");
        assert.deepEqual(details.Config.Cmd, ["sh", "-c", script]);
        assert.ok(details.Config.Env.includes("GREETING=hello world"));
        assert.ok(details.Config.Env.includes("N=5"));
        assert.equal(details.Config.Hostname, "dcm-e2e");
        assert.deepEqual(Object.keys(details.Config.ExposedPorts).sort(), ["53/udp", "8080/tcp"]);
        assert.equal(details.HostConfig.Memory, 64 * 1024 * 1024);

        const expected = Array.from(
          { length: LINES },
          (_, i) => `log line ${i + 1} of the paging test\n`,
        ).join("");
        let text = "";
        let token: string | null = null;
        let pages = 0;
        let first: string | null = null;
        do {
          const r = ok(
            await ask("docker_get_logs", {
              container: id,
              ...(token ? { page_token: token } : {}),
            }),
            "logs",
          );
          assert.equal(r.reply_type, "docker_logs");
          const o = r.reply_object as { next_token: string | null; log_data: string };
          assert.ok(new TextEncoder().encode(o.log_data).length <= PAGE);
          if (first === null) first = o.next_token;
          else if (o.next_token !== null) assert.equal(o.next_token, first, "the token stays");
          text += o.log_data;
          token = o.next_token;
          pages++;
        } while (token !== null && pages < 1000);
        assert.equal(text, expected, "every line once, in order");
        assert.ok(pages > 10, `${pages} pages`);
        // The token is forgotten after the last page.
        failed(await ask("docker_get_logs", { container: id, page_token: first }), /not found/);
        const both = ok(await ask("docker_get_logs", { container: id, stderr: true }), "stderr");
        const o = both.reply_object as { next_token: string };
        assert.match(o.next_token, /^[0-9a-f]{32}$/);
        const tail = ok(
          await ask("docker_get_logs", { container: "dcm-e2e-logs", stdout: false, stderr: true }),
          "stderr only",
        );
        assert.deepEqual(tail.reply_object, { next_token: null, log_data: "to stderr\n" });
        // A container with a terminal has a raw (not multiplexed) log stream.
        await d.cli(["run", "-t", "--name", "dcm-e2e-tty", IMAGE, "echo", "on a tty"]);
        const tty = ok(await ask("docker_get_logs", { container: "dcm-e2e-tty" }), "tty logs");
        assert.deepEqual(tty.reply_object, { next_token: null, log_data: "on a tty\r\n" });
      });

      await t.step("start with host settings, top, restart, stop", async () => {
        ok(
          await ask("docker_create_container", {
            image: IMAGE,
            command: ["sleep", "300"],
            name: "dcm-e2e-sleep",
          }),
          "create",
        );
        ok(
          await ask("docker_start_container", {
            container: "dcm-e2e-sleep",
            cap_drop: ["NET_RAW"],
          }),
          "start with host settings",
        );
        const details = ok(
          await ask("docker_get_container_details", { container: "dcm-e2e-sleep" }),
          "details",
        ).reply_object as Inspect;
        assert.deepEqual(details.HostConfig.CapDrop, ["NET_RAW"]);
        assert.equal(details.State.Running, true);
        const top = ok(await ask("docker_top_container", { container: "dcm-e2e-sleep" }), "top");
        assert.equal(top.reply_type, "docker_top");
        const procs = top.reply_object as { Titles: string[]; Processes: string[][] };
        assert.ok(procs.Titles.includes("PID"));
        assert.ok(procs.Processes.some((p) => p.join(" ").includes("sleep 300")));
        ok(
          await ask("docker_restart_container", { container: "dcm-e2e-sleep", timeout: 1 }),
          "restart",
        );
        ok(await ask("docker_stop_container", { container: "dcm-e2e-sleep", timeout: 1 }), "stop");
        const after = ok(
          await ask("docker_get_container_details", { container: "dcm-e2e-sleep" }),
          "details",
        ).reply_object as Inspect;
        assert.equal(after.State.Running, false);
      });

      await t.step("list containers, paged", async () => {
        // Enough containers, with big labels, for several pages.
        await Promise.all(Array.from({ length: 12 }, (_, i) =>
          d.cli([
            "create",
            "--name",
            `dcm-e2e-many-${i}`,
            "--label",
            `n=${"x".repeat(1000)}`,
            IMAGE,
            "true",
          ])));
        const engineIds = (await d.cli(["ps", "-aq", "--no-trunc"])).trim().split("\n").sort();
        const seen: string[] = [];
        let token: string | null = null;
        let pages = 0;
        do {
          const r = ok(
            await ask("docker_list_containers", {
              all: true,
              ...(token ? { page_token: token } : {}),
            }),
            "list",
          );
          assert.equal(r.reply_type, "docker_container_array");
          const o = r.reply_object as { next_token: string | null; containers: { Id: string }[] };
          assert.ok(o.containers.length === 1 || bytes(o.containers) <= PAGE + o.containers.length);
          for (const c of o.containers) seen.push(c.Id);
          token = o.next_token;
          pages++;
        } while (token !== null && pages < 100);
        assert.ok(pages >= 2, `${pages} pages`);
        assert.deepEqual(seen.sort(), engineIds.map((id) => id.slice(0, 12)).sort());
        const since = ok(
          await ask("docker_list_containers", {
            all: true,
            quiet: true,
            trunc: false,
            since: "dcm-e2e-logs",
          }),
          "since",
        ).reply_object as { next_token: null; containers: { Id: string }[] };
        const idOf = async (name: string) =>
          (await d.cli(["inspect", "-f", "{{.Id}}", name])).trim();
        const sinceIds = since.containers.map((c) => c.Id);
        assert.ok(sinceIds.includes(await idOf("dcm-e2e-sleep")));
        assert.ok(!sinceIds.includes(await idOf("dcm-e2e-logs")));
        const quiet = ok(
          await ask("docker_list_containers", { quiet: true, trunc: false, limit: 3 }),
          "quiet",
        ).reply_object as { next_token: null; containers: Record<string, string>[] };
        assert.equal(quiet.next_token, null);
        assert.equal(quiet.containers.length, 3);
        for (const c of quiet.containers) assert.deepEqual(Object.keys(c), ["Id"]);
        assert.ok(quiet.containers.every((c) => c.Id.length === 64));
        const latest = ok(await ask("docker_list_containers", { latest: true }), "latest")
          .reply_object as { containers: unknown[] };
        assert.equal(latest.containers.length, 1);
      });

      await t.step("images: list, import from a file and a URL, pull, delete", async () => {
        const listed = ok(await ask("docker_list_images", { name: "dcmtest/busybox" }), "images");
        assert.equal(listed.reply_type, "docker_image_array");
        const images = (listed.reply_object as { images: { RepoTags: string[] }[] }).images;
        assert.ok(images.some((i) => i.RepoTags.includes(IMAGE)));
        const quiet = ok(await ask("docker_list_images", { quiet: true }), "quiet")
          .reply_object as { images: string[] };
        assert.ok(quiet.images.every((i) => typeof i === "string" && i.startsWith("sha256:")));

        const fromFile = ok(
          await ask("docker_import_image", { src: tarball, repository: "dcmtest/file", tag: "v1" }),
          "import file",
        );
        assert.equal(fromFile.reply_type, "docker_import_image");
        assert.match(String((fromFile.reply_object as { status: string }).status), /^sha256:/);
        const server = Deno.serve(
          { hostname: "127.0.0.1", port: 0, onListen() {} },
          async () => new Response((await Deno.open(tarball)).readable),
        );
        try {
          const fromUrl = ok(
            await ask("docker_import_image", {
              src: `http://127.0.0.1:${server.addr.port}/rootfs.tar`,
              repository: "dcmtest/url",
              tag: "v2",
            }),
            "import url",
          );
          assert.match(JSON.stringify(fromUrl.reply_object), /sha256:/);
        } finally {
          await server.shutdown();
        }
        const tags = await d.cli(["images", "--format", "{{.Repository}}:{{.Tag}}"]);
        assert.match(tags, /^dcmtest\/file:v1$/m);
        assert.match(tags, /^dcmtest\/url:v2$/m);

        const registry = await d.startRegistry();
        const remote = `${registry}/dcmtest/busybox`;
        await d.cli(["tag", IMAGE, `${remote}:1`]);
        await d.cli(["push", `${remote}:1`]);
        await d.cli(["rmi", `${remote}:1`]);
        const pulled = ok(await ask("docker_pull_repo", { repository: remote, tag: "1" }), "pull");
        assert.deepEqual([pulled.reply_type, pulled.reply_object], ["docker_pull", null]);
        assert.match(
          await d.cli(["images", "--format", "{{.Repository}}:{{.Tag}}"]),
          new RegExp(`^${remote}:1$`, "m"),
        );
        failed(
          await ask("docker_pull_repo", { repository: `${remote}:nosuchtag` }),
          new RegExp(`^Failed to fetch the docker image ${remote} : nosuchtag : .*not found`),
        );

        ok(await ask("docker_delete_image", { name: `${remote}:1` }), "delete image");
        failed(await ask("docker_delete_image", { name: `${remote}:1` }), /No such image/);
        // force removes an image a container uses (the original ignored force).
        await d.cli(["create", "--name", "dcm-e2e-user", "dcmtest/url:v2", "true"]);
        failed(await ask("docker_delete_image", { name: "dcmtest/url:v2" }), /must force|conflict/);
        ok(await ask("docker_delete_image", { name: "dcmtest/url:v2", force: true }), "force");
        failed(await ask("docker_delete_image", { name: "dcmtest/url:v2" }), /No such image/);
      });

      await t.step("delete containers; Engine errors are readable", async () => {
        ok(
          await ask("docker_delete_container", { container: "dcm-e2e-logs", v: true, force: true }),
          "delete",
        );
        const text = failed(
          await ask("docker_delete_container", { container: "dcm-e2e-logs" }),
          /No such container: dcm-e2e-logs \(Docker Engine HTTP 404\)/,
        );
        assert.doesNotMatch(text, /%[0-9A-F]{2}/);
        ok(await ask("docker_delete_container", { container: "dcm-e2e-many-0" }), "delete");
      });

      await t.step("hostile arguments are refused before any call", async () => {
        const cases: [string, Record<string, unknown>, RegExp][] = [
          [
            "docker_get_container_details",
            { container: "../../images/json" },
            /not a container id/,
          ],
          ["docker_stop_container", { container: "a/b?x=1" }, /not a container id/],
          ["docker_top_container", { container: "" }, /is empty/],
          ["docker_delete_image", { name: "x/../../containers/y" }, /not an image name/],
          ["docker_list_containers", { limit: 1e12 }, /'limit' must be between -1 and 100000/],
          ["docker_create_container", { image: IMAGE, ports: [99999] }, /bad port/],
          ["docker_create_container", { image: IMAGE, environment: { "A=B": 1 } }, /bad variable/],
          [
            "docker_create_container",
            { image: IMAGE, command: "sh -c 'oops" },
            /closing quotation/,
          ],
          ["docker_create_container", { image: IMAGE, mem_limit: -5 }, /mem_limit/],
          ["docker_create_container", { image: IMAGE, command: { a: 1 } }, /string or a list/],
          ["docker_import_image", { src: "relative/file.tar" }, /absolute path/],
          ["docker_import_image", { src: "/dev/zero" }, /not a regular file/],
          ["docker_list_images", { viz: true }, /viz/],
          ["docker_start_container", { container: "x", lxc_conf: [{ Key: "a" }] }, /LXC/],
          ["docker_list_containers", { page_token: "../../etc/passwd" }, /page set .* not found/],
          ["docker_get_logs", { container: "x", page_token: "0".repeat(32) }, /not found/],
        ];
        for (const [command, args, pattern] of cases) failed(await ask(command, args), pattern);
        // A token of one command is refused by another.
        const r = ok(await ask("docker_list_containers", { all: true }), "list")
          .reply_object as { next_token: string };
        failed(
          await ask("docker_list_images", { page_token: r.next_token }),
          /belongs to docker_list_containers/,
        );
      });

      await t.step("TLS with the CA and a client certificate", async () => {
        const tls = await startAgent({
          docker: {
            base_url: `tcp://127.0.0.1:${d.tlsPort}`,
            tls: "True",
            ca_cert: certs.caFile,
            client_cert_path: certs.clientCert,
            client_key_path: certs.clientKey,
          },
        });
        try {
          const r = ok(await tls.ask("docker_list_images", { name: "dcmtest/busybox" }), "tls");
          const images = (r.reply_object as { images: { RepoTags: string[] }[] }).images;
          assert.ok(images.some((i) => i.RepoTags.includes(IMAGE)));
        } finally {
          await tls.close();
        }
        // Without a client certificate the daemon refuses the connection.
        const bare = new DockerClient(dockerSettings({
          base_url: `tcp://127.0.0.1:${d.tlsPort}`,
          tls: "True",
          ca_cert: certs.caFile,
        }));
        await assert.rejects(
          bare.apiVersion(),
          /cannot reach the Docker daemon at tcp:\/\/127.*refused the client certificate/,
        );
        bare.close();
        // Without the CA the daemon's certificate is not trusted.
        const untrusted = new DockerClient(dockerSettings({
          base_url: `tcp://127.0.0.1:${d.tlsPort}`,
          tls: "True",
          client_cert_path: certs.clientCert,
          client_key_path: certs.clientKey,
        }));
        await assert.rejects(
          untrusted.apiVersion(),
          /cannot reach.*not trusted; set \[docker\] ca_cert/,
        );
        untrusted.close();
      });

      await t.step("API version: the preference, within what both sides speak", async () => {
        const at = async (version?: string) => {
          const c = new DockerClient(dockerSettings({
            base_url: `unix://${d.socket}`,
            ...(version ? { version } : {}),
          }));
          try {
            return await c.apiVersion();
          } finally {
            c.close();
          }
        };
        assert.equal(await at(), "1.41");
        assert.equal(await at("1.12"), "1.24", "raised to the oldest shape the agent sends");
        assert.equal(await at("1.30"), "1.30");
        assert.equal(await at("1.99"), "1.41");
      });

      await t.step("a stopped daemon gives a clear error, the agent stays up", async () => {
        await d.stop();
        const text = failed(
          await ask("docker_list_containers"),
          /cannot reach the Docker daemon at unix:\/\/.*docker\.sock: .*; is dockerd running\? set \[docker\] base_url/,
        );
        assert.ok(text.length < 500);
        const hb = await ask("heartbeat");
        assert.equal(hb.return_code, 0);
      });
    } finally {
      await main?.close();
      await daemon?.cleanup();
      await Deno.remove(certDir, { recursive: true }).catch(() => {});
    }
  },
});
