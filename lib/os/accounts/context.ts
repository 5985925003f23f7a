/** What every part of the accounts adapter works with: the root directory and the tool runner. */
import type { ToolRunner } from "../run_tool.ts";
import { pathUnderRoot } from "../system_adapter.ts";

/** The root an accounts adapter works on and the runner of its tools. */
export interface AccountsContext {
  root: string;
  run: ToolRunner;
}

/** A path inside the root. */
export function pathIn(ctx: AccountsContext, path: string): string {
  return pathUnderRoot(ctx.root, path);
}

/** `--root DIR` for the shadow tools, omitted on the live system so that narrow sudo rules still match. */
export function rootArgs(ctx: AccountsContext): string[] {
  return ctx.root === "/" ? [] : ["--root", ctx.root];
}
