/**
 * `upgrade`: downloads an upgrade script (http, https or file URL), checks
 * its SHA-256 when `checksum` is given (a mismatch runs nothing), writes an
 * options file of every effective agent.conf setting, and runs
 * `<script> <newVersion> <current version> <options file> <args…>`. Both
 * files are deleted afterwards; the reply is the script's, as run_script's.
 * A script replaces the executable safely with `dcm-agent upgrade-binary`.
 */
import { defineCommand } from "../../lib/core/mod.ts";
import type { AgentConfig } from "../../lib/config/mod.ts";
import { renderIni, SCHEMA } from "../../lib/config/mod.ts";

export default defineCommand({
  name: "upgrade",
  description: "Downloads and runs an upgrade script with the current settings.",
  args: {
    newVersion: { type: "str", required: true, help: "The version to upgrade to." },
    url: { type: "str", required: true, help: "The script's http, https or file URL." },
    args: { type: "list", required: true, help: "More arguments for the script." },
    checksum: { type: "str", help: "SHA-256 hex digest of the script; a mismatch runs nothing." },
  },
  async run(args, ctx) {
    if (args.url === null || args.newVersion === null) {
      throw new Error("newVersion and url must not be null; send the version and the script URL");
    }
    const scripts = await import("../../lib/os/script_runner.ts");
    const url = scripts.scriptUrl(args.url);
    const script = await scripts.makeTempFile(ctx.config, "dcm-upgrade-");
    let options: string | undefined;
    try {
      if (url.protocol === "file:") {
        await Deno.copyFile(scripts.localPath(url, args.url), script).catch((err) => {
          throw new Error(`cannot read the upgrade script ${url.pathname}: ${err.message}`);
        });
      } else if (url.protocol === "http:" || url.protocol === "https:") {
        const { download } = await import("../../lib/os/download.ts");
        const failure = await download(url, script, {
          connectTimeoutMs: 30_000,
          signal: ctx.signal,
        });
        if (failure !== null) return failure;
      } else {
        throw new Error(
          `unsupported URL scheme '${url.protocol}' in ${args.url}; use http, https or file`,
        );
      }
      if (args.checksum !== null) {
        scripts.verifyChecksum(args.checksum, await scripts.sha256Hex(await Deno.readFile(script)));
      }
      await Deno.chmod(script, 0o700);
      options = await scripts.makeTempFile(ctx.config, "dcm-upgrade-options-");
      await Deno.writeTextFile(options, optionsText(ctx.config));
      return await scripts.runScriptFile(script, ctx, {
        inpython: false,
        runUnderSudo: false,
        arguments: [args.newVersion, ctx.services.host.version, options, ...(args.args ?? [])],
        timeout: null,
      });
    } finally {
      await scripts.removeFile(script);
      if (options) await scripts.removeFile(options);
    }
  },
});

/** Every effective setting as INI: `[section]` and `key=value` lines (null is empty). */
function optionsText(config: AgentConfig): string {
  const sections: Record<string, Record<string, string>> = {};
  for (const [section, keys] of Object.entries(SCHEMA)) {
    const values = (config as unknown as Record<string, Record<string, unknown>>)[section] ?? {};
    sections[section] = {};
    for (const key of Object.keys(keys)) {
      const v = values[key];
      sections[section][key] = v === null || v === undefined
        ? ""
        : Array.isArray(v)
        ? v.join(",")
        : String(v);
    }
  }
  for (const extra of ["features", "docker"] as const) {
    if (Object.keys(config[extra]).length) sections[extra] = { ...config[extra] };
  }
  return renderIni(sections);
}
