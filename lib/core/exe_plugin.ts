/**
 * External command plugins: a `[plugin:<name>]` section with `type = exe`
 * names an executable that becomes a command without rebuilding the agent.
 *
 * The agent converts the request's arguments as for a built-in command, runs
 * the executable with `{"command", "arguments", "request_id"}` as JSON on
 * stdin (argv only, never a shell), turns each stderr line into a job-detail
 * log line, and reads exactly one JSON reply object from stdout
 * (`return_code`, `reply_type`, `reply_object`, `message`, `error_message`).
 * Anything else, a time-out or a CANCEL ends in a clear failed reply; the
 * process tree is killed on time-out, CANCEL and shutdown.
 *
 * Arguments are declared in the section, one key per argument:
 *   arg.<name> = <type>[; required][; default=<JSON>][; help=<text>]
 * or, with `describe = true`, answered by `<path> --describe` printing
 * `{"arguments": {"<name>": {"type", "required", "default", "help"}}}`.
 */
import { Buffer } from "node:buffer";
import { getLogger } from "../logging/mod.ts";
import { type ArgSpec, type ArgType, makeReply, type ReplyPayload } from "../protocol/mod.ts";
import { ProcessStartError, runProcess } from "../os/mod.ts";
import type { CommandContext, CommandModule } from "./command.ts";

const log = getLogger(["dcm", "agent", "plugins"]);

const ARG_TYPES: readonly ArgType[] = [
  "str",
  "int",
  "float",
  "bool",
  "list",
  "dict",
  "base64_text",
  "base64_bytes",
  "json",
  "user_name",
];

/** Seconds `--describe` may take. */
const DESCRIBE_TIMEOUT_S = 10;

/** An exe plugin's command module, with what `--describe` needs. */
export interface ExeCommandModule extends CommandModule {
  /** The executable. */
  path: string;
  /** Arguments come from `<path> --describe` (filled in by {@linkcode describeExePlugin}). */
  describe: boolean;
}

/**
 * Builds the command for a `type = exe` section; returns the reason as a
 * string when the section cannot be used (missing or non-executable file,
 * bad argument declaration).
 */
export function exePluginModule(
  name: string,
  keys: ReadonlyMap<string, string>,
): ExeCommandModule | string {
  const path = keys.get("path") ?? "";
  if (!path.startsWith("/")) return "'path' must be the absolute path of the plugin executable";
  const problem = checkExecutable(path);
  if (problem) return problem;
  const timeoutRaw = keys.get("timeout");
  const timeoutS = timeoutRaw === undefined ? undefined : Number(timeoutRaw);
  if (timeoutS !== undefined && !(timeoutS > 0)) {
    return `'timeout' must be a number of seconds above 0, not '${timeoutRaw}'`;
  }
  const args: Record<string, ArgSpec> = {};
  for (const [key, value] of keys) {
    if (!key.startsWith("arg.")) continue;
    const spec = parseArgDeclaration(value);
    if (typeof spec === "string") return `${key}: ${spec}`;
    args[key.slice(4)] = spec;
  }
  const module: ExeCommandModule = {
    name,
    description: keys.get("description") ?? `external plugin ${path}`,
    args,
    execution: "normal",
    readOnly: false,
    path,
    describe: /^(true|yes|1)$/i.test(keys.get("describe") ?? ""),
    run: (values, ctx) => runExe(module, values, { ctx, timeoutS }),
  };
  return module;
}

/** Fills a `describe = true` plugin's arguments from `<path> --describe`; returns an error text or null. */
export async function describeExePlugin(module: ExeCommandModule): Promise<string | null> {
  let out;
  try {
    out = await runProcess([module.path, "--describe"], {
      env: {},
      timeoutMs: DESCRIBE_TIMEOUT_S * 1000,
      maxOutputBytes: 1 << 20,
    });
  } catch (err) {
    return (err as Error).message;
  }
  if (out.timedOut) return `'${module.path} --describe' took longer than ${DESCRIBE_TIMEOUT_S} s`;
  let doc: unknown;
  try {
    doc = JSON.parse(out.stdout);
  } catch {
    return `'${module.path} --describe' exited with ${out.code} and did not print a JSON object`;
  }
  const declared = isObject(doc) ? doc.arguments : undefined;
  if (!isObject(declared)) return `'${module.path} --describe' printed no "arguments" object`;
  const args: Record<string, ArgSpec> = {};
  for (const [name, d] of Object.entries(declared)) {
    if (!isObject(d) || !ARG_TYPES.includes(d.type as ArgType)) {
      return `argument '${name}' from --describe needs a "type", one of ${ARG_TYPES.join(", ")}`;
    }
    args[name] = {
      type: d.type as ArgType,
      required: d.required === true,
      ...(d.default !== undefined ? { default: d.default } : {}),
      help: typeof d.help === "string" ? d.help : "",
    };
  }
  module.args = args;
  return null;
}

