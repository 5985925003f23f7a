/**
 * `dcm-agent configure` and `dcm-agent reconfigure` (README, Installing on a VM): builds the
 * agent.conf values (defaults, then -r, then options, then detection and the
 * interactive answers), checks everything before touching the disk, then
 * writes the tree and registers the boot service.
 *
 * The parts: plan.ts (the values; checks.ts and other_files.ts), write_tree.ts
 * (the files and their owner), on_boot.ts (boot registration) and
 * installed_conf.ts (reconfigure's agent.conf).
 */
import { bootInstalled, type InitSystem } from "./boot.ts";
import { installExtras } from "./extras.ts";
import { askOnBoot, InputEndedError, type PromptIo, terminalPromptIo } from "./interactive.ts";
import { installedConfFile } from "./installed_conf.ts";
import { registerOnBoot } from "./on_boot.ts";
import { CONFIGURE_HELP, type ConfigureArgs, parseConfigureArgs, UsageError } from "./options.ts";
import { buildPlan, type PlanOptions, planSummary } from "./plan.ts";
import { writeTree } from "./write_tree.ts";

/** Hooks for tests and embedding; every field has a sensible default. */
export interface ConfigureOptions extends PlanOptions {
  /** Questions and answers for -i; default the terminal (refused when stdin is not one). */
  prompt?: PromptIo;
  /** Standard output lines; default console.log. */
  out?: (line: string) => void;
  /** Warning and error lines; default console.error. */
  err?: (line: string) => void;
  /** The command that runs the agent, for the boot files; default this program. */
  agentProgram?: readonly string[];
  /** The init system for -B; default detected under --root. */
  initSystem?: InitSystem;
}

const PREFIX = "dcm-agent configure";
const RECONFIGURE_PREFIX = "dcm-agent reconfigure";

/** Runs `dcm-agent configure ARGS`; returns the exit code (0 done, 2 usage, 1 other). */
export function configureMain(
  args: string[],
  options: ConfigureOptions = {},
): Promise<number> {
  return runMain(args, options, PREFIX);
}

/** configure under the name the operator typed, which starts every message. */
async function runMain(args: string[], options: ConfigureOptions, prefix: string): Promise<number> {
  const err = options.err ?? ((line: string) => console.error(line));
  let verbose = args.includes("-v") || args.includes("--verbose");
  try {
    const parsed = parseConfigureArgs(args);
    verbose = parsed.verbose;
    if (parsed.help) {
      (options.out ?? console.log)(CONFIGURE_HELP);
      return 0;
    }
    await runConfigure(parsed, options, prefix);
    return 0;
  } catch (error) {
    return reportError(error, err, { verbose, prefix });
  }
}

/** Runs `dcm-agent reconfigure ARGS`: configure -r with the installed agent.conf. */
export async function reconfigureMain(
  args: string[],
  options: ConfigureOptions = {},
): Promise<number> {
  const err = options.err ?? ((line: string) => console.error(line));
  try {
    const parsed = parseConfigureArgs(args);
    if (parsed.help) return await configureMain(["--help"], options);
    if (parsed.reloadConf) {
      throw new UsageError(
        "reconfigure finds the installed agent.conf itself; to name one, use 'dcm-agent configure -r FILE'",
      );
    }
    const conf = installedConfFile(parsed);
    return await runMain(["-r", conf, ...args], options, RECONFIGURE_PREFIX);
  } catch (error) {
    return reportError(error, err, {
      verbose: args.includes("-v") || args.includes("--verbose"),
      prefix: RECONFIGURE_PREFIX,
    });
  }
}

/** Prints an error and returns its exit code: 2 for usage, 1 for anything else. */
function reportError(
  error: unknown,
  err: (line: string) => void,
  options: { verbose: boolean; prefix: string },
): number {
  if (error instanceof UsageError) {
    err(`${options.prefix}: ${error.message}`);
    return 2;
  }
  const e = error instanceof Error ? error : new Error(String(error));
  err(`${options.prefix}: error: ${e.message}`);
  if (options.verbose && e.stack && !(e instanceof InputEndedError)) err(e.stack);
  return 1;
}

async function runConfigure(
  parsed: ConfigureArgs,
  options: ConfigureOptions,
  prefix: string,
): Promise<void> {
  const out = options.out ?? ((line: string) => console.log(line));
  const err = options.err ?? ((line: string) => console.error(line));
  // Interactive runs talk on stdout; scripted runs keep stdout empty.
  const note = (line: string) => parsed.interactive ? out(line) : err(`${prefix}: ${line}`);
  const detail = (line: string) => parsed.verbose && out(line);
  const warn = (line: string) => err(`${prefix}: warning: ${line}`);
  for (const w of parsed.warnings) warn(w);
  let io: PromptIo | undefined;
  if (parsed.interactive) {
    if (!options.prompt && !Deno.stdin.isTerminal()) {
      throw new UsageError(
        "-i/--interactive needs a terminal on standard input; run it from a shell, or give the values as options (see --help)",
      );
    }
    io = options.prompt ?? terminalPromptIo();
  }
  const plan = await buildPlan(parsed, options, { note, warn, io });
  // Everything is asked before anything is written: the summary, then the last question.
  let onBoot = parsed.onBoot;
  if (io) {
    for (const line of planSummary(plan, parsed)) out(line);
    if (!parsed.onBoot && !parsed.initial) {
      onBoot = await askOnBoot(io, bootInstalled(parsed.root));
    }
  }
  writeTree(plan, parsed, { detail, warn });
  if (parsed.interactive) out(`Wrote ${plan.confFile}.`);

  registerOnBoot(plan, parsed, {
    onBoot,
    out,
    detail,
    agentProgram: options.agentProgram,
    initSystem: options.initSystem,
  });
  if (parsed.installExtras) {
    note(
      await installExtras({
        location: plan.values.get("extra.location") ?? "",
        packageName: plan.values.get("extra.package_name"),
        basePath: plan.values.get("extra.base_path") ?? "/opt/dcm-agent-extras",
      }),
    );
  }
}
