/**
 * A systemd-style notification socket for tests: a unix datagram socket bound
 * to a file, read without blocking through libc (Deno has no stable unix
 * datagram API; see lib/os/sd_notify.ts). Give its path as NOTIFY_SOCKET.
 */
import { socketAddress } from "../../lib/os/sd_notify.ts";

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  bind: { parameters: ["i32", "buffer", "u32"], result: "i32" },
  recv: { parameters: ["i32", "buffer", "usize", "i32"], result: "isize" },
  close: { parameters: ["i32"], result: "i32" },
} as const;

/** One datagram and when the test read it (performance.now()). */
export interface Notification {
  at: number;
  message: string;
}

/** A bound notification socket that collects what arrives. */
export class NotifySocket {
  readonly path: string;
  /** Everything read so far, oldest first. */
  readonly received: Notification[] = [];
  #lib = Deno.dlopen("libc.so.6", SYMBOLS);
  #fd: number;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #dir: string;

  constructor() {
    this.#dir = Deno.makeTempDirSync({ prefix: "dcm-notify-" });
    this.path = `${this.#dir}/notify`;
    const s = this.#lib.symbols;
    this.#fd = s.socket(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    const addr = socketAddress(this.path);
    if (this.#fd < 0 || s.bind(this.#fd, addr, addr.length) !== 0) {
      throw new Error(`cannot bind a unix datagram socket at ${this.path}`);
    }
  }

  /** Reads every queued datagram now, synchronously (without yielding to the event loop). */
  drain(): Notification[] {
    const out: Notification[] = [];
    const buf = new Uint8Array(4096);
    while (true) {
      const n = Number(this.#lib.symbols.recv(this.#fd, buf, BigInt(buf.length), 0));
      if (n < 0) break; // EAGAIN: nothing more queued
      out.push({ at: performance.now(), message: new TextDecoder().decode(buf.subarray(0, n)) });
    }
    this.received.push(...out);
    return out;
  }

  /** Polls the socket every 20 ms into {@linkcode received} until closed. */
  startPolling(): void {
    this.#timer ??= setInterval(() => this.drain(), 20);
  }

  /** Messages received so far that contain `text`. */
  matching(text: string): Notification[] {
    return this.received.filter((n) => n.message.split("\n").some((l) => l.startsWith(text)));
  }

  /** Stops polling, closes the socket and removes its directory. */
  close(): void {
    clearInterval(this.#timer);
    this.#lib.symbols.close(this.#fd);
    this.#lib.close();
    Deno.removeSync(this.#dir, { recursive: true });
  }
}
