/** Splits a command line into words as a POSIX shell (and Python's shlex.split) would. */
import { ArgumentError } from "../../lib/protocol/mod.ts";

/** The words of `line`: quotes and backslashes are honoured, nothing is expanded. */
export function shellWords(line: string): string[] {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  let i = 0;
  while (i < line.length) {
    const c = line[i];
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new ArgumentError("argument 'command' has no closing quotation (')");
      word += line.slice(i + 1, end);
      inWord = true;
      i = end + 1;
    } else if (c === '"') {
      i++;
      for (;;) {
        if (i >= line.length) {
          throw new ArgumentError("argument 'command' has no closing quotation (\")");
        }
        const d = line[i];
        if (d === '"') break;
        // Inside double quotes a backslash escapes only these characters.
        if (d === "\\" && i + 1 < line.length && '\\"$`\n'.includes(line[i + 1])) {
          word += line[i + 1];
          i += 2;
        } else {
          word += d;
          i++;
        }
      }
      inWord = true;
      i++;
    } else if (c === "\\") {
      if (i + 1 >= line.length) {
        throw new ArgumentError("argument 'command' ends with a lone backslash");
      }
      if (line[i + 1] !== "\n") word += line[i + 1];
      inWord = true;
      i += 2;
    } else if (/\s/.test(c)) {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      i++;
    } else {
      word += c;
      inWord = true;
      i++;
    }
  }
  if (inWord) words.push(word);
  return words;
}
