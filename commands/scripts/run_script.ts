/** `run_script`: runs a script sent inline as base64, after a SHA-256 check. */
import { defineCommand } from "../../lib/core/mod.ts";

/** Largest decompressed script accepted; protects the agent against zip bombs. */
const MAX_SCRIPT_BYTES = 64 * 1024 * 1024;

export default defineCommand({
  name: "run_script",
  description: "Runs a base64-encoded (optionally zlib-compressed) script and returns its output.",
  args: {
    b64script: { type: "base64_bytes", required: true, help: "The script, base64-encoded." },
    checksum: {
      type: "str",
      required: true,
      help: "SHA-256 hex digest of the (decompressed) script.",
    },
    inpython: { type: "bool", default: false, help: "Run the script with python3." },
    runUnderSudo: { type: "bool", default: false, help: "Run the script with sudo -E." },
    compression: {
      type: "str",
      help: 'Only "gzip", which means zlib (deflate) data as in the original agent.',
    },
    arguments: { type: "list", help: "Arguments passed to the script." },
    timeout: {
      type: "float",
      help: "Seconds before the script is killed; overrides [jobs]script_timeout, 0 means none.",
    },
  },
  async run(args, ctx) {
    if (args.b64script === null) {
      throw new Error("argument 'b64script' is null; send the script as base64 text");
    }
    if (args.checksum === null) {
      throw new Error("argument 'checksum' is null; send the SHA-256 hex digest of the script");
    }
    const { makeTempFile, removeFile, runScriptFile, sha256Hex, verifyChecksum } = await import(
      "../../lib/os/script_runner.ts"
    );
    const script = await decompress(args.b64script, args.compression);
    verifyChecksum(args.checksum, await sha256Hex(script));
    const file = await makeTempFile(ctx.config, "dcm-run-script-");
    try {
      await Deno.writeFile(file, script);
      // Owner-only: the script may carry secrets, and sudo runs it as root anyway.
      await Deno.chmod(file, 0o700);
      return await runScriptFile(file, ctx, {
        inpython: args.inpython,
        runUnderSudo: args.runUnderSudo,
        arguments: args.arguments,
        timeout: args.timeout,
      });
    } finally {
      await removeFile(file);
    }
  },
});

async function decompress(data: Uint8Array, compression: string | null): Promise<Uint8Array> {
  if (compression === null) return data;
  if (compression.trim().toLowerCase() !== "gzip") {
    throw new Error(
      `unsupported compression ${JSON.stringify(compression)}; run_script accepts only ` +
        '"gzip" (zlib/deflate data) or no compression argument',
    );
  }
  // The original's "gzip" is really zlib; a real gzip stream (magic 1f 8b)
  // is accepted too because senders are easily confused by the name.
  const isGzip = data.length >= 2 && data[0] === 0x1f && data[1] === 0x8b;
  // Web streams rather than node:zlib: the Node compatibility layer costs memory.
  const stream = new Blob([data as Uint8Array<ArrayBuffer>]).stream()
    .pipeThrough(new DecompressionStream(isGzip ? "gzip" : "deflate"));
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    for await (const chunk of stream) {
      size += chunk.length;
      if (size > MAX_SCRIPT_BYTES) {
        throw new RangeError(
          `the decompressed script is larger than ${MAX_SCRIPT_BYTES} bytes; ` +
            "send a smaller script or use fetch_run",
        );
      }
      chunks.push(chunk);
    }
  } catch (err) {
    if (err instanceof RangeError) throw err;
    throw new Error(
      `cannot decompress the script (${isGzip ? "gzip" : "zlib"}): ${(err as Error).message}; ` +
        'with compression "gzip" the script must be zlib (deflate) or gzip data',
    );
  }
  const out = new Uint8Array(size);
  let offset = 0;
  for (const c of chunks) {
    out.set(c, offset);
    offset += c.length;
  }
  return out;
}
