/** The errors of the accounts adapter and the reply text they give. */
import { ArgumentError } from "../../protocol/mod.ts";
import { ToolError } from "../run_tool.ts";

/** A refused or failed account change, with text a person can act on. */
export class AccountError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "AccountError";
  }
}

/** The reply text of an expected failure (a refusal or a failed tool), or null for a bug. */
export function describeFailure(err: unknown): string | null {
  const expected = err instanceof AccountError || err instanceof ToolError ||
    err instanceof ArgumentError;
  return expected ? err.message : null;
}
