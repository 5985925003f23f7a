/**
 * Parsers of the three alert file formats. All three are read line by line:
 * - OSSEC alerts.log: a record starts at `** Alert <epoch.frac>:` and ends at
 *   the blank line OSSEC writes after it (or at the next header);
 *   `Rule: <id> (level <n>) -> '<subject>'` gives rule, level and subject,
 *   `Src IP:` and `User:` fill source_ip and user, and every line other than
 *   the header and the Rule line makes up the message.
 * - OSSEC alerts.json: one object per line, `rule.sidid`, `rule.level`,
 *   `rule.comment`, `TimeStamp` in milliseconds, `srcip`, `dstuser`/`srcuser`.
 * - Wazuh alerts.json: one object per line, `rule.id` as a string,
 *   `rule.level`, `rule.description`, an ISO `timestamp`, and the decoded
 *   fields under `data` (`srcip`, `dstuser`, `srcuser`).
 */
import type { AlertFields } from "../../protocol/mod.ts";
import { type AlertFormat, makeAlert } from "./alert.ts";

const HEADER_RE = /^\*\* Alert (\d+(?:\.\d+)?):/;
const RULE_RE = /^Rule: (\d+) \(level (\d+)\) -> '(.*)'\s*$/;

/** A line-oriented parser: feed complete lines, get complete alerts. */
export interface RecordParser {
  /**
   * Takes one complete line (without its newline); returns the alerts it
   * completed and whether the parser now holds nothing (so the position after
   * this line is a safe resume point).
   */
  line(text: string): { alerts: AlertFields[]; idle: boolean };
  /** Ends the current record (the file stopped growing); returns it if any. */
  flush(): AlertFields[];
}

/** A parser for `format`; `onBad` hears about lines that cannot be read. */
export function recordParser(format: AlertFormat, onBad: (why: string) => void): RecordParser {
  return format === "ossec_log" ? new OssecLogParser() : new JsonLineParser(format, onBad);
}

interface LogRecord {
  time: number;
  rule: number;
  level: number;
  subject: string;
  user: string | null;
  sourceIp: string | null;
  lines: string[];
}

class OssecLogParser implements RecordParser {
  #rec: LogRecord | null = null;

  line(text: string): { alerts: AlertFields[]; idle: boolean } {
    const header = HEADER_RE.exec(text);
    if (header) {
      const done = this.flush();
      this.#rec = {
        time: Math.trunc(Number(header[1]) * 1000),
        rule: 0,
        level: 0,
        subject: "",
        user: null,
        sourceIp: null,
        lines: [],
      };
      return { alerts: done, idle: false };
    }
    const rec = this.#rec;
    if (!rec) return { alerts: [], idle: true }; // Text outside any record.
    if (text.trim() === "") {
      return { alerts: this.flush(), idle: true };
    }
    const rule = RULE_RE.exec(text);
    if (rule) {
      rec.rule = Number(rule[1]);
      rec.level = Number(rule[2]);
      rec.subject = rule[3];
      return { alerts: [], idle: false };
    }
    if (text.startsWith("Src IP: ")) rec.sourceIp = text.slice(8).trim() || null;
    else if (text.startsWith("User: ")) rec.user = text.slice(6).trim() || null;
    rec.lines.push(text);
    return { alerts: [], idle: false };
  }

  flush(): AlertFields[] {
    const rec = this.#rec;
    this.#rec = null;
    if (!rec) return [];
    return [makeAlert({
      alert_timestamp: rec.time,
      level: rec.level,
      rule: rec.rule,
      user: rec.user,
      source_ip: rec.sourceIp,
      message: rec.lines.map((l) => `${l}\n`).join(""),
      subject: rec.subject,
    })];
  }
}

class JsonLineParser implements RecordParser {
  #format: AlertFormat;
  #onBad: (why: string) => void;

  constructor(format: AlertFormat, onBad: (why: string) => void) {
    this.#format = format;
    this.#onBad = onBad;
  }

  line(text: string): { alerts: AlertFields[]; idle: boolean } {
    if (text.trim() === "") return { alerts: [], idle: true };
    const alert = parseJsonAlert(text, this.#format);
    if (typeof alert === "string") {
      this.#onBad(alert);
      return { alerts: [], idle: true };
    }
    return { alerts: [alert], idle: true };
  }

  flush(): AlertFields[] {
    return [];
  }
}

/** Parses one line of OSSEC or Wazuh alerts.json; returns the alert or why it was unusable. */
export function parseJsonAlert(text: string, format: AlertFormat): AlertFields | string {
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    return `a line is not valid JSON (${(err as Error).message}): ${text.slice(0, 80)}`;
  }
  if (!isObject(doc) || !isObject(doc.rule)) {
    return `a line is not an alert object with a 'rule': ${text.slice(0, 80)}`;
  }
  const rule = doc.rule;
  const wazuh = format === "wazuh_json";
  const time = wazuh ? parseIsoTime(doc.timestamp) : toInt(doc.TimeStamp);
  if (time === null) {
    return `an alert has no usable ${wazuh ? "timestamp" : "TimeStamp"}: ${text.slice(0, 80)}`;
  }
  const data = wazuh && isObject(doc.data) ? doc.data : doc;
  return makeAlert({
    alert_timestamp: time,
    level: toInt(rule.level) ?? 0,
    rule: toInt(wazuh ? rule.id : rule.sidid) ?? 0,
    user: text0(data.dstuser) ?? text0(data.srcuser),
    source_ip: text0(data.srcip),
    message: typeof doc.full_log === "string" ? doc.full_log : "",
    subject: String((wazuh ? rule.description : rule.comment) ?? ""),
  });
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function toInt(v: unknown): number | null {
  const n = typeof v === "string" && /^\s*-?\d+(\.\d+)?\s*$/.test(v) ? Number(v) : v;
  return typeof n === "number" && Number.isFinite(n) ? Math.trunc(n) : null;
}

function text0(v: unknown): string | null {
  return typeof v === "string" && v !== "" ? v : null;
}

/** Wazuh writes `2024-05-01T10:15:11.123+0000`; Date.parse wants `+00:00`. */
function parseIsoTime(v: unknown): number | null {
  if (typeof v !== "string") return null;
  const t = Date.parse(v.replace(/([+-]\d\d)(\d\d)$/, "$1:$2"));
  return Number.isFinite(t) ? t : null;
}
