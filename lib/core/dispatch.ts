/**
 * Runs one command module with raw request arguments: converts them per the
 * command's declarations, warns about unknown keys, and turns a thrown error
 * into the return_code 1 reply (ARCHITECTURE.md, Command rules).
 */
import { parseArguments } from "../protocol/mod.ts";
import type { CommandContext, CommandModule } from "./command.ts";
import { errorReply, makeReply, type ReplyPayload } from "../protocol/mod.ts";

/** Executes a command; never throws. */
export async function executeCommand(
  command: CommandModule,
  rawArgs: Record<string, unknown>,
  ctx: CommandContext,
): Promise<ReplyPayload> {
  try {
    const parsed = parseArguments(command.args, rawArgs);
    for (const name of parsed.unknown) {
      ctx.log.console("WARNING", `unknown parameter '${name}' for job ${command.name} ignored`);
    }
    const reply = await command.run(parsed.values, ctx);
    return normalizeReply(reply);
  } catch (err) {
    return errorReply(err instanceof Error ? err.message : String(err));
  }
}

/** Makes sure a reply has exactly the five keys with the right types. */
function normalizeReply(r: ReplyPayload): ReplyPayload {
  return makeReply(Number.isInteger(r.return_code) ? r.return_code : 1, {
    reply_type: typeof r.reply_type === "string" ? r.reply_type : "void",
    reply_object: r.reply_object ?? null,
    message: typeof r.message === "string" ? r.message : String(r.message ?? ""),
    error_message: typeof r.error_message === "string"
      ? r.error_message
      : String(r.error_message ?? ""),
  });
}
