/**
 * The parts of the docker commands that need no daemon: the pager (page
 * sizes, oversize items, tokens, expiry, bounds), shell-like word splitting,
 * the API version choice and the `[docker]` settings.
 */
import assert from "node:assert/strict";
import {
  PAGE_BYTES,
  PAGE_TTL_MS,
  pageList,
  PageStore,
  pageText,
} from "../../commands/docker/pager.ts";
import { shellWords } from "../../commands/docker/shell_words.ts";
import {
  bounded,
  containerRef,
  envLines,
  exposedPorts,
  imageRef,
  linkLines,
  portBindings,
} from "../../commands/docker/validate.ts";
import { BUILTIN_COMMANDS } from "../../commands/mod.ts";
import { parsePluginConf } from "../../lib/core/plugin_conf.ts";
import { chooseApiVersion } from "../../lib/os/docker/client.ts";
import { dockerSettings } from "../../lib/os/docker/settings.ts";

const size = (v: unknown) => new TextEncoder().encode(JSON.stringify(v)).length;

Deno.test("pageList: whole items within 12 KiB; an oversize item alone on its page", () => {
  const items: unknown[] = Array.from({ length: 100 }, (_, i) => ({ i, pad: "x".repeat(500) }));
  const big = { big: "y".repeat(40_000) };
  items.splice(50, 0, big);
  const pages = pageList(items);
  assert.deepEqual(pages.flat(), items, "every item once, in order");
  for (const page of pages) {
    const sum = page.reduce((n: number, item) => n + size(item), 0);
    if (page.includes(big)) assert.deepEqual(page, [big]);
    else assert.ok(sum <= PAGE_BYTES, `${sum}`);
  }
  assert.deepEqual(pageList([]), [[]]);
});

Deno.test("pageText: at most 12 KiB of UTF-8, cut at line ends, never inside a character", () => {
  const lines = Array.from({ length: 3000 }, (_, i) => `line ${i} é 😀 ${"z".repeat(i % 50)}\n`);
  const text = lines.join("");
  const pages = pageText(text);
  assert.equal(pages.join(""), text);
  for (const p of pages.slice(0, -1)) {
    assert.ok(new TextEncoder().encode(p).length <= PAGE_BYTES);
    assert.ok(p.endsWith("\n"));
  }
  // One line longer than a page is cut inside the line, on a code point.
  const long = "😀".repeat(10_000);
  const cut = pageText(long);
  assert.equal(cut.join(""), long);
  for (const p of cut) {
    assert.ok(new TextEncoder().encode(p).length <= PAGE_BYTES);
    assert.ok(!p.includes("\ufffd"));
  }
  assert.deepEqual(pageText(""), [""]);
});

Deno.test("PageStore: the token stays until the last page, then is forgotten", () => {
  const store = new PageStore();
  const first = store.start("k", ["a", "b", "c"], 3);
  assert.equal(first.page, "a");
  const token = first.nextToken!;
  assert.match(token, /^[0-9a-f]{32}$/);
  assert.deepEqual(store.next("k", token), { page: "b", nextToken: token });
  assert.deepEqual(store.next("k", token), { page: "c", nextToken: null });
  assert.throws(() => store.next("k", token), /page set .* not found/);
  assert.deepEqual(store.start("k", ["only"], 4), { page: "only", nextToken: null });
  assert.equal(store.size, 0);
  const other = store.start("k", ["a", "b"], 2).nextToken!;
  assert.throws(() => store.next("j", other), /belongs to k/);
  assert.throws(() => store.next("k", "nope"), /not found/);
});

Deno.test("PageStore: results expire after 2 hours and the store is bounded", () => {
  let now = 1_000_000;
  const store = new PageStore({ maxResults: 3, maxBytes: 100, now: () => now });
  const a = store.start("k", [1, 2], 10).nextToken!;
  now += PAGE_TTL_MS - 1;
  assert.equal(store.next("k", a).page, 2);
  const b = store.start("k", [1, 2], 10).nextToken!;
  now += PAGE_TTL_MS;
  assert.throws(() => store.next("k", b), /not found/);
  const tokens = Array.from({ length: 5 }, () => store.start("k", [1, 2], 10).nextToken!);
  assert.equal(store.size, 3, "the oldest are evicted");
  assert.throws(() => store.next("k", tokens[0]), /not found/);
  assert.equal(store.next("k", tokens[4]).page, 2);
  const huge = store.start("k", [1, 2], 95).nextToken!;
  assert.equal(store.size, 1, "evicted by bytes, the newest stays");
  assert.equal(store.next("k", huge).page, 2);
});

Deno.test("shellWords splits like a POSIX shell (shlex.split)", () => {
  assert.deepEqual(shellWords(`sh -c 'echo "a  b"; exit 3'`), ["sh", "-c", 'echo "a  b"; exit 3']);
  assert.deepEqual(shellWords(`a\\ b "c \\"d\\" \\x" '' e`), ["a b", 'c "d" \\x', "", "e"]);
  assert.deepEqual(shellWords("  one\ttwo\nthree  "), ["one", "two", "three"]);
  assert.deepEqual(shellWords(`x'y'"z"`), ["xyz"]);
  assert.deepEqual(shellWords(""), []);
  assert.throws(() => shellWords("echo 'oops"), /closing quotation/);
  assert.throws(() => shellWords('echo "oops'), /closing quotation/);
  assert.throws(() => shellWords("echo \\"), /backslash/);
});

