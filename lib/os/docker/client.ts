/**
 * A small Docker Engine client: the calls the docker commands make, at an
 * API version agreed with the daemon (asked once with `GET /version`).
 */
import { DockerError, EngineHttp, type EngineRequest } from "./http.ts";
import type { DockerSettings } from "./settings.ts";
import { jsonLines, readMultiplexed, readRaw, type StreamText } from "./streams.ts";

/** The oldest API whose request shapes this client sends (Engine 1.12, 2016). */
export const CLIENT_MIN_API = "1.24";
/**
 * The newest API whose documented request and answer shapes match what this
 * client sends and reads (the tests run Engine 20.10, API 1.41). Newer
 * daemons still speak it.
 */
export const CLIENT_MAX_API = "1.45";
/** The last API that accepted host settings in the start request's body. */
const START_BODY_API = "1.23";

/** Compares "1.x" API versions. */
function compareApi(a: string, b: string): number {
  const [am, an] = a.split(".").map(Number);
  const [bm, bn] = b.split(".").map(Number);
  return am !== bm ? am - bm : an - bn;
}

/** The API version both sides support, closest to the preference; throws when there is none. */
export function chooseApiVersion(
  daemon: { min?: string; max: string },
  preferred?: string,
): string {
  const lo = daemon.min && compareApi(daemon.min, CLIENT_MIN_API) > 0 ? daemon.min : CLIENT_MIN_API;
  const hi = compareApi(daemon.max, CLIENT_MAX_API) < 0 ? daemon.max : CLIENT_MAX_API;
  if (compareApi(lo, hi) > 0) {
    const upgrade = compareApi(daemon.max, CLIENT_MIN_API) < 0 ? "Docker Engine" : "dcm-agent";
    throw new DockerError(
      `the Docker daemon speaks API ${daemon.min ?? "?"} to ${daemon.max}; this agent speaks ` +
        `${CLIENT_MIN_API} to ${CLIENT_MAX_API}; upgrade ${upgrade}`,
    );
  }
  const want = preferred ?? hi;
  if (compareApi(want, lo) < 0) return lo;
  if (compareApi(want, hi) > 0) return hi;
  return want;
}

/** The JSON of an Engine answer (null when empty). */
function parseJson<T>(text: string, address: string): T {
  if (text.trim() === "") return null as T;
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new DockerError(
      `${address} answered with something that is not JSON (${
        JSON.stringify(text.slice(0, 80))
      }); ` +
        "is [docker] base_url a Docker daemon?",
    );
  }
}

/** The agreed versions: the one used, and the daemon's own range. */
interface Agreed {
  version: string;
  daemonMin?: string;
}

/** A progress event of a pull, passed to the caller as it arrives. */
export type PullProgress = Record<string, unknown>;

/** The Docker Engine calls the agent makes. */
export class DockerClient {
  readonly http: EngineHttp;
  #agreed?: Promise<Agreed>;

  constructor(settings: DockerSettings) {
    this.http = new EngineHttp(settings);
  }

