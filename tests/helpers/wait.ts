/** Waiting helpers shared by the tests. */

/** Polls `get` until it returns a value other than undefined, null or false. */
export async function waitFor<T>(
  get: () => T | undefined | null | false,
  timeoutMs = 3000,
  what = "condition",
): Promise<T> {
  const deadline = performance.now() + timeoutMs;
  for (;;) {
    const value = get();
    if (value !== undefined && value !== false && value !== null) return value;
    if (performance.now() > deadline) {
      throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    }
    await delay(5);
  }
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** The promise's value, or undefined if it takes longer than `ms`. */
export async function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms)),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
