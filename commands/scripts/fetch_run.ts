/** `fetch_run`: downloads a script from an http(s) URL, or takes a local file, and runs it. */
import { defineCommand } from "../../lib/core/mod.ts";

export default defineCommand({
  name: "fetch_run",
  description: "Downloads a script (http, https or file URL) and runs it, returning its output.",
  args: {
    url: { type: "str", required: true, help: "The script's http, https or file URL." },
    connect_timeout: {
      type: "int",
      default: 30,
      help: "Seconds to wait for the server to answer, and at most between two data chunks.",
    },
    checksum: { type: "str", help: "SHA-256 hex digest of the downloaded script (http/https)." },
    inpython: { type: "bool", default: false, help: "Run the script with python3." },
    runUnderSudo: { type: "bool", default: false, help: "Run the script with sudo -E." },
    arguments: { type: "list", help: "Arguments passed to the script." },
    ssl_cert: { type: "str", help: "Accepted for compatibility and ignored." },
    timeout: {
      type: "float",
      help: "Seconds before the script is killed; overrides [jobs]script_timeout, 0 means none.",
    },
  },
  async run(args, ctx) {
    if (args.url === null) throw new Error("argument 'url' is null; send the script's URL");
    if (args.connect_timeout <= 0) {
      throw new Error(
        `connect_timeout must be a positive number of seconds, not ${args.connect_timeout}`,
      );
    }
    const scripts = await import("../../lib/os/script_runner.ts");
    const url = scripts.scriptUrl(args.url);
    const runOptions = {
      inpython: args.inpython,
      runUnderSudo: args.runUnderSudo,
      arguments: args.arguments,
      timeout: args.timeout,
    };
    if (url.protocol === "file:") {
      // As in the original: a local file runs in place, unchecked, and is kept.
      const path = scripts.localPath(url, args.url);
      await makeExecutable(path);
      return scripts.runScriptFile(path, ctx, runOptions);
    }
    if (url.protocol !== "http:" && url.protocol !== "https:") {
      throw new Error(
        `unsupported URL scheme '${url.protocol}' in ${args.url}; ` +
          "fetch_run accepts only http, https and file URLs",
      );
    }
    const file = await scripts.makeTempFile(ctx.config, "dcm-fetch-run-");
    try {
      const { download } = await import("../../lib/os/download.ts");
      const failure = await download(url, file, {
        connectTimeoutMs: args.connect_timeout * 1000,
        signal: ctx.signal,
      });
      if (failure !== null) return failure;
      if (args.checksum !== null) {
        // Hashed from the file (Web Crypto has no streaming digest; node:crypto costs memory).
        scripts.verifyChecksum(args.checksum, await scripts.sha256Hex(await Deno.readFile(file)));
      }
      await Deno.chmod(file, 0o700);
      return await scripts.runScriptFile(file, ctx, runOptions);
    } finally {
      await scripts.removeFile(file);
    }
  },
});

async function makeExecutable(path: string): Promise<void> {
  try {
    const info = await Deno.stat(path);
    if (!info.isFile) throw new Error("it is not a regular file");
    await Deno.chmod(path, 0o755);
  } catch (err) {
    throw new Error(
      `cannot run the local script ${path}: ${(err as Error).message}; ` +
        "check the file URL and that the file exists on this server",
    );
  }
}