  /** The API version in use (asks the daemon the first time). */
  async apiVersion(): Promise<string> {
    return (await this.#agree()).version;
  }

  #agree(): Promise<Agreed> {
    this.#agreed ??= (async () => {
      const res = await this.http.send("/version");
      const doc = parseJson<{ ApiVersion?: string; MinAPIVersion?: string }>(
        await res.text(),
        this.http.settings.address,
      ) ?? {};
      if (typeof doc.ApiVersion !== "string" || !/^1\.\d+$/.test(doc.ApiVersion)) {
        throw new DockerError(
          `${this.http.settings.address} answered /version without an ApiVersion; is it a Docker daemon?`,
        );
      }
      const min = typeof doc.MinAPIVersion === "string" ? doc.MinAPIVersion : undefined;
      const version = chooseApiVersion(
        { min, max: doc.ApiVersion },
        this.http.settings.version,
      );
      return { version, daemonMin: min };
    })();
    // A failed negotiation is asked again next time (the daemon may come up later).
    this.#agreed.catch(() => this.#agreed = undefined);
    return this.#agreed;
  }

  /** A request at the agreed version. */
  async call(path: string, req: EngineRequest = {}): Promise<Response> {
    return this.http.send(`/v${await this.apiVersion()}${path}`, req);
  }

  /** A request whose JSON answer is returned. */
  async json<T = unknown>(path: string, req: EngineRequest = {}): Promise<T> {
    return parseJson<T>(await (await this.call(path, req)).text(), this.http.settings.address);
  }

  /** A request whose answer is ignored. */
  async done(path: string, req: EngineRequest = {}): Promise<void> {
    const res = await this.call(path, req);
    await res.body?.cancel();
  }

  /** POST /containers/create. */
  createContainer(body: Record<string, unknown>, name?: string): Promise<unknown> {
    return this.json("/containers/create", { method: "POST", query: { name }, json: body });
  }

  /**
   * POST /containers/{id}/start. Host settings at start were dropped in API
   * 1.24, so a start with host settings speaks 1.23 when the daemon still does.
   */
  async startContainer(id: string, hostConfig?: Record<string, unknown>): Promise<void> {
    if (!hostConfig) return this.done(`/containers/${id}/start`, { method: "POST" });
    const { daemonMin } = await this.#agree();
    if (daemonMin === undefined || compareApi(daemonMin, START_BODY_API) > 0) {
      throw new DockerError(
        `this Docker daemon (minimum API ${daemonMin ?? "unknown"}) no longer accepts ` +
          "port_bindings, links, privileged, publish_all_ports, cap_add, cap_drop or lxc_conf " +
          "when a container starts; start it without them",
      );
    }
    const res = await this.http.send(`/v${START_BODY_API}/containers/${id}/start`, {
      method: "POST",
      json: hostConfig,
    });
    await res.body?.cancel();
  }

  /** GET /containers/{id}/logs, decoded to text (at most `maxBytes`). */
  async logs(
    id: string,
    options: { stdout: boolean; stderr: boolean; timestamps: boolean; maxBytes: number },
  ): Promise<StreamText> {
    const info = await this.json<{ Config?: { Tty?: boolean } }>(`/containers/${id}/json`);
    const res = await this.call(`/containers/${id}/logs`, {
      query: {
        stdout: options.stdout ? 1 : 0,
        stderr: options.stderr ? 1 : 0,
        timestamps: options.timestamps ? 1 : 0,
      },
    });
    if (!res.body) return { text: "", truncated: false };
    try {
      return await (info?.Config?.Tty
        ? readRaw(res.body, { maxBytes: options.maxBytes })
        : readMultiplexed(res.body, { maxBytes: options.maxBytes }));
    } catch (err) {
      throw this.#broken(err);
    }
  }

  /**
   * POST /images/create (pull or import); each progress line goes to
   * `onProgress`; a line carrying an error throws it. Returns the last line.
   */
  async createImage(
    query: Record<string, string | undefined>,
    options: {
      body?: ReadableStream<Uint8Array>;
      onProgress?: (p: PullProgress) => void;
      signal?: AbortSignal;
    } = {},
  ): Promise<PullProgress | null> {
    const res = await this.call("/images/create", {
      method: "POST",
      query,
      body: options.body,
      headers: {
        "Content-Type": options.body ? "application/x-tar" : "application/json",
        // An empty credential: pulls from registries that need no login.
        "X-Registry-Auth": btoa("{}"),
      },
      signal: options.signal,
      // A pull or import of a big image may take long.
      timeoutMs: Math.max(this.http.settings.timeoutMs, 3_600_000),
    });
    let last: PullProgress | null = null;
    if (!res.body) return last;
    try {
      for await (const line of jsonLines(res.body)) {
        const error = line.error ?? (line.errorDetail as { message?: unknown })?.message;
        if (error !== undefined && error !== null && error !== "") {
          // The request itself succeeded (HTTP 200); the Engine failed on the way.
          throw new DockerError(String(error), 200);
        }
        options.onProgress?.(line);
        last = line;
      }
    } catch (err) {
      throw this.#broken(err);
    }
    return last;
  }

  /** A failure while an answer was streaming in, in plain words. */
  #broken(err: unknown): Error {
    if (err instanceof DockerError) return err;
    const name = (err as Error)?.name;
    const why = name === "TimeoutError"
      ? "took longer than the time allowed; raise [docker] timeout"
      : name === "AbortError"
      ? "was cancelled"
      : `broke off: ${(err as Error)?.message ?? err}`;
    return new DockerError(
      `the answer of the Docker daemon at ${this.http.settings.address} ${why}`,
    );
  }

  /** Closes the connections. */
  close(): void {
    this.http.close();
  }
}
