/**
 * Tells systemd how the agent is doing (unit `Type=notify`): `READY=1` once
 * the configuration and journal are loaded, `STATUS=` lines shown by
 * `systemctl status`, `WATCHDOG=1` pings and `STOPPING=1` at shutdown. The
 * pings come from a timer on the agent's own event loop, so a loop that is
 * blocked (a runaway synchronous call, a deadlock) stops them and systemd
 * restarts the agent after `WatchdogSec`. Without `$NOTIFY_SOCKET` (not
 * started by systemd) nothing is loaded and nothing is sent.
 */
import { getLogger } from "../logging/mod.ts";
import type { Notifier } from "../os/sd_notify.ts";

const log = getLogger(["dcm", "agent"]);

/** STATUS= is refreshed this often when there is no watchdog to piggyback on. */
const STATUS_REFRESH_MS = 10_000;

/** Environment lookup (tests pass their own). */
export type EnvLookup = (name: string) => string | undefined;

/** What the STATUS= line reports. */
export type StatusText = () => string;

/** The systemd side of the agent's life cycle; every method is a no-op once closed. */
export class ServiceNotify {
  #notifier: Notifier;
  #status: StatusText;
  #lastStatus = "";
  #timer: ReturnType<typeof setTimeout> | undefined;
  #failed = false;
  #stopping = false;
  /** Milliseconds between WATCHDOG=1 pings; 0 when systemd wants none. */
  readonly watchdogMs: number;

  private constructor(notifier: Notifier, status: StatusText, watchdogMs: number) {
    this.#notifier = notifier;
    this.#status = status;
    this.watchdogMs = watchdogMs;
  }

  /** Connects to `$NOTIFY_SOCKET`; null when it is not set or cannot be used (logged). */
  static async open(status: StatusText, env: EnvLookup = (n) => Deno.env.get(n)): Promise<
    ServiceNotify | null
  > {
    if (!env("NOTIFY_SOCKET")) return null;
    try {
      const { openNotifier } = await import("../os/sd_notify.ts");
      const notifier = openNotifier(env);
      return notifier && new ServiceNotify(notifier, status, watchdogInterval(env));
    } catch (err) {
      log.error("cannot talk to systemd ({error}); the watchdog may restart the agent", {
        error: (err as Error).message,
      });
      return null;
    }
  }

  /** Sends READY=1 with the first STATUS= and starts the watchdog pings. */
  ready(): void {
    this.#lastStatus = this.#status();
    this.#send(`READY=1\nSTATUS=${this.#lastStatus}`);
    const timer = setInterval(() => this.#tick(), this.watchdogMs || STATUS_REFRESH_MS);
    // The pings must not keep a stopping agent alive.
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  /** Sends STATUS= now if it changed (connects, disconnects). */
  refresh(): void {
    if (this.#stopping) return;
    const text = this.#status();
    if (text === this.#lastStatus) return;
    this.#lastStatus = text;
    this.#send(`STATUS=${text}`);
  }

  /** Sends STOPPING=1; the pings go on, so a shutdown that hangs is caught too. */
  stopping(): void {
    this.#stopping = true;
    this.#send("STOPPING=1\nSTATUS=stopping: waiting for running commands");
  }

  /** Closes the socket. */
  close(): void {
    clearInterval(this.#timer);
    this.#notifier.close();
  }

  #tick(): void {
    if (this.watchdogMs) this.#send("WATCHDOG=1");
    this.refresh();
  }

  #send(message: string): void {
    try {
      this.#notifier.send(message);
      this.#failed = false;
    } catch (err) {
      // Log once per outage, not once per ping.
      if (!this.#failed) {
        log.warn("{error}", { error: (err as Error).message });
      }
      this.#failed = true;
    }
  }
}

/** Half of `$WATCHDOG_USEC` in ms (systemd's advice), or 0 when the watchdog is off or meant for another process. */
export function watchdogInterval(env: EnvLookup): number {
  const usec = Number(env("WATCHDOG_USEC") ?? 0);
  const pid = env("WATCHDOG_PID");
  if (!Number.isFinite(usec) || usec <= 0) return 0;
  if (pid && Number(pid) !== Deno.pid) return 0;
  return Math.max(1, Math.floor(usec / 2000));
}
