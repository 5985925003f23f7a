/**
 * A small development agent manager speaking protocol 104 on loopback (spec
 * 1.3, 1.4, 1.8). It is a library for the integration tests, the demo and the
 * bench, and a CLI for trying the agent by hand:
 *
 *   deno run -A scripts/dev_manager.ts --port 8765
 *
 * The CLI prints the handshake and every frame, reads lines such as
 * `heartbeat {}` from stdin, sends them as REQUESTs and prints the replies.
 */
// @deno-types="@types/ws"
import WebSocket, { type RawData, WebSocketServer } from "ws";
import { Buffer } from "node:buffer";
import type { IncomingMessage } from "node:http";
import type { Socket } from "node:net";
import { parseArgs } from "node:util";
import { percentDecode } from "../lib/protocol/messages.ts";

/** A JSON object frame. */
export type Frame = Record<string, unknown>;

/** What a handshake callback returns: the reply to send, or "ignore" to never answer. */
export type HandshakeAnswer = Frame | "ignore";

/** Decides the reply to the `attempt`-th handshake document (1-based, over all connections). */
export type HandshakeHandler = (doc: Frame, attempt: number) => HandshakeAnswer;

/** One recorded frame after the handshake. */
export interface FrameRecord {
  /** "in" from the agent, "out" from the manager. */
  dir: "in" | "out";
  /** Epoch milliseconds. */
  at: number;
  /** The parsed JSON object, or the raw text when it was not a JSON object. */
  frame: Frame | string;
}

/** Something that happened on the manager; the CLI prints these. */
export type DevManagerEvent =
  | { kind: "connect"; connection: number; path: string; protocol: string }
  | { kind: "handshake"; connection: number; attempt: number; doc: Frame; answer: HandshakeAnswer }
  | { kind: "frame"; connection: number; record: FrameRecord }
  | { kind: "ping"; connection: number }
  | { kind: "disconnect"; connection: number; code: number; reason: string };

/** Options of {@linkcode DevManager.start}. */
export interface DevManagerOptions {
  /** TCP port; 0 (the default) picks a free one. */
  port?: number;
  /** Listen address; default 127.0.0.1. */
  hostname?: string;
  /** agentID given in the default 200 handshake reply. */
  agentId?: string;
  /** customerId given in the default 200 handshake reply; default 50. */
  customerId?: number;
  /** Decides each handshake reply; the default accepts with return_code 200. */
  handshake?: HandshakeHandler;
  /** ACK every REPLY to a request made with `request()`; default true. */
  autoAckReplies?: boolean;
  /** Answer every ALERT with an ALERT_ACK; default false. */
  autoAckAlerts?: boolean;
  /** Seconds between REQUEST retransmissions; 0 (the default) turns them off. */
  retransmitSeconds?: number;
  /** How many frames `frames` keeps; default 10000. */
  maxFrames?: number;
  /** Called for every connection, handshake, frame, ping and disconnect. */
  onEvent?: (event: DevManagerEvent) => void;
}

/** Options of {@linkcode DevManager.request}. */
export interface RequestOptions {
  /** The request_id; default a random UUID. */
  requestId?: string;
  /** Milliseconds to wait for the REPLY; default 30000. */
  timeoutMs?: number;
  /** Overrides the manager's retransmission period for this request (seconds, 0 = off). */
  retransmitSeconds?: number;
  /** Extra keys merged into the REQUEST payload (e.g. `longer_runner`). */
  extra?: Record<string, unknown>;
}

/** The outcome of {@linkcode DevManager.request}. */
export interface RequestResult {
  /** The request_id that was used. */
  requestId: string;
  /** The first ACK for the request, or null when the REPLY came without one. */
  ack: Frame | null;
  /** The REPLY frame. */
  reply: Frame;
}

/** Options of {@linkcode DevManager.waitForFrame}. */
export interface WaitForFrameOptions {
  /** Milliseconds to wait; default 10000. */
  timeoutMs?: number;
  /** Absolute frame number to search from (a value of `frameCount`, which equals `frames.length` until trimming); default 0. */
  since?: number;
  /** Which direction to match; default "in" (frames the agent sent). */
  dir?: "in" | "out" | "any";
}

/** The agent answered a `request()` with a NACK instead of a REPLY. */
export class RequestNackedError extends Error {
  /** The NACK frame. */
  readonly nack: Frame;
  /** Builds the error from the NACK frame. */
  constructor(command: string, nack: Frame) {
    super(
      `the agent NACKed '${command}' (request ${String(nack.request_id)}): ${
        String(nack.error_message ?? "")
      }`,
    );
    this.name = "RequestNackedError";
    this.nack = nack;
  }
}

