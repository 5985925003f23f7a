/**
 * `[intrusion_detection] ossec = True`: starts OSSEC if it is installed (the
 * agent never downloads or installs it), follows its alert file, keeps alerts
 * below `alert_threshold` local (logged) and queues the others in the journal
 * together with the file position, then the alert sender delivers them.
 * Loaded only when intrusion detection is on.
 */
import { getLogger } from "../logging/mod.ts";
import type { AgentConfig } from "../config/mod.ts";
import { AlertSender, type Journal, type Transport } from "../core/mod.ts";
import { runProcess } from "../os/mod.ts";
import type { AlertFileFollower, AlertFormat, FileCursor } from "../os/ossec/mod.ts";

const log = getLogger(["dcm", "agent", "alerts"]);

/** Options of {@linkcode IntrusionDetection}. */
export interface IntrusionDetectionOptions {
  config: () => AgentConfig;
  journal: Journal;
  transport: Transport;
}

/** The stored position names the file and format it belongs to. */
interface StoredCursor {
  path: string;
  format: AlertFormat;
  cursor: FileCursor;
}

/** Follows the alert file and sends its alerts to the manager. */
export class IntrusionDetection {
  readonly sender: AlertSender;
  #o: IntrusionDetectionOptions;
  #follower: AlertFileFollower | null = null;
  #path: string;
  #format: AlertFormat;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #polling: Promise<void> = Promise.resolve();
  #stopped = false;

  constructor(options: IntrusionDetectionOptions) {
    this.#o = options;
    const ids = options.config().intrusion_detection;
    this.#path = ids.alert_file!;
    this.#format = ids.alert_format as AlertFormat;
    this.sender = new AlertSender({
      store: options.journal.alerts,
      transport: options.transport,
      retransmitSeconds: () => options.config().messaging.retransmission_timeout,
    });
  }

  /** Starts OSSEC when installed, then follows the file and sends alerts. */
  async start(): Promise<void> {
    // The readers are loaded on first use, like the OS adapters.
    const { AlertFileFollower } = await import("../os/ossec/mod.ts");
    this.#follower = new AlertFileFollower(this.#path, {
      format: this.#format,
      cursor: this.#storedCursor(),
      onNotice: (message) => log.warn("{message}", { message }),
    });
    await startOssec(this.#o.config());
    const waiting = this.#o.journal.alerts.size();
    log.info(
      "intrusion detection: following {path} ({format}); alerts at level {threshold} or above go to the manager{queued}",
      {
        path: this.#path,
        format: this.#format,
        threshold: this.#o.config().intrusion_detection.alert_threshold,
        queued: waiting ? `; ${waiting} alert(s) from before wait to be acknowledged` : "",
      },
    );
    this.sender.start();
    this.#schedule(0);
  }

  /** The connection opened. */
  onOpen(): void {
    this.sender.onOpen();
  }

  /** Stops following and sending; waits for a read in progress to be stored. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.sender.stop();
    await this.#polling;
    this.#follower?.close();
  }

  #schedule(ms: number): void {
    if (this.#stopped) return;
    this.#timer = setTimeout(() => {
      this.#polling = this.#poll().catch((err) =>
        log.error("reading the alert file {path} failed: {error}", {
          path: this.#path,
          error: (err as Error).message,
        })
      ).finally(() => {
        const seconds = this.#o.config().intrusion_detection.max_process_time;
        this.#schedule(Math.max(50, seconds * 1000));
      });
    }, ms);
  }

  async #poll(): Promise<void> {
    const follower = this.#follower!;
    for (;;) {
      if (this.#stopped) return;
      const batch = await follower.read();
      if (!batch) return;
      const threshold = this.#o.config().intrusion_detection.alert_threshold;
      const sendable = [];
      for (const a of batch.alerts) {
        if (a.level >= threshold) {
          sendable.push(a);
        } else {
          log.info(
            "OSSEC alert kept local (level {level} is below the threshold {threshold}): rule {rule} '{subject}'",
            { level: a.level, threshold, rule: a.rule, subject: a.subject },
          );
        }
      }
      const stored: StoredCursor = { path: this.#path, format: this.#format, cursor: batch.cursor };
      const queued = await this.#o.journal.alerts.enqueue(sendable, JSON.stringify(stored));
      follower.commit(batch.cursor);
      if (queued) this.sender.pump();
    }
  }

  #storedCursor(): FileCursor | null {
    const text = this.#o.journal.alerts.cursor();
    if (!text) return null;
    try {
      const s = JSON.parse(text) as StoredCursor;
      if (s.path === this.#path && s.format === this.#format) return s.cursor;
      log.info("the alert file or format changed; reading {path} from its start", {
        path: this.#path,
      });
    } catch { /* unreadable: start over, the journal skips alerts already sent */ }
    return null;
  }
}

/** Runs `ossec-control start` as the original did, if OSSEC is installed. */
async function startOssec(config: AgentConfig): Promise<void> {
  const control = config.intrusion_detection.ossec_control;
  if (!control) return;
  try {
    Deno.statSync(control);
  } catch {
    log.info("{control} does not exist; not starting OSSEC (install it yourself if you want it)", {
      control,
    });
    return;
  }
  const argv = Deno.uid() === 0 ? [control, "start"] : [config.system.sudo!, control, "start"];
  try {
    const r = await runProcess(argv, { env: {}, timeoutMs: 60_000, maxOutputBytes: 65536 });
    if (r.code !== 0) {
      log.warn("'{cmd}' exited with {code}: {stderr}", {
        cmd: argv.join(" "),
        code: r.code,
        stderr: r.stderr.trim().slice(0, 500),
      });
    } else log.info("started OSSEC with '{cmd}'", { cmd: argv.join(" ") });
  } catch (err) {
    log.warn("cannot start OSSEC: {error}", { error: (err as Error).message });
  }
}
