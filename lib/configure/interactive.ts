/**
 * The questions of `configure -i` (README, Installing on a VM), in the original's order: cloud,
 * manager URL, certificate checking and CA file (only for a wss:// URL);
 * "start on boot?" comes last, after the summary of what will be written.
 * Enter keeps the value shown in brackets; a wrong answer is explained and
 * the question asked again.
 */
import { caFileProblem } from "./ca_bundle.ts";
import { normalizeCloud, OFFERED_CLOUDS } from "./clouds.ts";
import { managerUrlProblem } from "./options.ts";

/** Where questions go and answers come from. */
export interface PromptIo {
  /** Prints `question` and returns the answer without its line end, or null when input ended. */
  ask(question: string): Promise<string | null>;
  /** Prints one line. */
  say(text: string): void;
}

/** The operator closed the input (Ctrl-D) before answering. */
export class InputEndedError extends Error {
  constructor() {
    super("input ended before every question was answered; nothing was changed");
    this.name = "InputEndedError";
  }
}

/** The current values, offered as defaults. */
export interface SetupDefaults {
  cloud: string;
  url: string | null;
  allowUnknownCerts: boolean;
  caCert: string | null;
}

/** The answers to questions 1-4. */
export interface SetupAnswers {
  cloud: string;
  url: string;
  allowUnknownCerts: boolean;
  caCert: string | null;
}

/** Prompts that read lines from the terminal on stdin and write to stdout. */
export function terminalPromptIo(): PromptIo {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  const buffer = new Uint8Array(4096);
  let pending = "";
  const write = (text: string) => {
    const bytes = encoder.encode(text);
    let done = 0;
    while (done < bytes.length) done += Deno.stdout.writeSync(bytes.subarray(done));
  };
  return {
    async ask(question: string): Promise<string | null> {
      write(question);
      while (!pending.includes("\n")) {
        const n = await Deno.stdin.read(buffer);
        if (n === null) {
          if (pending === "") return null;
          const last = pending;
          pending = "";
          return last;
        }
        pending += decoder.decode(buffer.subarray(0, n), { stream: true });
      }
      const end = pending.indexOf("\n");
      const line = pending.slice(0, end).replace(/\r$/, "");
      pending = pending.slice(end + 1);
      return line;
    },
    say(text: string): void {
      write(`${text}\n`);
    },
  };
}

/** Asks questions 1-4; `caGuess` is the CA default when none is set. */
export async function askSetup(
  defaults: SetupDefaults,
  io: PromptIo,
  options: { caGuess?: string } = {},
): Promise<SetupAnswers> {
  const cloud = await askCloud(defaults.cloud, io);
  // No default without a current value: the original's vendor URL no longer exists.
  const url = await askUntilValid<string>(
    io,
    defaults.url ? `Agent manager URL [${defaults.url}]: ` : "Agent manager URL: ",
    (answer) => {
      const value = answer === "" ? defaults.url : answer;
      if (value === null) {
        return {
          problem:
            "The agent needs its manager's URL, e.g. wss://dcm.example.com/agentManager; ask the manager's operator for it.",
        };
      }
      const problem = managerUrlProblem(value);
      return problem
        ? {
          problem:
            `'${value}' is not a manager URL: ${problem}. Use ws://HOST[:PORT]/PATH or wss://HOST[:PORT]/PATH.`,
        }
        : { value };
    },
  );
  // Certificates only matter for wss://; a ws:// URL keeps the current settings.
  if (new URL(url).protocol !== "wss:") {
    return { cloud, url, allowUnknownCerts: defaults.allowUnknownCerts, caCert: defaults.caCert };
  }
  const allowUnknownCerts = await askYesNo(
    io,
    "Disable certificate checking? This is insecure",
    defaults.allowUnknownCerts,
  );
  let caCert = defaults.caCert;
  if (!allowUnknownCerts) {
    const fallback = defaults.caCert ?? options.caGuess ?? null;
    caCert = await askUntilValid<string>(
      io,
      `CA certificate file${fallback ? ` [${fallback}]` : ""}: `,
      (answer) => {
        const value = answer === "" ? fallback : answer;
        if (value === null) {
          return {
            problem:
              "A CA file is needed to check the manager's certificate; give the path of a PEM file.",
          };
        }
        const problem = caFileProblem(value);
        return problem
          ? { problem: `${problem}; give the path of a PEM file of CA certificates.` }
          : { value };
      },
    );
  }
  return { cloud, url, allowUnknownCerts, caCert };
}

/** The last question, asked before anything is written; Enter keeps what is installed now. */
export function askOnBoot(io: PromptIo, installed: boolean): Promise<boolean> {
  return askYesNo(io, "Start the agent on boot?", installed);
}

async function askCloud(current: string, io: PromptIo): Promise<string> {
  io.say("Which cloud does this server run on?");
  for (const line of numberedColumns(OFFERED_CLOUDS, 3)) io.say(line);
  return await askUntilValid<string>(io, `Cloud (number or name) [${current}]: `, (answer) => {
    if (answer === "") return { value: current };
    if (/^\d+$/.test(answer)) {
      const n = Number(answer);
      if (n >= 1 && n <= OFFERED_CLOUDS.length) return { value: OFFERED_CLOUDS[n - 1] };
    } else {
      const cloud = normalizeCloud(answer);
      if (cloud) return { value: cloud };
    }
    return {
      problem:
        `'${answer}' is not on the list; answer with a number from 1 to ${OFFERED_CLOUDS.length} or a cloud name.`,
    };
  });
}

async function askYesNo(io: PromptIo, question: string, current: boolean): Promise<boolean> {
  return await askUntilValid<boolean>(
    io,
    `${question} (${current ? "Y/n" : "y/N"}): `,
    (answer) => {
      const a = answer.toLowerCase();
      if (a === "") return { value: current };
      if (a === "y" || a === "yes") return { value: true };
      if (a === "n" || a === "no") return { value: false };
      return { problem: "Please answer y or n." };
    },
  );
}

/** Asks until `check` accepts the trimmed answer. */
async function askUntilValid<T>(
  io: PromptIo,
  question: string,
  check: (answer: string) => { value: T } | { problem: string },
): Promise<T> {
  while (true) {
    const answer = await io.ask(question);
    if (answer === null) throw new InputEndedError();
    const result = check(answer.trim());
    if ("value" in result) return result.value;
    io.say(result.problem);
  }
}

/** `names` numbered from 1, laid out top to bottom in `columns` columns. */
function numberedColumns(names: readonly string[], columns: number): string[] {
  const rows = Math.ceil(names.length / columns);
  const width = String(names.length).length;
  const cell = Math.max(...names.map((n) => n.length)) + width + 4;
  const lines: string[] = [];
  for (let r = 0; r < rows; r++) {
    let line = "";
    for (let c = 0; c < columns; c++) {
      const i = c * rows + r;
      if (i < names.length) line += `${String(i + 1).padStart(width)}) ${names[i]}`.padEnd(cell);
    }
    lines.push(`  ${line.trimEnd()}`);
  }
  return lines;
}
