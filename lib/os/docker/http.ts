/**
 * HTTP/1.1 to the Docker Engine through Deno's `fetch`: over the unix socket
 * (an HTTP client whose "proxy" is the socket) or over TCP with TLS (CA and
 * client certificate). Failures become DockerError with plain-words text.
 */
import type { DockerSettings } from "./settings.ts";

/** A Docker request that failed; `status` is the Engine's HTTP status, 0 when it was not reached. */
export class DockerError extends Error {
  readonly status: number;
  constructor(message: string, status = 0) {
    super(message);
    this.name = "DockerError";
    this.status = status;
  }
}

/** One request to the Engine. */
export interface EngineRequest {
  method?: string;
  /** Query parameters; undefined values are left out. */
  query?: Record<string, string | number | boolean | undefined>;
  /** A JSON body (objects) or a raw stream/bytes body. */
  json?: unknown;
  body?: ReadableStream<Uint8Array> | Uint8Array;
  headers?: Record<string, string>;
  /** Milliseconds to wait for the response headers; default the configured timeout. */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The innermost cause of a fetch failure, without the URL noise. */
function causeText(err: unknown): string {
  let e = err as { message?: string; cause?: unknown };
  while (e?.cause && typeof e.cause === "object") e = e.cause as typeof e;
  const text = String(e?.message ?? err);
  return text.replace(/^error sending request for url \([^)]*\): /, "").replace(
    /^client error \(Connect\): /,
    "",
  );
}

/** Speaks HTTP to one Engine address. */
export class EngineHttp {
  readonly settings: DockerSettings;
  #client: Deno.HttpClient;

  constructor(settings: DockerSettings) {
    this.settings = settings;
    const options: Deno.CreateHttpClientOptions & Partial<Deno.TlsCertifiedKeyPem> = {
      http2: false,
    };
    if (settings.socketPath) options.proxy = { transport: "unix", path: settings.socketPath };
    if (settings.caCert) options.caCerts = [settings.caCert];
    if (settings.clientCert && settings.clientKey) {
      options.cert = settings.clientCert;
      options.key = settings.clientKey;
    }
    this.#client = Deno.createHttpClient(options as Deno.CreateHttpClientOptions);
  }

  /** Sends a request; returns the response when its status is 2xx/3xx, else throws DockerError. */
  async send(path: string, req: EngineRequest = {}): Promise<Response> {
    const url = new URL(path, this.settings.origin);
    for (const [k, v] of Object.entries(req.query ?? {})) {
      if (v !== undefined) url.searchParams.set(k, String(v));
    }
    const timeoutMs = req.timeoutMs ?? this.settings.timeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    const headers: Record<string, string> = { ...req.headers };
    let body: BodyInit | undefined;
    if (req.json !== undefined) {
      headers["Content-Type"] = "application/json";
      body = JSON.stringify(req.json);
    } else if (req.body) {
      body = req.body as BodyInit;
    }
    let res: Response;
    try {
      res = await fetch(url, {
        method: req.method ?? "GET",
        headers,
        body,
        signal,
        client: this.#client,
      });
    } catch (err) {
      if (req.signal?.aborted) throw new DockerError("the command was cancelled");
      if (timeout.aborted) {
        throw new DockerError(
          `the Docker daemon at ${this.settings.address} did not answer within ` +
            `${timeoutMs / 1000} s; is it overloaded? raise [docker] timeout`,
        );
      }
      const cause = causeText(err);
      throw new DockerError(
        `cannot reach the Docker daemon at ${this.settings.address}: ${cause}; ${hint(cause)}`,
      );
    }
    if (res.status >= 400) throw await engineError(res);
    return res;
  }

  /** Closes the connection pool. */
  close(): void {
    this.#client.close();
  }
}

/** What to do about a connection failure. */
function hint(cause: string): string {
  if (/BadCertificate|CertificateRequired|certificate required/i.test(cause)) {
    return "the daemon refused the client certificate; set [docker] client_cert_path and " +
      "client_key_path to a certificate signed by the CA the daemon trusts (--tlscacert)";
  }
  if (/UnknownIssuer|certificate|NotValidForName/i.test(cause)) {
    return "the daemon's certificate is not trusted; set [docker] ca_cert to the CA that signed " +
      "it, and use the host name or IP the certificate names in base_url";
  }
  return "is dockerd running? set [docker] base_url";
}

/** The Engine's error text from a failed response ({"message": ...} or plain text). */
async function engineError(res: Response): Promise<DockerError> {
  let text = "";
  try {
    text = (await res.text()).slice(0, 4096).trim();
  } catch {
    // The body is lost; the status still says what happened.
  }
  let message = text;
  try {
    const doc = JSON.parse(text);
    if (doc && typeof doc.message === "string") message = doc.message;
  } catch {
    // Older engines answer in plain text.
  }
  if (message === "") message = res.statusText || "no error text";
  if (/HTTP request to an HTTPS server/i.test(message)) {
    message = `${
      message.replace(/\.$/, "")
    }; set [docker] tls=True with ca_cert and the client certificate`;
  }
  return new DockerError(`${message} (Docker Engine HTTP ${res.status})`, res.status);
}
