/**
 * sd_notify: messages to systemd (`READY=1`, `WATCHDOG=1`, `STATUS=...`,
 * `STOPPING=1`) as datagrams on the unix socket named by `$NOTIFY_SOCKET`.
 * Imported by path, only when `$NOTIFY_SOCKET` is set.
 *
 * How it sends, and why (checked with Deno 2.9.6):
 * - `node:dgram` only has udp4/udp6; `node:net` only unix *stream* sockets,
 *   which systemd's datagram socket refuses.
 * - `Deno.listenDatagram({transport: "unixpacket"})` does send unix datagrams,
 *   but only behind `--unstable-net`, from a socket bound to a file path, and
 *   it cannot reach an abstract socket (`@name`).
 * - `systemd-notify` is another process: with the default `NotifyAccess=main`
 *   systemd ignores it, and forking one per watchdog ping is wasteful.
 * - So: libc `socket(AF_UNIX, SOCK_DGRAM)` + `sendto()` through Deno's FFI
 *   (stable, covered by `-A`, which the agent runs with). libc is already
 *   mapped into the process, so opening it costs nearly nothing. The send is
 *   non-blocking: a stuck systemd never stalls the agent.
 */

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** sizeof(sockaddr_un.sun_path) on Linux. */
const SUN_PATH_MAX = 108;

const SYMBOLS = {
  socket: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sendto: {
    parameters: ["i32", "buffer", "usize", "i32", "buffer", "u32"],
    result: "isize",
  },
  close: { parameters: ["i32"], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
} as const;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];

/** A connection to systemd's notification socket. */
export interface Notifier {
  /** The socket, as `$NOTIFY_SOCKET` gave it. */
  readonly socket: string;
  /** Sends one message (lines `KEY=value`); throws with the OS error when it cannot. */
  send(message: string): void;
  /** Closes the socket. */
  close(): void;
}

/** Opens the socket named by `$NOTIFY_SOCKET`; null when it is not set. Throws when libc or the socket cannot be opened. */
export function openNotifier(
  env: (name: string) => string | undefined = (n) => Deno.env.get(n),
): Notifier | null {
  const socket = env("NOTIFY_SOCKET");
  if (!socket) return null;
  const address = socketAddress(socket);
  const lib = Deno.dlopen("libc.so.6", SYMBOLS);
  const libc = lib.symbols;
  const fd = libc.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const e = errno(libc);
    lib.close();
    throw new Error(`cannot open a unix datagram socket for systemd notifications (errno ${e})`);
  }
  const encoder = new TextEncoder();
  let open = true;
  return {
    socket,
    send(message: string): void {
      if (!open) return;
      const bytes = encoder.encode(message);
      const n = libc.sendto(
        fd,
        bytes,
        BigInt(bytes.length),
        MSG_DONTWAIT | MSG_NOSIGNAL,
        address,
        address.length,
      );
      if (Number(n) < 0) {
        throw new Error(`cannot notify systemd through ${socket} (errno ${errno(libc)})`);
      }
    },
    close(): void {
      if (!open) return;
      open = false;
      libc.close(fd);
      lib.close();
    },
  };
}

/** The `sockaddr_un` for a path, or for an abstract name written `@name`. */
export function socketAddress(socket: string): Uint8Array<ArrayBuffer> {
  const abstract = socket.startsWith("@");
  const name = new TextEncoder().encode(abstract ? socket.slice(1) : socket);
  // A path is NUL-terminated; an abstract name starts with NUL and is not.
  const pathLength = name.length + 1;
  if (pathLength > SUN_PATH_MAX) {
    throw new Error(`NOTIFY_SOCKET '${socket}' is longer than a unix socket address allows`);
  }
  const addr = new Uint8Array(2 + pathLength);
  new Uint16Array(addr.buffer, 0, 1)[0] = AF_UNIX; // sa_family, native byte order
  addr.set(name, abstract ? 3 : 2);
  return addr;
}

function errno(libc: Libc): number {
  const p = libc.__errno_location();
  return p === null ? -1 : new Deno.UnsafePointerView(p).getInt32();
}
