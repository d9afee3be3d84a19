import net from "node:net";

/**
 * A TCP proxy on loopback that holds every chunk for delayMs in each direction, so a round trip costs at least
 * 2 × delayMs, and optionally sends at most bytesPerSecond each way: a far, slow link for benchmarks, since this kernel
 * has no netem. Order is kept; a direction stops reading while more than MAX_IN_FLIGHT bytes wait or the receiver is
 * not draining.
 */
export interface LatencyProxy {
  readonly host: "127.0.0.1";
  readonly port: number;
  /** Bytes that went through, client → target ("up", what the deploying machine sent) and back: counted on the wire. */
  readonly bytes: { up: number; down: number };
  close(): Promise<void>;
}

/**
 * One link several proxies share (a laptop's uplink): chunks of all of them queue for it in turn. Make one with
 * `sharedLink(bytesPerSecond)` and give it to each proxy.
 */
export interface SharedLink {
  readonly bytesPerSecond: number;
  /** When the link has sent everything queued for it (performance.now() time). */
  freeAt: number;
}

export function sharedLink(bytesPerSecond: number): SharedLink {
  if (!(bytesPerSecond > 0)) throw new Error(`sharedLink: bytesPerSecond must be > 0, got ${bytesPerSecond}`);
  return { bytesPerSecond, freeAt: 0 };
}

export interface LatencyProxyOptions {
  target: { host: string; port: number };
  /** Added to every chunk, each way. */
  delayMs: number;
  /** The link's rate in each direction: a chunk arrives delayMs after the link has finished sending it. @default unlimited */
  bytesPerSecond?: number;
  /** The client → target direction goes through this link, shared with other proxies (instead of bytesPerSecond). */
  uplink?: SharedLink;
}

const MAX_IN_FLIGHT = 4 * 1024 * 1024;

export async function startLatencyProxy(options: LatencyProxyOptions): Promise<LatencyProxy> {
  const { target, delayMs, bytesPerSecond, uplink } = options;
  const bytes = { up: 0, down: 0 };
  if (!Number.isFinite(delayMs) || delayMs < 0) throw new Error(`startLatencyProxy: delayMs must be >= 0, got ${delayMs}`);
  if (bytesPerSecond !== undefined && !(bytesPerSecond > 0)) throw new Error(`startLatencyProxy: bytesPerSecond must be > 0, got ${bytesPerSecond}`);
  const sockets = new Set<net.Socket>();
  // half-open, so a client's FIN does not cut off the reply that is still being delayed
  const server = net.createServer({ allowHalfOpen: true }, (client) => {
    const upstream = net.connect({ host: target.host, port: target.port, allowHalfOpen: true });
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on("close", () => sockets.delete(s));
      s.on("error", () => {
        client.destroy();
        upstream.destroy();
      });
    }
    const ownLink = () => (bytesPerSecond === undefined ? undefined : { bytesPerSecond, freeAt: 0 });
    delayed(client, upstream, delayMs, uplink ?? ownLink(), (n) => (bytes.up += n));
    delayed(upstream, client, delayMs, ownLink(), (n) => (bytes.down += n));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const port = (server.address() as net.AddressInfo).port;
  let closed: Promise<void> | undefined;
  return {
    host: "127.0.0.1",
    port,
    bytes,
    close() {
      closed ??= new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      return closed;
    },
  };
}

/**
 * Forwards from → to, each chunk (and the end of the stream) delivered delayMs after it arrived, or after the link
 * finished sending it when the link has a rate.
 */
function delayed(from: net.Socket, to: net.Socket, delayMs: number, link: SharedLink | undefined, count: (bytes: number) => void): void {
  const queue: { due: number; chunk: Buffer | null }[] = [];
  let inFlight = 0;
  let timer: NodeJS.Timeout | undefined;

  const flush = () => {
    timer = undefined;
    const now = performance.now();
    while (queue.length > 0 && queue[0]!.due <= now) {
      const { chunk } = queue.shift()!;
      if (chunk === null) {
        to.end();
        return;
      }
      inFlight -= chunk.length;
      if (!to.destroyed && !to.write(chunk)) from.pause();
    }
    if (inFlight < MAX_IN_FLIGHT && to.writableNeedDrain === false) from.resume();
    if (queue.length > 0) timer = setTimeout(flush, queue[0]!.due - now);
  };
  const enqueue = (chunk: Buffer | null) => {
    let sent = performance.now();
    if (link !== undefined) {
      link.freeAt = Math.max(link.freeAt, sent) + ((chunk?.length ?? 0) * 1000) / link.bytesPerSecond;
      sent = link.freeAt;
    }
    if (chunk) count(chunk.length);
    queue.push({ due: sent + delayMs, chunk });
    if (chunk) {
      inFlight += chunk.length;
      if (inFlight >= MAX_IN_FLIGHT) from.pause();
    }
    timer ??= setTimeout(flush, Math.max(0, queue[0]!.due - performance.now()));
  };

  from.on("data", (chunk: Buffer) => enqueue(chunk));
  from.on("end", () => enqueue(null));
  to.on("drain", () => {
    if (inFlight < MAX_IN_FLIGHT) from.resume();
  });
  from.on("close", () => {
    if (timer && from.destroyed && !from.readableEnded) {
      clearTimeout(timer);
      to.destroy();
    }
  });
}
