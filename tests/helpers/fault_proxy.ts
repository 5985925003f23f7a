/**
 * A fault-injecting TCP proxy on loopback for the tests: it sits between the
 * agent and the manager, forwards both directions, and on command
 * - freezes one or both directions of the connections open now: it stops
 *   reading that side, so the bytes wait in the kernel and the TCP connection
 *   stays open (a hung peer); later connections are forwarded;
 * - partitions: every byte in both directions is read and thrown away, new
 *   connections are accepted and swallowed, nothing is closed (a black hole);
 * - cuts: resets every connection and closes new ones at once (manager down);
 * - heals: forwards again. Connections that lost bytes in a partition are
 *   closed on heal, since their streams have a hole in them.
 */

/** Which way bytes flow: towards the manager (upstream) or towards the agent (downstream). */
export type Direction = "up" | "down";

type Mode = "forward" | "partition" | "cut";

interface Link {
  client: Deno.TcpConn;
  server: Deno.TcpConn | null;
  /** Bytes were thrown away on this link: it cannot carry a stream any more. */
  holed: boolean;
  closed: boolean;
  frozen: { up: boolean; down: boolean };
}

const CHUNK = 64 * 1024;

/** A TCP proxy from a loopback port to `target`, with fault injection. */
export class FaultProxy {
  /** The port the proxy listens on (127.0.0.1). */
  readonly port: number;
  #listener: Deno.TcpListener;
  #target: { hostname: string; port: number };
  #mode: Mode = "forward";
  #thaw = Promise.withResolvers<void>();
  #links = new Set<Link>();
  #accepting: Promise<void>;
  /** Connections accepted so far. */
  accepted = 0;

  private constructor(listener: Deno.TcpListener, target: { hostname: string; port: number }) {
    this.#listener = listener;
    this.port = listener.addr.port;
    this.#target = target;
    this.#accepting = this.#acceptLoop();
  }

  /** Starts a proxy on a free loopback port that forwards to 127.0.0.1:`targetPort`. */
  static start(targetPort: number): FaultProxy {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    return new FaultProxy(listener, { hostname: "127.0.0.1", port: targetPort });
  }

  /** `url` with its host and port replaced by the proxy's. */
  rewrite(url: string): string {
    const u = new URL(url);
    u.hostname = "127.0.0.1";
    u.port = String(this.port);
    return u.toString();
  }

  /** Connections open now. */
  get open(): number {
    return this.#links.size;
  }

  /** Stops reading the open connections in the given directions (default both); they stay open. */
  freeze(directions: Direction[] = ["up", "down"]): void {
    for (const link of this.#links) for (const d of directions) link.frozen[d] = true;
  }

  /** Throws away every byte both ways and swallows new connections; nothing is closed. */
  partition(): void {
    this.#mode = "partition";
    this.#release();
  }

  /** Resets every connection, and closes new ones at once, until heal(). */
  cut(): void {
    this.#mode = "cut";
    for (const link of this.#links) this.#close(link);
    this.#release();
  }

  /** Forwards normally again; links that lost bytes in a partition are closed. */
  heal(): void {
    this.#mode = "forward";
    for (const link of this.#links) {
      link.frozen = { up: false, down: false };
      if (link.holed) this.#close(link);
    }
    this.#release();
  }

  /** Closes the listener and every connection. */
  async close(): Promise<void> {
    this.#mode = "cut";
    try {
      this.#listener.close();
    } catch { /* already closed */ }
    for (const link of this.#links) this.#close(link);
    this.#release();
    await this.#accepting;
  }

  /** Wakes the pumps waiting for a frozen direction so they look at the new state. */
  #release(): void {
    this.#thaw.resolve();
    this.#thaw = Promise.withResolvers<void>();
  }

  async #acceptLoop(): Promise<void> {
    for (;;) {
      let client: Deno.TcpConn;
      try {
        client = await this.#listener.accept();
      } catch {
        return; // the listener was closed
      }
      this.accepted++;
      if (this.#mode === "cut") {
        client.close();
        continue;
      }
      const link: Link = {
        client,
        server: null,
        holed: false,
        closed: false,
        frozen: { up: false, down: false },
      };
      this.#links.add(link);
      void this.#serve(link);
    }
  }

  async #serve(link: Link): Promise<void> {
    if (this.#mode === "partition") {
      // Swallowed: the agent's bytes vanish until heal() closes it.
      link.holed = true;
      await this.#pump(link, link.client, null, "up");
      return;
    }
    try {
      link.server = await Deno.connect(this.#target);
    } catch {
      this.#close(link);
      return;
    }
    if (link.closed) {
      link.server.close();
      return;
    }
    await Promise.all([
      this.#pump(link, link.client, link.server, "up"),
      this.#pump(link, link.server, link.client, "down"),
    ]);
  }

  /** Copies `from` to `to` honouring freeze and partition; ends the link at EOF. */
  async #pump(
    link: Link,
    from: Deno.TcpConn,
    to: Deno.TcpConn | null,
    dir: Direction,
  ): Promise<void> {
    const buf = new Uint8Array(CHUNK);
    while (!link.closed) {
      // A frozen direction is not read, so the sender's kernel buffers fill up as with a hung peer.
      while (link.frozen[dir] && this.#mode === "forward" && !link.closed) await this.#thaw.promise;
      let n: number | null;
      try {
        n = await from.read(buf);
      } catch {
        n = null;
      }
      if (n === null) {
        // In a partition the other side must not learn of the close.
        if (this.#mode !== "partition" && !link.holed) this.#close(link);
        return;
      }
      // A chunk read just before a freeze is held until the thaw.
      while (link.frozen[dir] && this.#mode === "forward" && !link.closed) await this.#thaw.promise;
      if (this.#mode === "partition" || link.holed || !to) {
        link.holed = true;
        continue;
      }
      try {
        await writeAll(to, buf.subarray(0, n));
      } catch {
        this.#close(link);
        return;
      }
    }
  }

  #close(link: Link): void {
    if (link.closed) return;
    link.closed = true;
    this.#links.delete(link);
    for (const c of [link.client, link.server]) {
      try {
        c?.close();
      } catch { /* already closed */ }
    }
  }
}

async function writeAll(conn: Deno.TcpConn, data: Uint8Array): Promise<void> {
  let off = 0;
  while (off < data.length) off += await conn.write(data.subarray(off));
}