type Timer = ReturnType<typeof setTimeout>;

const DEFAULT_FRAME_TIMEOUT_MS = 10_000;
const DEFAULT_REQUEST_TIMEOUT_MS = 30_000;
/** The model keeps ACKing retransmitted REPLYs for its 60 s cleanup timeout (ARCHITECTURE.md, Messages). */
const REPLY_ACK_WINDOW_MS = 60_000;

interface Connection {
  id: number;
  ws: WebSocket;
  socket: Socket;
  /** The first frame is the handshake; everything after it is a frame. */
  handshakeSeen: boolean;
  /** Set when a handshake reply with return_code 200 was sent on it. */
  accepted: boolean;
  frozen: boolean;
  /** Messages and pings that arrived while frozen, handled on unfreeze. */
  backlog: ({ ping: Buffer } | { text: string })[];
  /** Resolves when ws has seen the socket close. */
  closed: Promise<void>;
}

interface PendingRequest {
  command: string;
  doc: Frame;
  ack: Frame | null;
  resolve: (r: RequestResult) => void;
  reject: (e: Error) => void;
  promise?: Promise<RequestResult>;
  deadline?: Timer;
  retransmit?: Timer;
}

/** A pending waitForFrame() or waitForHandshake(). */
interface Waiter {
  resolve: (f: Frame) => void;
  reject: (e: Error) => void;
  timer: Timer;
  promise: Promise<Frame>;
}

interface FrameWaiter extends Waiter {
  since: number;
  dir: "in" | "out" | "any";
  predicate: (f: Frame) => boolean;
}

interface HandshakeWaiter extends Waiter {
  count: number;
}

/** A protocol-104 agent manager for development and tests (modelled on the original's test manager). */
export class DevManager {
  /** ws://<host>:<port>/agentManager */
  readonly url: string;
  /** Every handshake document received, in order. */
  readonly handshakes: Frame[] = [];
  /** performance.now() at which each handshake document arrived. */
  readonly handshakeTimes: number[] = [];
  /** The reply sent to each handshake ("ignore" when none was sent). */
  readonly handshakeReplies: HandshakeAnswer[] = [];
  /** Every frame after the handshakes, oldest first; trimmed to the last `maxFrames`. */
  readonly frames: FrameRecord[] = [];

  #wss: WebSocketServer;
  #port: number;
  #agentId: string;
  #customerId: number;
  #handshake: HandshakeHandler;
  #autoAck: boolean;
  readonly #autoAckAlerts: boolean;
  #retransmitSeconds: number;
  #maxFrames: number;
  #onEvent?: (event: DevManagerEvent) => void;

  #connections = new Set<Connection>();
  #current?: Connection;
  #connectionCount = 0;
  #handshakesHandled = 0;
  #droppedFrames = 0;
  #pings = 0;
  #messageCounter = 0;
  #ackCounter = 0;
  #closed = false;

  #pending = new Map<string, PendingRequest>();
  /** Requests sent before an accepted connection existed. */
  #unsent = new Set<PendingRequest>();
  /** request_id -> epoch ms until which retransmitted REPLYs are ACKed again. */
  #completed = new Map<string, number>();
  #frameWaiters = new Set<FrameWaiter>();
  #handshakeWaiters = new Set<HandshakeWaiter>();

