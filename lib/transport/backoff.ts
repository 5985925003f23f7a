/**
 * Reconnect backoff (ARCHITECTURE.md, The wire protocol): the first attempt is immediate, each error
 * doubles the delay up to a maximum, activity resets it, and a 503 handshake
 * reply forces a lower bound.
 *
 * Jitter: the wait after an error is drawn uniformly from
 * [(1 - jitter) * d, d] where d is the doubled delay, so a fleet that lost the
 * same manager does not reconnect in lock-step. The doubling itself uses the
 * un-jittered d, so the sequence keeps the original's 2, 4, 8… upper bounds
 * and never waits longer than the original would. A forced backoff is applied
 * without jitter and nothing ever moves the ready time before it.
 */

/** Options for {@linkcode Backoff}. */
export interface BackoffOptions {
  /** Initial delay in ms ([connection] backoff); the first retry waits up to twice this. */
  initialMs: number;
  /** Longest delay in ms ([connection] max_backoff). */
  maxMs: number;
  /** Fraction of the delay that may be cut by jitter, 0 to 1; default 0.2. */
  jitter?: number;
  /** Monotonic clock in ms, so a wall-clock step neither stalls nor hurries a retry (tests inject one). */
  now?: () => number;
  /** Uniform random number in [0, 1) (tests inject one). */
  random?: () => number;
}

/** Reconnect delay bookkeeping; all times in ms. */
export class Backoff {
  #initial: number;
  #max: number;
  #current: number;
  #readyAt: number;
  #jitter: number;
  #now: () => number;
  #random: () => number;

  constructor(options: BackoffOptions) {
    this.#initial = options.initialMs;
    this.#max = Math.max(options.maxMs, options.initialMs);
    this.#current = this.#initial;
    this.#jitter = Math.min(Math.max(options.jitter ?? 0.2, 0), 1);
    this.#now = options.now ?? (() => performance.now());
    this.#random = options.random ?? Math.random;
    this.#readyAt = this.#now();
  }

  /** Milliseconds until the next attempt may start (0 when it may start now). */
  delayMs(): number {
    return Math.max(0, this.#readyAt - this.#now());
  }

  /** Records a failed attempt; returns the wait in ms before the next one. */
  error(): number {
    this.#current = Math.min(this.#current * 2, this.#max);
    const wait = this.#current * (1 - this.#jitter * this.#random());
    this.#readyAt = Math.max(this.#readyAt, this.#now() + wait);
    return this.delayMs();
  }

  /** Records activity (a successful handshake or an incoming message): reset. */
  activity(): void {
    this.#current = this.#initial;
    this.#readyAt = this.#now();
  }

  /** Waits at least `seconds` before the next attempt (503 FORCE_BACKOFF). */
  force(seconds: number): void {
    this.#readyAt = Math.max(this.#readyAt, this.#now() + seconds * 1000);
  }

  /** Applies new limits (SIGHUP); the current delay is clamped into them. */
  setLimits(initialMs: number, maxMs: number): void {
    this.#initial = initialMs;
    this.#max = Math.max(maxMs, initialMs);
    this.#current = Math.min(Math.max(this.#current, initialMs), this.#max);
  }
}
