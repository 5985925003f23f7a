/**
 * Keeps a repeated log line from flooding the log: the first `burst` events
 * of each period are logged in full, later ones are only counted, and one
 * line at the end of the period says how many were left out. A peer sending
 * 100,000 bad frames costs a few lines, not 100,000 (time and disk).
 */

/** Options for {@linkcode LogThrottle}. */
export interface LogThrottleOptions {
  /** Events logged in full per period. */
  burst: number;
  /** Length of a period in ms (monotonic clock). */
  periodMs: number;
  /** Logs the summary of `count` events left out in the period that just ended. */
  onSuppressed(count: number): void;
}

/** Decides which of a stream of like events are logged. */
export class LogThrottle {
  #o: LogThrottleOptions;
  #periodStart = -Infinity;
  #logged = 0;
  #suppressed = 0;
  #timer: ReturnType<typeof setTimeout> | undefined;

  constructor(options: LogThrottleOptions) {
    this.#o = options;
  }

  /** True if this event is to be logged in full; otherwise it is counted for the summary. */
  allow(now: number = performance.now()): boolean {
    if (now - this.#periodStart >= this.#o.periodMs) {
      this.#flush();
      this.#periodStart = now;
      this.#logged = 0;
    }
    if (this.#logged < this.#o.burst) {
      this.#logged++;
      return true;
    }
    if (this.#suppressed++ === 0) {
      // The summary is due at the end of the period even if no event follows.
      const wait = Math.max(0, this.#periodStart + this.#o.periodMs - now);
      const timer = setTimeout(() => this.#flush(), wait);
      // It must not keep the process alive.
      Deno.unrefTimer(timer);
      this.#timer = timer;
    }
    return false;
  }

  #flush(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    const count = this.#suppressed;
    this.#suppressed = 0;
    if (count > 0) this.#o.onSuppressed(count);
  }
}