/** Why `path` cannot be run as a plugin, or null when it can. */
export function checkExecutable(path: string): string | null {
  let st: Deno.FileInfo;
  try {
    st = Deno.statSync(path);
  } catch {
    return `the plugin executable ${path} does not exist`;
  }
  if (!st.isFile) return `the plugin path ${path} is not a file`;
  if (((st.mode ?? 0) & 0o111) === 0) {
    return `the plugin file ${path} is not executable (chmod +x it)`;
  }
  return null;
}

/** Parses `<type>[; required][; default=<JSON>][; help=<text>]`. */
export function parseArgDeclaration(value: string): ArgSpec | string {
  const [type, ...rest] = value.split(";").map((p) => p.trim());
  if (!ARG_TYPES.includes(type as ArgType)) {
    return `'${type}' is not an argument type; use one of ${ARG_TYPES.join(", ")}`;
  }
  const spec: ArgSpec = { type: type as ArgType, help: "" };
  for (const part of rest) {
    if (part === "required") spec.required = true;
    else if (part === "optional" || part === "") continue;
    else if (part.startsWith("default=")) {
      try {
        spec.default = JSON.parse(part.slice(8));
      } catch {
        return `the default ${part.slice(8)} is not JSON (write strings in double quotes)`;
      }
    } else if (part.startsWith("help=")) spec.help = part.slice(5);
    else return `'${part}' is not understood; use required, default=<JSON> or help=<text>`;
  }
  return spec;
}

async function runExe(
  module: ExeCommandModule,
  args: Record<string, unknown>,
  options: { ctx: CommandContext; timeoutS?: number },
): Promise<ReplyPayload> {
  const { ctx } = options;
  const timeoutS = options.timeoutS ?? ctx.config.jobs.script_timeout;
  const input = JSON.stringify(
    { command: module.name, arguments: args, request_id: ctx.requestId },
    (_k, v) => v instanceof Uint8Array ? Buffer.from(v).toString("base64") : v,
  );
  let r;
  try {
    r = await runProcess([module.path], {
      env: { DCM_REQUEST_ID: ctx.requestId, DCM_COMMAND: module.name },
      stdin: input,
      timeoutMs: timeoutS * 1000,
      maxOutputBytes: ctx.config.jobs.max_output_bytes,
      signal: ctx.signal,
    });
  } catch (err) {
    const why = err instanceof ProcessStartError ? err.message : String(err);
    throw new Error(`the plugin '${module.name}' could not be started: ${why}`);
  }
  for (const line of r.stderr.split("\n")) if (line.trim() !== "") ctx.log.detail(line);
  if (r.cancelled) throw new Error(`the plugin '${module.name}' was cancelled and stopped`);
  if (r.timedOut) {
    throw new Error(`the plugin '${module.name}' ran longer than ${timeoutS} s and was stopped`);
  }
  const reply = parseReply(r.stdout);
  if (typeof reply === "string") {
    const tail = r.stderr.trim().split("\n").slice(-3).join(" | ").slice(0, 500);
    log.warn("plugin {name} gave no usable reply: {why}", { name: module.name, why: reply });
    throw new Error(
      `the plugin '${module.name}' exited with code ${r.code} and ${reply}${
        tail ? `; its stderr ends with: ${tail}` : ""
      }`,
    );
  }
  return reply;
}

/** Reads the one JSON reply object from stdout, or says what is wrong with it. */
function parseReply(stdout: string): ReplyPayload | string {
  const text = stdout.trim();
  if (text === "") return "printed nothing on stdout (it must print one JSON reply object)";
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch {
    return `printed something other than one JSON object on stdout: ${
      JSON.stringify(text.slice(0, 200))
    }`;
  }
  if (!isObject(doc)) return "printed JSON that is not an object on stdout";
  if (!Number.isInteger(doc.return_code)) {
    return "printed a JSON reply without an integer 'return_code'";
  }
  for (const k of ["reply_type", "message", "error_message"]) {
    if (doc[k] !== undefined && doc[k] !== null && typeof doc[k] !== "string") {
      return `printed a JSON reply whose '${k}' is not a string`;
    }
  }
  return makeReply(doc.return_code as number, {
    reply_type: (doc.reply_type as string | undefined) ?? "void",
    reply_object: doc.reply_object ?? null,
    message: (doc.message as string | undefined) ?? "",
    error_message: (doc.error_message as string | undefined) ?? "",
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}