  private constructor(
    wss: WebSocketServer,
    port: number,
    hostname: string,
    options: DevManagerOptions,
  ) {
    this.#wss = wss;
    this.#port = port;
    const host = hostname.includes(":") ? `[${hostname}]` : hostname;
    this.url = `ws://${host}:${port}/agentManager`;
    this.#agentId = options.agentId ?? `dev-agent-${crypto.randomUUID().slice(0, 8)}`;
    this.#customerId = options.customerId ?? 50;
    this.#handshake = options.handshake ?? ((_doc) => this.acceptHandshake());
    this.#autoAck = options.autoAckReplies ?? true;
    this.#autoAckAlerts = options.autoAckAlerts ?? false;
    this.#retransmitSeconds = options.retransmitSeconds ?? 0;
    this.#maxFrames = options.maxFrames ?? 10_000;
    this.#onEvent = options.onEvent;
    wss.on("connection", (ws, req) => this.#onConnection(ws, req));
  }

  /** Starts listening and resolves once the port is bound. */
  static async start(options: DevManagerOptions = {}): Promise<DevManager> {
    const hostname = options.hostname ?? "127.0.0.1";
    // autoPong is off so that pongs go through #onPing, which can hold them back while frozen.
    const wss = new WebSocketServer({
      host: hostname,
      port: options.port ?? 0,
      autoPong: false,
      clientTracking: true,
    });
    await new Promise<void>((resolve, reject) => {
      const onError = (err: Error) => {
        wss.off("listening", onListening);
        reject(
          new Error(
            `DevManager could not listen on ${hostname}:${options.port ?? 0}: ${err.message}`,
          ),
        );
      };
      const onListening = () => {
        wss.off("error", onError);
        resolve();
      };
      wss.once("error", onError);
      wss.once("listening", onListening);
    });
    const port = (wss.address() as { port: number }).port;
    return new DevManager(wss, port, hostname, options);
  }

  /** The bound TCP port. */
  get port(): number {
    return this.#port;
  }

  /** The agentID the default handshake reply hands out. */
  get agentId(): string {
    return this.#agentId;
  }

  /** Count of accepted websocket connections. */
  get connections(): number {
    return this.#connectionCount;
  }

  /** Count of websocket PINGs received from the agent. */
  get pings(): number {
    return this.#pings;
  }

  /** Total frames ever recorded (a stable index for `waitForFrame({since})`). */
  get frameCount(): number {
    return this.#droppedFrames + this.frames.length;
  }

  /** The default handshake reply: return_code 200 modelled on the original test fixture (ARCHITECTURE.md, Handshake). */
  acceptHandshake(): Frame {
    return {
      return_code: 200,
      handshake: {
        version: "1",
        agentID: this.#agentId,
        cloudId: "UNKNOWN",
        customerId: this.#customerId,
        regionId: null,
        zoneId: null,
        serverId: `server-${this.#agentId}`,
        serverName: "dev-server",
        ephemeralFileSystem: "/tmp",
        encryptedEphemeralFsKey: "",
      },
    };
  }

  /** True while the latest connection is open. */
  isConnected(): boolean {
    return this.#current !== undefined && this.#current.ws.readyState === WebSocket.OPEN;
  }

  /** Replaces the handshake decision for later handshakes. */
  setHandshake(fn: HandshakeHandler): void {
    this.#handshake = fn;
  }

  /** Turns automatic ACKs of REPLYs on or off. */
  setAutoAck(on: boolean): void {
    this.#autoAck = on;
  }

  /** Resolves with the count-th handshake document (default 1) once it has been answered or ignored. */
  waitForHandshake(options: { timeoutMs?: number; count?: number } = {}): Promise<Frame> {
    const count = options.count ?? 1;
    if (this.#handshakesHandled >= count) return Promise.resolve(this.handshakes[count - 1]);
    return this.#wait(
      this.#handshakeWaiters,
      { count },
      () =>
        `waiting for handshake #${count} ` +
        `(${this.handshakes.length} received, ${this.#connectionCount} connections)`,
      options.timeoutMs,
    );
  }

  /** Resolves with the first frame (from `since`) matching the predicate; by default only frames the agent sent. */
  waitForFrame(
    predicate: (f: Frame) => boolean,
    options: WaitForFrameOptions = {},
  ): Promise<Frame> {
    const since = options.since ?? 0;
    const dir = options.dir ?? "in";
    for (let i = Math.max(0, since - this.#droppedFrames); i < this.frames.length; i++) {
      const r = this.frames[i];
      if (matches(r, dir, predicate)) return Promise.resolve(r.frame as Frame);
    }
    return this.#wait(
      this.#frameWaiters,
      { since, dir, predicate },
      () => `waiting for a matching frame from the agent; last frames: ${this.#describeRecent(5)}`,
      options.timeoutMs,
    );
  }

  /** Adds a waiter to `waiters`; it rejects naming `what()` when nothing resolved it in time. */
  #wait<W extends Waiter>(
    waiters: Set<W>,
    match: Omit<W, keyof Waiter>,
    what: () => string,
    timeoutMs = DEFAULT_FRAME_TIMEOUT_MS,
  ): Promise<Frame> {
    if (this.#closed) return Promise.reject(new Error("DevManager is closed"));
    const { promise, resolve, reject } = Promise.withResolvers<Frame>();
    const waiter = {
      ...match,
      resolve,
      reject,
      promise,
      timer: setTimeout(() => {
        waiters.delete(waiter);
        reject(new Error(`timed out after ${timeoutMs} ms ${what()}`));
      }, timeoutMs),
    } as W;
    waiters.add(waiter);
    return promise;
  }

  /**
   * Sends a raw frame to the latest connection; throws when none is open or it
   * is frozen, unless `whileFrozen` (a manager that writes but never reads).
   */
  send(frame: Frame | string, options: { whileFrozen?: boolean } = {}): void {
    const conn = this.#current;
    if (!conn || conn.ws.readyState !== WebSocket.OPEN) {
      throw new Error("DevManager.send: no agent connection is open");
    }
    if (conn.frozen && !options.whileFrozen) {
      throw new Error("DevManager.send: the connection is frozen (call unfreeze() first)");
    }
    this.#sendOn(conn, frame);
  }

  /**
   * Sends a REQUEST and resolves with the REPLY (the original's test model, RequestRPC):
   * retransmits the same document while neither ACK nor REPLY came, and ACKs the REPLY
   * with its message_id. Rejects with {@linkcode RequestNackedError} on a NACK.
   */
  request(
    command: string,
    args: Record<string, unknown> = {},
    options: RequestOptions = {},
  ): Promise<RequestResult> {
    if (this.#closed) return Promise.reject(new Error("DevManager is closed"));
    const requestId = options.requestId ?? crypto.randomUUID();
    if (this.#pending.has(requestId)) {
      return Promise.reject(new Error(`request ${requestId} is already in flight`));
    }
    const timeoutMs = options.timeoutMs ?? DEFAULT_REQUEST_TIMEOUT_MS;
    const retransmitSeconds = options.retransmitSeconds ?? this.#retransmitSeconds;
    const doc: Frame = {
      type: "REQUEST",
      request_id: requestId,
      message_id: this.#nextMessageId(),
      payload: { command, arguments: args, ...(options.extra ?? {}) },
    };
    let pending!: PendingRequest;
    const promise = new Promise<RequestResult>((resolve, reject) => {
      pending = { command, doc, ack: null, resolve, reject };
    });
    pending.promise = promise;
    this.#pending.set(requestId, pending);
    pending.deadline = setTimeout(() => {
      const what = pending.ack ? "the ACK came but no REPLY" : "neither ACK nor REPLY came";
      this.#settle(
        pending,
        new Error(`request '${command}' (${requestId}) timed out after ${timeoutMs} ms: ${what}`),
      );
    }, timeoutMs);
    if (retransmitSeconds > 0) {
      pending.retransmit = setInterval(() => this.#transmit(pending), retransmitSeconds * 1000);
    }
    this.#transmit(pending);
    return promise;
  }

  /** Stops reading and answering on the current connection (no pongs); the TCP connection stays open. */
  freeze(): void {
    const conn = this.#current;
    if (!conn) throw new Error("DevManager.freeze: there is no connection to freeze");
    conn.frozen = true;
    // Pausing the socket stops ws from reading, so pings stay in the kernel buffers.
    conn.socket.pause();
  }

  /** Resumes every frozen connection and handles what arrived meanwhile. */
  unfreeze(): void {
    for (const conn of this.#connections) {
      if (!conn.frozen) continue;
      conn.frozen = false;
      const backlog = conn.backlog.splice(0);
      for (const item of backlog) {
        if ("ping" in item) this.#onPing(conn, item.ping);
        else this.#onText(conn, item.text);
      }
      conn.socket.resume();
    }
  }

  /** Abruptly destroys the current TCP connection (no close frame). */
  dropConnection(): void {
    const conn = this.#current;
    if (!conn) throw new Error("DevManager.dropConnection: there is no connection to drop");
    conn.ws.terminate();
  }

  /** Closes every connection and the listener; pending requests and waits reject. */
  async close(): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    const closedError = () => new Error("DevManager closed");
    for (const p of [...this.#pending.values()]) {
      // Nobody may be awaiting a request cut short by close(): never report it as unhandled.
      p.promise?.catch(() => {});
      this.#settle(p, closedError());
    }
    for (const waiters of [this.#frameWaiters, this.#handshakeWaiters] as Set<Waiter>[]) {
      for (const w of waiters) {
        clearTimeout(w.timer);
        w.promise.catch(() => {});
        w.reject(closedError());
      }
      waiters.clear();
    }
    const open = [...this.#connections];
    for (const conn of open) conn.ws.terminate();
    await Promise.all(open.map((conn) => conn.closed));
    await new Promise<void>((resolve) => this.#wss.close(() => resolve()));
  }

  /** Closes the manager (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  #onConnection(ws: WebSocket, req: IncomingMessage): void {
    if (this.#closed) {
      ws.terminate();
      return;
    }
    let onClosed!: () => void;
    const conn: Connection = {
      id: ++this.#connectionCount,
      ws,
      socket: req.socket as Socket,
      handshakeSeen: false,
      accepted: false,
      frozen: false,
      backlog: [],
      closed: new Promise<void>((resolve) => onClosed = resolve),
    };
    this.#connections.add(conn);
    this.#current = conn;
    this.#emit({
      kind: "connect",
      connection: conn.id,
      path: req.url ?? "",
      protocol: ws.protocol,
    });
    ws.on("message", (data: RawData, isBinary: boolean) => {
      const text = isBinary ? "" : rawToString(data);
      if (conn.frozen) conn.backlog.push({ text });
      else this.#onText(conn, text);
    });
    ws.on("ping", (data: Buffer) => {
      if (conn.frozen) conn.backlog.push({ ping: data });
      else this.#onPing(conn, data);
    });
    ws.on("error", () => {
      // A reset by the agent surfaces here and again as "close"; "close" does the bookkeeping.
    });
    ws.on("close", (code: number, reason: Buffer) => {
      this.#connections.delete(conn);
      onClosed();
      this.#emit({ kind: "disconnect", connection: conn.id, code, reason: reason.toString() });
    });
  }

  #onPing(conn: Connection, data: Buffer): void {
    this.#pings++;
    this.#emit({ kind: "ping", connection: conn.id });
    if (conn.ws.readyState === WebSocket.OPEN) conn.ws.pong(data);
  }

  #onText(conn: Connection, text: string): void {
    let doc: unknown;
    try {
      doc = JSON.parse(text);
    } catch {
      doc = undefined;
    }
    const frame = isObject(doc) ? doc : undefined;
    if (!conn.handshakeSeen) {
      conn.handshakeSeen = true;
      this.#onHandshake(conn, frame ?? { invalid_handshake: text });
      return;
    }
    this.#record(conn, "in", frame ?? text);
    if (frame) this.#onAgentFrame(conn, frame);
  }

  #onHandshake(conn: Connection, doc: Frame): void {
    this.handshakes.push(doc);
    this.handshakeTimes.push(performance.now());
    const attempt = this.handshakes.length;
    let answer: HandshakeAnswer;
    try {
      answer = this.#handshake(doc, attempt);
    } catch (err) {
      // A broken handshake callback must not kill the manager; tell the test loudly.
      console.error(`DevManager: the handshake callback threw: ${(err as Error).message}`);
      answer = "ignore";
    }
    this.handshakeReplies.push(answer);
    if (answer !== "ignore" && conn.ws.readyState === WebSocket.OPEN) {
      conn.ws.send(JSON.stringify(answer));
      conn.accepted = answer.return_code === 200;
    }
    this.#handshakesHandled++;
    this.#emit({ kind: "handshake", connection: conn.id, attempt, doc, answer });
    for (const w of [...this.#handshakeWaiters]) {
      if (this.#handshakesHandled >= w.count) {
        clearTimeout(w.timer);
        this.#handshakeWaiters.delete(w);
        w.resolve(this.handshakes[w.count - 1]);
      }
    }
    if (conn.accepted && conn === this.#current) {
      for (const p of [...this.#unsent]) this.#transmit(p);
    }
  }

  #onAgentFrame(conn: Connection, frame: Frame): void {
    const requestId = typeof frame.request_id === "string" ? frame.request_id : undefined;
    if (requestId === undefined) return; // LOG frames and the like are only recorded.
    const pending = this.#pending.get(requestId);
    switch (frame.type) {
      case "ACK":
        if (pending && !pending.ack) {
          pending.ack = frame;
          this.#stopRetransmit(pending);
        }
        break;
      case "REPLY":
        if (pending) {
          this.#stopRetransmit(pending);
          this.#rememberCompleted(requestId);
          if (this.#autoAck) this.#ackReply(conn, frame);
          this.#settle(pending, { requestId, ack: pending.ack, reply: frame });
        } else if (this.#autoAck && (this.#completed.get(requestId) ?? 0) > Date.now()) {
          this.#ackReply(conn, frame);
        }
        break;
      case "NACK":
        if (pending) this.#settle(pending, new RequestNackedError(pending.command, frame));
        break;
      case "ALERT":
        if (this.#autoAckAlerts && !conn.frozen && conn.ws.readyState === WebSocket.OPEN) {
          this.#sendOn(conn, { type: "ALERT_ACK", request_id: requestId });
        }
        break;
    }
  }

  #ackReply(conn: Connection, reply: Frame): void {
    if (conn.frozen || conn.ws.readyState !== WebSocket.OPEN) return;
    this.#sendOn(conn, {
      type: "ACK",
      request_id: reply.request_id,
      message_id: reply.message_id,
      what: "REPLY_ACK",
      ack_sender: ++this.#ackCounter,
    });
  }

  #rememberCompleted(requestId: string): void {
    const now = Date.now();
    this.#completed.delete(requestId);
    this.#completed.set(requestId, now + REPLY_ACK_WINDOW_MS);
    // Entries share one lifetime, so insertion order is expiry order: prune from the front.
    for (const [id, until] of this.#completed) {
      if (until > now) break;
      this.#completed.delete(id);
    }
  }

  /** Sends a pending REQUEST to the current accepted connection, or parks it until one exists. */
  #transmit(p: PendingRequest): void {
    if (p.ack) return;
    const conn = this.#current;
    if (!conn || !conn.accepted || conn.frozen || conn.ws.readyState !== WebSocket.OPEN) {
      this.#unsent.add(p);
      return;
    }
    this.#unsent.delete(p);
    this.#sendOn(conn, p.doc);
  }

  #stopRetransmit(p: PendingRequest): void {
    if (p.retransmit !== undefined) clearInterval(p.retransmit);
    p.retransmit = undefined;
    this.#unsent.delete(p);
  }

  #settle(p: PendingRequest, outcome: RequestResult | Error): void {
    const requestId = p.doc.request_id as string;
    if (this.#pending.get(requestId) !== p) return;
    this.#pending.delete(requestId);
    this.#stopRetransmit(p);
    if (p.deadline !== undefined) clearTimeout(p.deadline);
    if (outcome instanceof Error) p.reject(outcome);
    else p.resolve(outcome);
  }

  #sendOn(conn: Connection, frame: Frame | string): void {
    conn.ws.send(typeof frame === "string" ? frame : JSON.stringify(frame));
    this.#record(conn, "out", frame);
  }

  #record(conn: Connection, dir: "in" | "out", frame: Frame | string): void {
    const record: FrameRecord = { dir, at: Date.now(), frame };
    this.frames.push(record);
    // Trim in chunks so that a long bench does not shift the array on every frame.
    if (this.frames.length > this.#maxFrames + 1000) {
      const drop = this.frames.length - this.#maxFrames;
      this.frames.splice(0, drop);
      this.#droppedFrames += drop;
    }
    this.#emit({ kind: "frame", connection: conn.id, record });
    if (typeof frame === "string" || this.#frameWaiters.size === 0) return;
    for (const w of [...this.#frameWaiters]) {
      if (this.frameCount - 1 < w.since || !matches(record, w.dir, w.predicate)) continue;
      clearTimeout(w.timer);
      this.#frameWaiters.delete(w);
      w.resolve(frame);
    }
  }

  #emit(event: DevManagerEvent): void {
    if (!this.#onEvent) return;
    try {
      this.#onEvent(event);
    } catch (err) {
      console.error(`DevManager: the onEvent callback threw: ${(err as Error).message}`);
    }
  }

  #nextMessageId(): string {
    return `mgr${++this.#messageCounter}`;
  }

  #describeRecent(n: number): string {
    const recent = this.frames.slice(-n);
    if (recent.length === 0) return "(none)";
    return recent.map((r) => `${r.dir} ${summarize(r.frame)}`).join("; ");
  }
}

function matches(
  record: FrameRecord,
  dir: "in" | "out" | "any",
  predicate: (f: Frame) => boolean,
): boolean {
  if (typeof record.frame === "string") return false;
  if (dir !== "any" && record.dir !== dir) return false;
  try {
    return predicate(record.frame);
  } catch {
    return false;
  }
}

function isObject(v: unknown): v is Frame {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function rawToString(data: RawData): string {
  if (Array.isArray(data)) return Buffer.concat(data).toString("utf8");
  if (data instanceof ArrayBuffer) return new TextDecoder().decode(data);
  return data.toString("utf8");
}

/** One-line description of a frame for error messages and the CLI. */
function summarize(frame: Frame | string): string {
  if (typeof frame === "string") return `(not JSON) ${frame.slice(0, 80)}`;
  const parts = [String(frame.type ?? "(no type)")];
  if (frame.request_id !== undefined) parts.push(`request_id=${String(frame.request_id)}`);
  if (frame.message_id !== undefined) parts.push(`message_id=${String(frame.message_id)}`);
  const payload = frame.payload;
  if (isObject(payload)) {
    if (payload.command !== undefined) parts.push(`command=${String(payload.command)}`);
    if (payload.return_code !== undefined) parts.push(`return_code=${String(payload.return_code)}`);
  }
  if (frame.error_message !== undefined) {
    parts.push(`error=${JSON.stringify(percentDecode(String(frame.error_message)))}`);
  }
  return parts.join(" ");
}

// ---------------------------------------------------------------------------
// CLI

const HELP = `Type a command and a JSON object of arguments, one per line, e.g.
  heartbeat {}
  get_agent_data
  run_script {"b64script":"<the script in base64>","checksum":"<SHA-256 of the script, hex>"}
    (the checksum is of the script itself, before base64: sha256sum script.sh)
Commands that change this machine for real (rename, add_user, remove_user,
run_script, mount_volume...: the agent runs here as root) are only sent when
the line starts with '!', e.g. !add_user {...}; without it you get a warning.
Error texts in replies are percent-encoded on the wire; they are shown decoded.
The manager stops when its input ends, once the replies it waits for are in.
Other lines:
  :raw <json>      send a raw frame
  :freeze          stop reading and answering (no pongs)
  :unfreeze        resume
  :drop            abruptly drop the TCP connection
  :help            this text
  :quit            stop the manager`;

/** Commands that change the host the agent runs on (the agent is root on the developer's machine). */
const HOST_CHANGING = new Set([
  "add_user",
  "remove_user",
  "rename",
  "initialize",
  "terminate",
  "run_script",
  "fetch_run",
  "mount_volume",
  "unmount",
  "unmount_volume",
  "clean_image",
  "configure_server",
  "upgrade",
  "install_service",
  "start_services",
  "stop_services",
]);

/** Whether `command` changes the machine (docker_* commands change its containers). */
function changesHost(command: string): boolean {
  return HOST_CHANGING.has(command) ||
    /^docker_(?!(list|inspect|version|info|logs|top))/.test(command);
}

/** A reply payload with its error text decoded for people (the wire keeps the encoding). */
function forPeople(payload: unknown): unknown {
  if (!isObject(payload) || typeof payload.error_message !== "string") return payload;
  return { ...payload, error_message: percentDecode(payload.error_message) };
}

function timeOf(epochMs: number): string {
  return new Date(epochMs).toISOString().slice(11, 23);
}

function printEvent(event: DevManagerEvent): void {
  const now = timeOf(Date.now());
  switch (event.kind) {
    case "connect":
      console.log(
        `${now} == connection #${event.connection} ${event.path} (subprotocol '${event.protocol}')`,
      );
      break;
    case "disconnect":
      console.log(
        `${now} == connection #${event.connection} closed (code ${event.code}${
          event.reason ? `, ${event.reason}` : ""
        })`,
      );
      break;
    case "ping":
      break;
    case "handshake":
      console.log(`${now} <- HANDSHAKE #${event.attempt}\n${JSON.stringify(event.doc, null, 2)}`);
      console.log(
        event.answer === "ignore"
          ? `${now} -> (handshake ignored)`
          : `${now} -> HANDSHAKE REPLY ${JSON.stringify(event.answer)}`,
      );
      break;
    case "frame": {
      const { record } = event;
      const arrow = record.dir === "in" ? "<-" : "->";
      const at = timeOf(record.at);
      const f = record.frame;
      if (typeof f === "string") {
        console.log(`${at} ${arrow} (not JSON) ${f}`);
      } else if (f.type === "LOG") {
        console.log(`${at} ${arrow} LOG ${String(f.level)} ${decodeLog(f.message)}`);
      } else if (f.type === "REPLY" || f.type === "REQUEST" || f.type === "NACK") {
        console.log(`${at} ${arrow} ${summarize(f)}\n${JSON.stringify(f, null, 2)}`);
        const text = f.type === "NACK"
          ? f.error_message
          : isObject(f.payload)
          ? f.payload.error_message
          : undefined;
        if (typeof text === "string" && percentDecode(text) !== text) {
          console.log(`   error_message, decoded: ${percentDecode(text)}`);
        }
      } else {
        console.log(`${at} ${arrow} ${summarize(f)}`);
      }
      break;
    }
  }
}

function decodeLog(message: unknown): string {
  if (typeof message !== "string") return String(message);
  try {
    return decodeURIComponent(message);
  } catch {
    return message;
  }
}

/** Parses a CLI line `command {json}` into a command name and its arguments. */
function parseCommandLine(line: string): { command: string; args: Record<string, unknown> } {
  const m = /^(\S+)\s*(.*)$/s.exec(line.trim());
  if (!m) throw new Error("empty line");
  const rest = m[2].trim();
  let args: unknown = {};
  if (rest !== "") {
    try {
      args = JSON.parse(rest);
    } catch (err) {
      throw new Error(`the arguments of '${m[1]}' are not valid JSON: ${(err as Error).message}`);
    }
  }
  if (!isObject(args)) throw new Error(`the arguments of '${m[1]}' must be a JSON object`);
  return { command: m[1], args };
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      port: { type: "string", default: "8765" },
      hostname: { type: "string", default: "127.0.0.1" },
      "agent-id": { type: "string" },
      "customer-id": { type: "string" },
      "handshake-code": { type: "string" },
      retransmit: { type: "string", default: "5" },
      "no-ack": { type: "boolean", default: false },
      help: { type: "boolean", short: "h", default: false },
    },
  });
  if (values.help) {
    console.log(`Usage: deno run -A scripts/dev_manager.ts [--port 8765] [--hostname 127.0.0.1]
  [--agent-id ID] [--customer-id N] [--handshake-code 200|401|409|503]
  [--retransmit SECONDS (0 = off, default 5)] [--no-ack]\n\n${HELP}`);
    return;
  }
  const port = Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`--port must be an integer 0..65535, got '${values.port}'`);
  }
  const retransmitSeconds = Number(values.retransmit);
  if (!(retransmitSeconds >= 0)) {
    throw new Error(`--retransmit must be >= 0, got '${values.retransmit}'`);
  }
  const code = values["handshake-code"] === undefined ? 200 : Number(values["handshake-code"]);
  const manager = await DevManager.start({
    port,
    hostname: values.hostname,
    agentId: values["agent-id"],
    customerId: values["customer-id"] === undefined ? undefined : Number(values["customer-id"]),
    retransmitSeconds,
    autoAckReplies: !values["no-ack"],
    handshake: code === 200 ? undefined : () => ({ return_code: code }),
    onEvent: printEvent,
  });
  console.log(`dev manager listening on ${manager.url} (agentID ${manager.agentId})`);
  console.log(`point the agent's [connection] agentmanager_url at it.\n${HELP}`);

  let stopping = false;
  const stop = async () => {
    if (stopping) return;
    stopping = true;
    await manager.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);

  const outstanding = new Set<Promise<unknown>>();
  const handleLine = (line: string) => {
    let trimmed = line.trim();
    if (trimmed === "" || trimmed.startsWith("#")) return;
    const confirmed = trimmed.startsWith("!");
    if (confirmed) trimmed = trimmed.slice(1).trim();
    try {
      if (trimmed === ":quit") return void stop();
      if (trimmed === ":help") return console.log(HELP);
      if (trimmed === ":freeze") return manager.freeze();
      if (trimmed === ":unfreeze") return manager.unfreeze();
      if (trimmed === ":drop") return manager.dropConnection();
      if (trimmed.startsWith(":raw")) return manager.send(trimmed.slice(4).trim());
      const { command, args } = parseCommandLine(trimmed);
      if (changesHost(command) && !confirmed) {
        console.log(
          `== warning: ${command} changes THIS machine for real (the agent runs here as root); not sent. To send it anyway: !${trimmed}`,
        );
        return;
      }
      const done = manager.request(command, args, { timeoutMs: 600_000 }).then(
        ({ requestId, reply }) => {
          console.log(`== reply to ${command} (${requestId}), error text decoded:`);
          console.log(JSON.stringify(forPeople(reply.payload), null, 2));
        },
        (err: Error) => {
          const why = err instanceof RequestNackedError
            ? `the agent NACKed it: ${percentDecode(String(err.nack.error_message ?? ""))}`
            : err.message;
          console.log(`== ${command} failed: ${why}`);
        },
      );
      outstanding.add(done);
      void done.finally(() => outstanding.delete(done));
    } catch (err) {
      console.log(`== ${(err as Error).message}`);
    }
  };

  let buffered = "";
  for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
    if (stopping) return;
    buffered += chunk;
    let nl: number;
    while ((nl = buffered.indexOf("\n")) >= 0) {
      handleLine(buffered.slice(0, nl));
      buffered = buffered.slice(nl + 1);
    }
  }
  if (stopping) return;
  if (buffered.trim() !== "") handleLine(buffered);
  if (outstanding.size > 0) {
    console.log(`== input ended; waiting for ${outstanding.size} reply(s), then stopping`);
    while (outstanding.size > 0) await Promise.allSettled([...outstanding]);
  }
  console.log("== input ended; stopping");
  await stop();
}

if (import.meta.main) {
  try {
    await main();
  } catch (err) {
    console.error(`dev_manager: ${(err as Error).message}`);
    Deno.exit(1);
  }
}
