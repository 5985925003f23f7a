/**
 * The journal's file system fills up: a request that changes the system is
 * never ACKed unless it was journalled (it is NACKed, so the manager may send it
 * again) and does not run; heartbeats are still answered; the cause is logged
 * once, not per request; once space returns the agent takes requests again by
 * itself. A real ext4 file system on a loop device holds the journal.
 */
import assert from "node:assert/strict";
import { DevManager, type Frame, RequestNackedError } from "../../scripts/dev_manager.ts";
import { AgentProcess } from "../../scripts/agent_process.ts";
import { runProgram } from "../helpers/run.ts";
import { scriptArgs } from "../helpers/script_args.ts";

/** run_script arguments for a script that appends to `file`, padded so each row is large. */
async function marking(file: string, padBytes: number): Promise<Record<string, unknown>> {
  return await scriptArgs(`#!/bin/sh\necho run >> '${file}'\n# ${"p".repeat(padBytes)}\n`);
}

function runs(file: string): number {
  try {
    return Deno.readTextFileSync(file).split("\n").filter((l) => l === "run").length;
  } catch {
    return 0;
  }
}

async function must(cmd: string, args: string[]): Promise<void> {
  const res = await runProgram(cmd, args);
  if (res.code !== 0) throw new Error(`${cmd} ${args.join(" ")} failed: ${res.stderr}`);
}

/** A fresh temp dir with a loop-mounted ext4 file system of `size` at `mnt`. */
async function smallDisk(
  prefix: string,
  size: string,
): Promise<{ dir: string; mnt: string; marks: string; remove(): Promise<void> }> {
  const dir = await Deno.makeTempDir({ prefix });
  const img = `${dir}/fs.img`;
  const mnt = `${dir}/mnt`;
  await Deno.mkdir(mnt);
  await must("truncate", ["-s", size, img]);
  await must("mkfs.ext4", ["-q", "-m", "0", "-F", img]);
  await must("mount", ["-o", "loop", img, mnt]);
  return {
    dir,
    mnt,
    marks: `${dir}/marks`,
    async remove() {
      await runProgram("umount", ["-l", mnt]);
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/** Writes zeros into `file` until the file system is full. */
async function fill(file: string): Promise<void> {
  await runProgram("dd", ["if=/dev/zero", `of=${file}`, "bs=16k"]);
  await runProgram("sync", []);
}

const payload = (f: Frame) => f.payload as Record<string, unknown>;

Deno.test({
  name: "agent: a full journal disk: no ACK without a journal row, heartbeats answered, recovery",
  ignore: Deno.uid() !== 0,
  async fn() {
    const { mnt, marks, remove } = await smallDisk("dcm-full-disk-", "6M");
    const manager = await DevManager.start();
    let agent: AgentProcess | undefined;
    try {
      agent = await AgentProcess.start({
        managerUrl: manager.url,
        conf: {
          storage: { dbfile: `${mnt}/agentdb.sql` },
          messaging: { retransmission_timeout: "1" },
        },
      });
      await manager.waitForHandshake({ timeoutMs: 20000 });
      const first = await manager.request("run_script", await marking(marks, 10));
      assert.equal(payload(first.reply).return_code, 0);
      assert.equal(runs(marks), 1);

      await fill(`${mnt}/filler`);
      // Rows of ~40 KB outgrow whatever free room the WAL file still has.
      let nacked = 0;
      for (let i = 0; i < 30; i++) {
        try {
          await manager.request("run_script", await marking(marks, 40000), {
            timeoutMs: 5000,
            retransmitSeconds: 0,
          });
        } catch (err) {
          if (!(err instanceof RequestNackedError)) throw err;
          assert.match(String(err.nack.error_message), /could not record the request/);
          nacked++;
        }
      }
      assert.ok(nacked > 0, "the full disk was reached");
      const ran = runs(marks) - 1;
      const acked = new Set(
        manager.frames.flatMap((r) =>
          r.dir === "in" && typeof r.frame === "object" && r.frame.type === "ACK"
            ? [r.frame.request_id]
            : []
        ),
      );
      // Every request that ran had been ACKed (journalled); every NACKed one did not run.
      assert.equal(ran, 30 - nacked, "only the journalled requests ran");
      assert.ok(acked.size >= ran + 1);

      for (let i = 0; i < 5; i++) {
        const hb = await manager.request("heartbeat", {}, { timeoutMs: 10000 });
        assert.equal(payload(hb.reply).return_code, 0, "heartbeats are answered on a full disk");
      }
      const out = agent.output();
      assert.equal(
        out.match(/cannot write the request journal/g)?.length,
        1,
        "the cause is logged once a minute, not per request",
      );
      assert.match(out, /No space left|full|SQLITE_FULL|disk/i);

      // Space returns: the next request is journalled, ACKed and run, with no restart.
      await Deno.remove(`${mnt}/filler`);
      const t0 = performance.now();
      const after = await manager.request("run_script", await marking(marks, 10));
      const recoveryMs = performance.now() - t0;
      assert.equal(payload(after.reply).return_code, 0);
      assert.equal(runs(marks), 1 + ran + 1);
      console.log(`full disk: ${nacked} of 30 NACKed, recovered in ${recoveryMs.toFixed(0)} ms`);
      assert.equal(agent.exitStatus, undefined, "the agent never exited");
    } finally {
      await agent?.stop().catch(() => {});
      await agent?.cleanup().catch(() => {});
      await manager.close();
      await remove();
    }
  },
});

Deno.test({
  name: "agent: a full log disk drops log records but never stops command handling",
  ignore: Deno.uid() !== 0,
  async fn() {
    const { dir, mnt, marks, remove } = await smallDisk("dcm-full-log-disk-", "2M");
    const template = await Deno.readTextFile(new URL("../../config/logging.yaml", import.meta.url));
    const yaml = template.replaceAll("@LOG_LEVEL@", "DEBUG")
      .replaceAll("@LOGFILE_PATH@", `${mnt}/agent.log`).replaceAll("@DCM_USER@", "root");
    await Deno.writeTextFile(`${dir}/logging.yaml`, yaml);
    const manager = await DevManager.start();
    let agent: AgentProcess | undefined;
    try {
      agent = await AgentProcess.start({
        managerUrl: manager.url,
        conf: { logging: { configfile: `${dir}/logging.yaml` } },
      });
      await manager.waitForHandshake({ timeoutMs: 20000 });
      await fill(`${mnt}/filler`);
      for (let i = 0; i < 10; i++) {
        const r = await manager.request("run_script", await marking(marks, 2000));
        assert.equal(payload(r.reply).return_code, 0);
      }
      assert.equal(runs(marks), 10);
      const hb = await manager.request("heartbeat", {});
      assert.equal(payload(hb.reply).return_code, 0);
      assert.equal(
        agent.output().match(/cannot write the log file/g)?.length,
        1,
        "the failing log file is reported once, not per record",
      );
    } finally {
      await agent?.stop().catch(() => {});
      await agent?.cleanup().catch(() => {});
      await manager.close();
      await remove();
    }
  },
});
