/**
 * Paging of large docker results: the first call stores the whole result
 * under a token and returns the first page; the same token returns the next
 * pages until the last, which forgets the token. Pages hold at most 12 KiB;
 * an item bigger than that is sent alone on its page. Stored results expire
 * after two hours and the store is bounded, oldest evicted first.
 */

/** Largest page, in bytes of JSON (lists) or UTF-8 (text). */
export const PAGE_BYTES = 12 * 1024;
/** How long a stored result may wait for its next page. */
export const PAGE_TTL_MS = 2 * 60 * 60 * 1000;

const encoder = new TextEncoder();

/** One page and the token for the next (null on the last page). */
export interface Page<T> {
  page: T;
  nextToken: string | null;
}

/** The pages of one result, cut up front. */
interface Stored {
  kind: string;
  pages: unknown[];
  next: number;
  bytes: number;
  expires: number;
}

/** Cuts a list into pages of whole items whose summed JSON sizes stay within `limit`. */
export function pageList(items: unknown[], limit = PAGE_BYTES): unknown[][] {
  const pages: unknown[][] = [];
  let page: unknown[] = [];
  let size = 0;
  for (const item of items) {
    const n = encoder.encode(JSON.stringify(item) ?? "null").length;
    if (page.length > 0 && size + n > limit) {
      pages.push(page);
      page = [];
      size = 0;
    }
    page.push(item);
    size += n;
  }
  if (page.length > 0 || pages.length === 0) pages.push(page);
  return pages;
}

/**
 * Cuts text into pages of at most `limit` UTF-8 bytes, at the last line end
 * that fits when there is one, never inside a character.
 */
export function pageText(text: string, limit = PAGE_BYTES): string[] {
  const pages: string[] = [];
  const bytes = (from: number, to: number) => encoder.encode(text.slice(from, to)).length;
  let at = 0;
  // A window of limit+1 characters is over `limit` bytes exactly when the rest is.
  while (bytes(at, at + limit + 1) > limit) {
    // The longest prefix within `limit` bytes (a character is 1 to 4 bytes).
    let lo = 0;
    let hi = limit;
    while (lo < hi) {
      const mid = Math.ceil((lo + hi) / 2);
      if (bytes(at, at + mid) <= limit) lo = mid;
      else hi = mid - 1;
    }
    let cut = at + lo;
    // Do not split a surrogate pair.
    const code = text.charCodeAt(cut - 1);
    if (code >= 0xd800 && code <= 0xdbff) cut--;
    const nl = text.lastIndexOf("\n", cut - 1);
    if (nl >= at) cut = nl + 1;
    pages.push(text.slice(at, cut));
    at = cut;
  }
  pages.push(text.slice(at));
  return pages;
}

/** An unknown, expired or misused page token. */
class PageTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "PageTokenError";
  }
}

/** The store of paged results. */
export class PageStore {
  #stored = new Map<string, Stored>();
  #bytes = 0;
  readonly #maxResults: number;
  readonly #maxBytes: number;
  readonly #now: () => number;
  #timer?: ReturnType<typeof setInterval>;

  constructor(
    options: { maxResults?: number; maxBytes?: number; now?: () => number } = {},
  ) {
    this.#maxResults = options.maxResults ?? 100;
    this.#maxBytes = options.maxBytes ?? 64 * 1024 * 1024;
    this.#now = options.now ?? Date.now;
  }

  /** How many results are stored (after dropping expired ones). */
  get size(): number {
    this.#sweep();
    return this.#stored.size;
  }

  /** Cuts `pages` already made; returns the first page and stores the rest under a new token. */
  start<T>(kind: string, pages: T[], bytes: number): Page<T> {
    this.#sweep();
    if (pages.length <= 1) return { page: pages[0], nextToken: null };
    const token = crypto.randomUUID().replaceAll("-", "");
    this.#stored.set(token, {
      kind,
      pages,
      next: 1,
      bytes,
      expires: this.#now() + PAGE_TTL_MS,
    });
    this.#bytes += bytes;
    this.#watch();
    // Bounded: the oldest results go first (Map keeps insertion order).
    for (const [old, s] of this.#stored) {
      if (this.#stored.size <= this.#maxResults && this.#bytes <= this.#maxBytes) break;
      if (old === token) break;
      this.#drop(old, s);
    }
    return { page: pages[0], nextToken: token };
  }

  /** The next page of a stored result; the last one forgets the token. */
  next<T>(kind: string, token: string): Page<T> {
    this.#sweep();
    const stored = /^[0-9a-f]{32}$/.test(token) ? this.#stored.get(token) : undefined;
    if (!stored) {
      throw new PageTokenError(
        `page set ${JSON.stringify(token.slice(0, 64))} not found: it was never made, was ` +
          "read to its end, or expired after 2 hours; call again without page_token",
      );
    }
    if (stored.kind !== kind) {
      throw new PageTokenError(
        `page set ${token} belongs to ${stored.kind}, not ${kind}; use it with ${stored.kind}`,
      );
    }
    const page = stored.pages[stored.next++] as T;
    if (stored.next >= stored.pages.length) {
      this.#drop(token, stored);
      return { page, nextToken: null };
    }
    return { page, nextToken: token };
  }

  #drop(token: string, stored: Stored): void {
    this.#stored.delete(token);
    this.#bytes -= stored.bytes;
    if (this.#stored.size === 0 && this.#timer !== undefined) {
      clearInterval(this.#timer);
      this.#timer = undefined;
    }
  }

  /** While results are stored, sweeps expired ones every minute (without keeping the agent up). */
  #watch(): void {
    if (this.#timer !== undefined) return;
    const timer = setInterval(() => this.#sweep(), 60_000);
    Deno.unrefTimer(timer);
    this.#timer = timer;
  }

  #sweep(): void {
    const now = this.#now();
    for (const [token, s] of this.#stored) if (s.expires <= now) this.#drop(token, s);
  }
}

/** The agent's one store, shared by the list and log commands. */
const PAGES: PageStore = new PageStore();

/** Pages a list: the first page, or the next page of `token`. */
export function listPage(
  kind: string,
  token: string | null,
  items: () => Promise<unknown[]>,
): Promise<Page<unknown[]>> {
  return paged(kind, token, async () => {
    const all = await items();
    return { pages: pageList(all), bytes: encoder.encode(JSON.stringify(all)).length };
  });
}

/** Pages text: the first page, or the next page of `token`. */
export function textPage(
  kind: string,
  token: string | null,
  text: () => Promise<string>,
): Promise<Page<string>> {
  return paged(kind, token, async () => {
    const all = await text();
    return { pages: pageText(all), bytes: all.length * 2 };
  });
}

async function paged<T>(
  kind: string,
  token: string | null,
  make: () => Promise<{ pages: T[]; bytes: number }>,
): Promise<Page<T>> {
  if (token !== null && token !== "") return PAGES.next<T>(kind, token);
  const { pages, bytes } = await make();
  return PAGES.start(kind, pages, bytes);
}