Deno.test("chooseApiVersion: the preference within what both sides speak", () => {
  const engine2010 = { min: "1.12", max: "1.41" };
  const engine27 = { min: "1.24", max: "1.47" };
  assert.equal(chooseApiVersion(engine2010), "1.41");
  assert.equal(chooseApiVersion(engine2010, "1.12"), "1.24");
  assert.equal(chooseApiVersion(engine2010, "1.30"), "1.30");
  assert.equal(chooseApiVersion(engine27), "1.45");
  assert.equal(chooseApiVersion(engine27, "1.12"), "1.24");
  assert.equal(chooseApiVersion({ min: "1.40", max: "1.50" }, "1.12"), "1.40");
  assert.equal(chooseApiVersion({ max: "1.41" }, "1.9"), "1.24");
  assert.throws(
    () => chooseApiVersion({ min: "1.12", max: "1.21" }),
    /1.12 to 1.21.*upgrade Docker Engine/,
  );
  assert.throws(
    () => chooseApiVersion({ min: "1.50", max: "1.52" }),
    /speaks API 1.50.*upgrade dcm-agent/,
  );
});

Deno.test("dockerSettings reads [docker] and names the key to fix", () => {
  assert.equal(dockerSettings({}).socketPath, "/var/run/docker.sock");
  assert.equal(dockerSettings({}).timeoutMs, 30_000);
  // The original's default spelling and its "False" for unset paths.
  const old = dockerSettings({
    base_url: "http+unix://var/run/docker.sock",
    version: "1.12",
    tls: "False",
    ca_cert: "False",
    client_cert_path: "False",
    client_key_path: "False",
    cert_verify: "False",
    timeout: "30",
  });
  assert.equal(old.socketPath, "/var/run/docker.sock");
  assert.equal(old.version, "1.12");
  const tcp = dockerSettings({ base_url: "tcp://127.0.0.1", tls: "True" });
  assert.equal(tcp.origin, "https://127.0.0.1:2376");
  assert.equal(dockerSettings({ base_url: "tcp://10.0.0.1:2375" }).origin, "http://10.0.0.1:2375");
  assert.equal(dockerSettings({ version: "auto" }).version, undefined);
  assert.throws(() => dockerSettings({ version: "latest" }), /\[docker\] version=latest/);
  assert.throws(() => dockerSettings({ timeout: "soon" }), /\[docker\] timeout=soon/);
  assert.throws(() => dockerSettings({ tls: "maybe" }), /\[docker\] tls=maybe/);
  assert.throws(() => dockerSettings({ base_url: "ftp://x" }), /base_url=ftp:\/\/x/);
  assert.throws(() => dockerSettings({ tls: "True" }), /needs a TCP base_url/);
  assert.throws(
    () => dockerSettings({ base_url: "tcp://h:1", tls: "True", client_cert_path: "/x" }),
    /go together/,
  );
  assert.throws(
    () => dockerSettings({ base_url: "tcp://h:1", tls: "True", ca_cert: "/nonexistent.pem" }),
    /cannot read \[docker\] ca_cert=\/nonexistent.pem/,
  );
});

Deno.test("an original plugin.conf's dcmdocker entries name our docker commands", () => {
  const names = [
    "docker_create_container",
    "docker_host",
    "docker_get_logs",
    "docker_list_images",
  ];
  const text = names.map((n) =>
    `[plugin:${n}]\ntype = python_module\nmodule_name = dcmdocker.${n.replace(/^docker_/, "")}\n`
  ).join("\n");
  const table = parsePluginConf(text, { file: "plugin.conf", commands: BUILTIN_COMMANDS });
  assert.deepEqual(table.names(), names);
  for (const n of names) assert.equal(table.find(n)?.module.name, n);
  assert.equal(BUILTIN_COMMANDS.filter((c) => c.name.startsWith("docker_")).length, 14);
});

Deno.test("docker argument checks and mappings", () => {
  assert.equal(containerRef("/web-1"), "web-1");
  assert.throws(() => containerRef("../x"), /not a container id/);
  assert.throws(() => containerRef("a".repeat(129)), /not a container id/);
  assert.equal(imageRef("127.0.0.1:5000/team/app:1.0", "image"), "127.0.0.1:5000/team/app:1.0");
  assert.throws(() => imageRef("a/../b", "image"), /not an image name/);
  assert.throws(() => imageRef("a b", "image"), /not an image name/);
  assert.deepEqual(exposedPorts([80, "53/udp", ["7", "sctp"]]), {
    "80/tcp": {},
    "53/udp": {},
    "7/sctp": {},
  });
  assert.throws(() => exposedPorts([0]), /bad port/);
  assert.throws(() => exposedPorts(["80/icmp"]), /bad protocol/);
  assert.deepEqual(
    portBindings({ "80": [["127.0.0.1", 8080], ["::1", "8081"]], "53/udp": 5353, "22": ["", ""] }),
    {
      "80/tcp": [{ HostIp: "127.0.0.1", HostPort: "8080" }, { HostIp: "::1", HostPort: "8081" }],
      "53/udp": [{ HostIp: "", HostPort: "5353" }],
      "22/tcp": [{ HostIp: "", HostPort: "" }],
    },
  );
  assert.throws(() => portBindings({ "80": [["1.2.3.4; rm", 1]] }), /bad host IP/);
  assert.throws(() => portBindings({ "80": 70000 }), /bad host port/);
  assert.deepEqual(envLines({ A: "x y", B: 2, C: null }), ["A=x y", "B=2", "C="]);
  assert.throws(() => envLines({ "": "x" }), /bad variable name/);
  assert.deepEqual(linkLines({ db: "database" }), ["db:database"]);
  assert.throws(() => linkLines({ "db;x": "y" }), /not a container id/);
  assert.throws(() => bounded(2 ** 60, "mem_limit", 0, 2 ** 50), /mem_limit/);
});
