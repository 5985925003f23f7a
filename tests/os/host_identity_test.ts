/**
 * rename and initialize against a throw-away root. The running hostname is
 * set with the real `hostname` tool inside a private UTS namespace (a
 * `unshare --uts` sleeper entered with nsenter), so the test machine keeps its
 * own name.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import addUser from "../../commands/users/add_user.ts";
import initialize, { customerUserName } from "../../commands/lifecycle/initialize.ts";
import rename from "../../commands/users/rename.ts";
import { executeCommand } from "../../lib/core/dispatch.ts";
import { Accounts } from "../../lib/os/accounts/mod.ts";
import { HostIdentity, sanitizeHostname, updateHostsText } from "../../lib/os/host_identity.ts";
import type { ReplyPayload } from "../../lib/protocol/messages.ts";
import { makeTestContext, type TestContext } from "../helpers/context.ts";
import {
  canManageAccounts,
  makeThrowawayRoot,
  type ThrowawayRoot,
  tool,
} from "../helpers/throwaway_root.ts";

const ignore = !canManageAccounts();

interface Env {
  fx: ThrowawayRoot;
  ctx: TestContext;
  identity: HostIdentity;
  /** How often the command asked for the IPv4 addresses. */
  ipLookups: () => number;
  /** Reads the running hostname inside the private UTS namespace. */
  uts: () => Promise<string>;
  run(command: typeof rename, args: Record<string, unknown>): Promise<ReplyPayload>;
  read(p: string): Promise<string>;
}

/** A throw-away root, a private UTS namespace and a context with both adapters. */
async function withHost(
  body: (env: Env) => Promise<void>,
  options: { ips?: string[] } = {},
): Promise<void> {
  const fx = await makeThrowawayRoot();
  const sleeper = new Deno.Command("unshare", { args: ["--uts", "--", "sleep", "300"] }).spawn();
  const realHostname = Deno.hostname();
  try {
    const nsHostname = ["nsenter", `--target=${sleeper.pid}`, "--uts", "hostname"];
    // Wait until unshare has moved the sleeper into its own namespace.
    const ownUts = await Deno.readLink("/proc/self/ns/uts");
    for (let i = 0; i < 100; i++) {
      if (await Deno.readLink(`/proc/${sleeper.pid}/ns/uts`) !== ownUts) break;
      await new Promise((r) => setTimeout(r, 10));
    }
    const identity = new HostIdentity({ root: fx.root, hostnameCommand: nsHostname });
    const accounts = new Accounts({ root: fx.root });
    let lookups = 0;
    const ctx = makeTestContext({
      commands: [rename, addUser],
      services: { adapters: { accounts, hostIdentity: identity } },
    });
    ctx.services.host.ipv4Addresses = () => {
      lookups++;
      return Promise.resolve(options.ips ?? ["127.0.0.1", "10.0.0.5", "192.0.2.7"]);
    };
    await body({
      fx,
      ctx,
      identity,
      ipLookups: () => lookups,
      uts: async () => (await tool(nsHostname)).trim(),
      run: (command, args) => executeCommand(command, args, ctx),
      read: (p) => Deno.readTextFile(join(fx.root, p)),
    });
  } finally {
    sleeper.kill("SIGKILL");
    await sleeper.status;
    await fx.cleanup();
    assert.equal(Deno.hostname(), realHostname, "the test machine's hostname never changes");
  }
}

Deno.test("sanitizeHostname strips characters as the original did and validates the rest", () => {
  assert.equal(sanitizeHostname("@pp1#"), "pp1");
  assert.equal(sanitizeHostname("web_01.example.com"), "web01.example.com");
  assert.equal(sanitizeHostname("My-Host"), "My-Host");
  for (
    const bad of ["@#@#$", ".....", "", "-lead", "trail-", "a..b", "x.", `${"a".repeat(64)}.b`]
  ) {
    assert.throws(() => sanitizeHostname(bad), /does not make a valid hostname/, bad);
  }
  assert.throws(() => sanitizeHostname("a".repeat(256)), /256 characters long; at most 255/);
  assert.throws(() => sanitizeHostname(`${"a".repeat(40)}.${"b".repeat(40)}`), /at most 64/);
});

Deno.test("updateHostsText replaces only the primary address's line, else appends", () => {
  const hosts = "127.0.0.1 localhost\n10.0.0.50 neighbour\n10.0.0.5 old old.example # note\n";
  assert.equal(
    updateHostsText(hosts, { ip: "10.0.0.5", name: "new" }),
    "127.0.0.1 localhost\n10.0.0.50 neighbour\n10.0.0.5 new\n",
  );
  assert.equal(updateHostsText(hosts, { ip: "10.0.0.5", name: "old.example" }), null);
  assert.equal(
    updateHostsText("127.0.0.1 localhost", { ip: "10.0.0.5", name: "web" }),
    "127.0.0.1 localhost\n10.0.0.5 web\n",
  );
  assert.equal(updateHostsText("", { ip: "10.0.0.5", name: "web" }), "10.0.0.5 web\n");
});

