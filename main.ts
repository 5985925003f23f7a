/**
 * The dcm-agent command line.
 *
 *   dcm-agent run [-c FILE] [--log-stderr]   run the agent in the foreground
 *   dcm-agent [-c FILE]            the same (drop-in compatible with the original)
 *   dcm-agent status [-c FILE] [--json]  what the agent is doing; exit 0 only when running
 *   dcm-agent configure [...]      write the configuration (see `configure --help`)
 *   dcm-agent reconfigure [...]    configure -r <installed agent.conf>
 *   dcm-agent scrub [...]          delete what must not end up in an image (see `scrub --help`)
 *   dcm-agent upgrade-binary SRC   replace the agent's executable, with rollback
 *   dcm-agent plugins add|remove|list   edit the commands of plugin.conf
 *   dcm-agent -r | --report        write a support tarball to /tmp/agent_info.tar.gz
 *   dcm-agent -V | --version       print `Version X`
 */
import { runAgent } from "./lib/agent/mod.ts";
import { ConfigError, loadConfig } from "./lib/config/mod.ts";
import { VERSION } from "./lib/protocol/mod.ts";

const USAGE = `Usage: dcm-agent [run] [-c FILE] [--log-stderr]
       dcm-agent status [-c FILE] [--json]
       dcm-agent configure [options]     (dcm-agent configure --help)
       dcm-agent reconfigure [options]
       dcm-agent scrub [options]         (dcm-agent scrub --help)
       dcm-agent upgrade-binary FILE|URL [--sha256 HEX]   (--help)
       dcm-agent plugins add|remove|list  (dcm-agent plugins --help)
       dcm-agent -r | --report
       dcm-agent -V | --version

Runs the DCM agent, which connects out to the Dell Cloud Manager (or any
manager speaking agent protocol 104) and executes its commands.
  -c, --config FILE   an agent.conf read after /dcm/etc/agent.conf and $DCM_AGENT_CONF
  -v, --verbose       accepted for compatibility (logging.yaml sets the level)
  -r, --report        write a support tarball (without secrets) to /tmp/agent_info.tar.gz
  --log-stderr        run: also log to stderr at the configured level (automatic under systemd)
  --json              status: print the facts as one JSON object
  -V, --version       print the version and exit
  -h, --help          print this help`;

/** Runs the CLI; returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const sub = args[0];
  // Loaded on demand: `run` should not pay for parsing the installer.
  if (sub === "configure") {
    return await (await import("./lib/configure/mod.ts")).configureMain(args.slice(1));
  }
  if (sub === "reconfigure") {
    return await (await import("./lib/configure/mod.ts")).reconfigureMain(args.slice(1));
  }
  if (sub === "scrub") {
    return await (await import("./lib/cli/mod.ts")).scrubMain(args.slice(1));
  }
  if (sub === "upgrade-binary") {
    return await (await import("./lib/cli/mod.ts")).upgradeBinaryMain(args.slice(1));
  }
  if (sub === "plugins") {
    try {
      return await (await import("./lib/cli/mod.ts")).pluginsMain(args.slice(1));
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      console.error(`dcm-agent: configuration error: ${err.message}`);
      return 2;
    }
  }
  let configFile: string | undefined;
  let logStderr = false;
  let json = false;
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "-V" || a === "--version") {
      console.log(`Version ${VERSION}`);
      return 0;
    }
    if (a === "-h" || a === "--help") {
      console.log(USAGE);
      return 0;
    }
    if (a === "-c" || a === "--config" || a === "--conffile") {
      configFile = args[++i];
      if (configFile === undefined) {
        console.error(`dcm-agent: ${a} needs a file name, e.g. ${a} /dcm/etc/agent.conf`);
        return 2;
      }
    } else if (a.startsWith("--config=")) {
      configFile = a.slice("--config=".length);
    } else if (a === "--log-stderr") {
      logStderr = true;
    } else if (a === "--json") {
      json = true;
    } else if (a === "-r" || a === "--report") {
      words.push("--report");
    } else if (/^-v+$|^--verbose$/.test(a)) {
      // The original's -v (repeatable); the level comes from logging.yaml.
    } else if (a.startsWith("-") && a !== "-") {
      console.error(`dcm-agent: unknown option '${a}'; see 'dcm-agent --help'`);
      return 2;
    } else {
      words.push(a.toLowerCase());
    }
  }
  try {
    if (words.includes("status") || words.includes("--report")) {
      // status must work (and say so) when nothing is configured yet.
      const config = loadConfig({
        file: configFile,
        requireManagerUrl: words.includes("--report"),
      });
      if (words.includes("--report")) {
        const { buildReport } = await import("./lib/cli/mod.ts");
        const file = await buildReport(config);
        console.log(
          `**********************************************\nThe report is in ${file}\n**********************************************`,
        );
        return 0;
      }
      const { printStatus } = await import("./lib/cli/mod.ts");
      return printStatus(config, {
        line: (t) => console.log(t),
        color: Deno.stdout.isTerminal() && !Deno.env.get("NO_COLOR"),
        json,
      });
    }
    const unknown = words.filter((w) => w !== "run");
    if (unknown.length) {
      console.error(`dcm-agent: unknown command '${unknown[0]}'\n\n${USAGE}`);
      return 2;
    }
    return await runAgent({ configFile, logStderr });
  } catch (err) {
    // One place reports a bad agent.conf, whichever command read it.
    if (err instanceof ConfigError) {
      console.error(`dcm-agent: configuration error: ${err.message}`);
      return 2;
    }
    throw err;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