Deno.test({
  name:
    "rename sets /etc/hostname, the running hostname and the /etc/hosts line; twice is the same",
  ignore,
  fn: () =>
    withHost(async (env) => {
      const first = await env.run(rename, { serverName: "@web-01.example.com#" });
      assert.equal(first.return_code, 0, JSON.stringify(first));
      assert.equal(first.reply_type, "void");
      assert.equal(await env.read("etc/hostname"), "web-01.example.com\n");
      assert.equal(await env.uts(), "web-01.example.com");
      const hosts = await env.read("etc/hosts");
      assert.equal(
        hosts,
        "127.0.0.1 localhost\n::1 localhost ip6-localhost\n10.0.0.50 neighbour\n" +
          "10.0.0.5 web-01.example.com\n",
      );
      const mode = (await Deno.stat(join(env.fx.root, "etc/hosts"))).mode! & 0o777;
      const second = await env.run(rename, { serverName: "@web-01.example.com#" });
      assert.equal(second.return_code, 0);
      assert.equal(second.message, "the hostname is already web-01.example.com");
      assert.equal(await env.read("etc/hosts"), hosts);
      assert.equal((await Deno.stat(join(env.fx.root, "etc/hosts"))).mode! & 0o777, mode);

      // A new name replaces the address's line instead of adding another.
      assert.equal((await env.run(rename, { serverName: "db1" })).return_code, 0);
      assert.match(await env.read("etc/hosts"), /^10\.0\.0\.5 db1\n$/m);
      assert.doesNotMatch(await env.read("etc/hosts"), /web-01/);
      assert.equal(await env.uts(), "db1");
      assert.deepEqual(await env.identity.runningHostname(), "db1");
    }),
});

Deno.test({
  name: "rename rejects hostile or invalid names before looking anything up",
  ignore,
  fn: () =>
    withHost(async (env) => {
      const before = [await env.read("etc/hosts"), await env.read("etc/hostname"), await env.uts()];
      for (const serverName of ["@#@#$", ".....", "a".repeat(256), "-x", null]) {
        const reply = await env.run(rename, { serverName });
        assert.equal(reply.return_code, 1, `accepted ${serverName}`);
        assert.notEqual(reply.error_message, "");
      }
      const reply = await env.run(rename, { serverName: "@#@#$" });
      assert.match(reply.error_message, /does not make a valid hostname/);
      assert.equal(env.ipLookups(), 0);
      assert.deepEqual(
        [await env.read("etc/hosts"), await env.read("etc/hostname"), await env.uts()],
        before,
      );
    }),
});

Deno.test({
  name: "rename without a non-loopback IPv4 address fails with the original's message",
  ignore,
  fn: () =>
    withHost(async (env) => {
      const reply = await env.run(rename, { serverName: "web" });
      assert.equal(reply.return_code, 1);
      assert.equal(reply.error_message, "No IP Address was found");
      assert.equal(await env.read("etc/hostname"), "original-host\n");
    }, { ips: ["127.0.0.1"] }),
});

Deno.test("customerUserName pads the customer id to three digits", () => {
  assert.equal(customerUserName(5), "c005");
  assert.equal(customerUserName(50), "c050");
  assert.equal(customerUserName(1234), "c1234");
});

Deno.test({
  name: "initialize renames, adds the customer account c%03d and sets RUNNING; twice is fine",
  ignore,
  fn: () =>
    withHost(async (env) => {
      const args = {
        cloudId: "1",
        regionId: "r",
        zoneId: "z",
        serverId: "s",
        encryptedEphemeralFsKey: null,
        serverName: "cust-host",
      };
      assert.equal(env.ctx.services.state.get(), "STARTING");
      for (
        const [customerId, user] of [[5, "c005"], [50, "c050"], [1234, "c1234"], [
          5,
          "c005",
        ]] as const
      ) {
        const reply = await env.run(initialize, { ...args, customerId });
        assert.deepEqual(reply, {
          return_code: 0,
          reply_type: "void",
          reply_object: null,
          message: "",
          error_message: "",
        });
        const passwd = await env.read("etc/passwd");
        assert.match(
          passwd,
          new RegExp(`^${user}:x:\\d+:\\d+:Customer Account:/home/${user}:/bin/bash$`, "m"),
        );
        await assert.rejects(
          Deno.lstat(join(env.fx.root, "etc/sudoers.d", user)),
          Deno.errors.NotFound,
          "the customer account is not an administrator",
        );
      }
      assert.equal(env.ctx.services.state.get(), "RUNNING");
      assert.equal(await env.read("etc/hostname"), "cust-host\n");
      assert.equal(await env.uts(), "cust-host");
    }),
});

Deno.test({
  name: "initialize reports a failed rename and stays STARTING",
  ignore,
  fn: () =>
    withHost(async (env) => {
      const reply = await env.run(initialize, {
        cloudId: null,
        customerId: 7,
        regionId: null,
        zoneId: null,
        serverId: null,
        encryptedEphemeralFsKey: null,
        serverName: "@#@#$",
      });
      assert.equal(reply.return_code, 1);
      assert.equal(reply.message, " : rename failed");
      assert.match(reply.error_message, /does not make a valid hostname/);
      assert.equal(env.ctx.services.state.get(), "STARTING");
      assert.doesNotMatch(await env.read("etc/passwd"), /^c007:/m);
    }),
});

Deno.test({
  name: "rename rewrites a bind-mounted /etc/hosts in place (Docker mounts it that way)",
  ignore,
  fn: () =>
    withHost(async (env) => {
      const hostsPath = join(env.fx.root, "etc/hosts");
      const source = join(env.fx.root, "hosts.mounted");
      await Deno.writeTextFile(source, "127.0.0.1 localhost\n10.0.0.5 old\n");
      await tool(["mount", "--bind", source, hostsPath]);
      try {
        for (let i = 0; i < 2; i++) {
          const reply = await env.run(rename, { serverName: "mounted" });
          assert.equal(reply.return_code, 0, JSON.stringify(reply));
        }
        assert.equal(await Deno.readTextFile(source), "127.0.0.1 localhost\n10.0.0.5 mounted\n");
        assert.deepEqual(
          (await listDir(join(env.fx.root, "etc"))).filter((n) => n.includes(".dcm-")),
          [],
          "no staging file is left behind",
        );
      } finally {
        await tool(["umount", hostsPath]);
      }
    }),
});

async function listDir(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const e of Deno.readDir(dir)) names.push(e.name);
  return names;
}
