import { availableParallelism } from "node:os";
import type { Writable } from "node:stream";
import { splitLines, type RemoteProcess } from "../remote-shell";
import { zstdCompress } from "../zstd";
import { SEGMENT_BYTES, SPOOL_SEGMENTS, shouldCompressSegment, type CompressMode, type CompressionEvidence } from "./copy-policy";
import { waitForDrain, type DrainWait } from "./drain";
import { ServeError, type AddToStoreStream } from "./session";

interface Segment {
  readonly n: number;
  readonly raw: Buffer;
}

/** What the last few segments showed: the compression ratio, the link's rate and zstd's. */
class Evidence implements CompressionEvidence {
  ratio?: number;
  zstdBytesPerSecond?: number;
  private readonly arrivals: { at: number; bytes: number }[] = [];
  private perProcess?: number;

  constructor(private readonly parallel: number) {}

  compressed(rawBytes: number, compressedBytes: number, ms: number): void {
    this.ratio = mix(this.ratio, rawBytes / Math.max(compressedBytes, 1));
    this.perProcess = mix(this.perProcess, (rawBytes * 1000) / Math.max(ms, 0.1));
    this.zstdBytesPerSecond = this.perProcess * this.parallel;
  }

  /** A segment of `bytes` wire bytes arrived whole. */
  arrived(bytes: number): void {
    const now = performance.now();
    this.arrivals.push({ at: now, bytes });
    while (this.arrivals.length > 2 && now - this.arrivals[0]!.at > LINK_WINDOW_MS) this.arrivals.shift();
  }

  get linkBytesPerSecond(): number | undefined {
    if (this.arrivals.length < 3) return undefined;
    const first = this.arrivals[0]!;
    const last = this.arrivals.at(-1)!;
    const bytes = this.arrivals.slice(1).reduce((sum, a) => sum + a.bytes, 0);
    return (bytes * 1000) / Math.max(last.at - first.at, 1);
  }
}

const mix = (old: number | undefined, value: number) => (old === undefined ? value : old * 0.7 + value * 0.3);
/** The link's rate is what arrived over about this long. */
const LINK_WINDOW_MS = 2000;

/** While sending segments as they are, every this many is compressed anyway to keep the ratio known. */
const SAMPLE_EVERY = 8;

export interface SpoolStreamStats {
  /** Bytes written into the data channels and the importer's control stream (SSH channel data). */
  wireBytes: number;
  segments: number;
  compressedSegments: number;
}

/**
 * The command stream of one import, cut into segments that M data channels upload into the target's spool in
 * parallel; the importer is told each segment's name in stream order once it has arrived whole, and reports when it
 * has read it, which keeps at most SPOOL_SEGMENTS on the target's disk.
 */
export class SpoolStream implements AddToStoreStream {
  failure?: Error;
  onActivity?: () => void;
  readonly stats: SpoolStreamStats = { wireBytes: 0, segments: 0, compressedSegments: 0 };
  private pending: Buffer[] = [];
  private pendingBytes = 0;
  private nextSegment = 0;
  private consumed = 0;
  private readonly queue: Segment[] = [];
  private queueClosed = false;
  private readonly wakeWorkers: (() => void)[] = [];
  private readonly wakeProducer: (() => void)[] = [];
  private readonly arrived = new Map<number, "z" | "r">();
  private announced = 0;
  private readonly workers: Promise<void>[];
  private readonly evidence: Evidence;
  private stopped?: Error;
  private importerFailedFirst = false;

  constructor(
    /** The importer's input: after its preamble, the segment names in stream order. */
    private readonly importer: { readonly stdin: Writable },
    private readonly channels: readonly DataChannel[],
    private readonly compression: { readonly allowed: boolean; readonly mode: CompressMode },
  ) {
    this.evidence = new Evidence(Math.min(channels.length, availableParallelism()));
    for (const channel of channels) {
      channel.onArrived = (n, kind, bytes) => {
        this.onActivity?.();
        this.arrivedWhole(n, kind, bytes);
      };
      channel.onDrained = () => this.onActivity?.();
    }
    this.workers = channels.map((channel) => this.work(channel).catch((err: Error) => this.failWith(err)));
  }

  get bytesWritten(): number {
    return this.stats.wireBytes;
  }

  /** The importer read segment n (its stderr notice). */
  consumedSegment(): void {
    this.onActivity?.();
    this.consumed++;
    this.wake(this.wakeProducer);
  }

  async write(chunk: Buffer): Promise<void> {
    this.pending.push(chunk);
    this.pendingBytes += chunk.length;
    while (this.pendingBytes >= SEGMENT_BYTES) {
      const all = Buffer.concat(this.pending, this.pendingBytes);
      this.pending = [all.subarray(SEGMENT_BYTES)];
      this.pendingBytes = all.length - SEGMENT_BYTES;
      await this.dispatch(all.subarray(0, SEGMENT_BYTES));
    }
  }

  async finish(): Promise<void> {
    if (this.pendingBytes > 0) await this.dispatch(Buffer.concat(this.pending, this.pendingBytes));
    this.pending = [];
    this.pendingBytes = 0;
    this.queueClosed = true;
    this.wake(this.wakeWorkers);
    await Promise.all(this.workers);
    while (this.announced < this.nextSegment) {
      this.check();
      await new Promise<void>((resolve) => this.wakeProducer.push(resolve));
    }
    this.check();
    this.control("end\n");
    for (const channel of this.channels) channel.finish();
  }

  abort(err: Error): void {
    if (this.stopped) return;
    this.stopped = err;
    for (const channel of this.channels) channel.close();
    // the importer reads to the end of its input and stops; its nix-store then fails on the half-sent NAR, if any
    this.importer.stdin.end();
    this.wake(this.wakeProducer);
    this.wake(this.wakeWorkers);
  }

  /**
   * A part of the stream failed (a data channel, zstd): stop everything and report that, unless the importer's Nix
   * had already failed: then the data channels' failures are its consequence (its exit removes the spool).
   */
  failWith(err: Error): void {
    // once stopped (the server failed first), a channel's failure is the consequence of that stop, not its cause
    if (!this.importerFailedFirst && this.stopped === undefined) this.failure ??= err;
    this.abort(err);
  }

  /** The importer's Nix printed an error: whatever fails after this is a consequence, not the cause. */
  importerFailed(): void {
    if (this.failure === undefined) this.importerFailedFirst = true;
  }

  private check(): void {
    if (this.stopped) throw this.failure ?? this.stopped;
  }

  private async dispatch(raw: Buffer): Promise<void> {
    // bounded twice: on the target's disk (segments not yet read by the importer) and in memory (queued segments)
    while (this.nextSegment - this.consumed >= SPOOL_SEGMENTS || this.queue.length >= this.channels.length) {
      this.check();
      await new Promise<void>((resolve) => this.wakeProducer.push(resolve));
    }
    this.check();
    this.queue.push({ n: this.nextSegment++, raw });
    this.stats.segments++;
    this.wake(this.wakeWorkers, 1);
  }

  private async work(channel: DataChannel): Promise<void> {
    for (;;) {
      while (this.queue.length === 0 && !this.queueClosed && !this.stopped) {
        await new Promise<void>((resolve) => this.wakeWorkers.push(resolve));
      }
      this.check();
      const segment = this.queue.shift();
      if (segment === undefined) return;
      this.wake(this.wakeProducer);
      const { body, kind } = await this.encode(segment);
      this.check();
      const header = Buffer.from(`${segment.n} ${body.length}\n`);
      this.stats.wireBytes += header.length + body.length;
      await channel.send(segment.n, kind, header, body);
      if (kind === "z") this.stats.compressedSegments++;
    }
  }

  private async encode(segment: Segment): Promise<{ body: Buffer; kind: "z" | "r" }> {
    const compress = shouldCompressSegment(this.compression.allowed, this.compression.mode, this.evidence);
    const sample = !compress && this.compression.allowed && this.compression.mode === "auto" && segment.n % SAMPLE_EVERY === 0;
    if (!compress && !sample) return { body: segment.raw, kind: "r" };
    const started = performance.now();
    const compressed = await zstdCompress(segment.raw);
    this.evidence.compressed(segment.raw.length, compressed.length, performance.now() - started);
    // a sample that happens to shrink is sent shrunk; a segment zstd cannot shrink is sent as it is
    return compressed.length < segment.raw.length ? { body: compressed, kind: "z" } : { body: segment.raw, kind: "r" };
  }

  /** Tells the importer about every segment that has arrived whole, in stream order. */
  private arrivedWhole(n: number, kind: "z" | "r", bytes: number): void {
    this.evidence.arrived(bytes);
    this.arrived.set(n, kind);
    while (this.arrived.has(this.announced)) {
      this.control(`${this.announced} ${this.arrived.get(this.announced)}\n`);
      this.arrived.delete(this.announced);
      this.announced++;
    }
    this.wake(this.wakeProducer);
  }

  private control(line: string): void {
    if (this.stopped) return;
    this.stats.wireBytes += line.length;
    this.importer.stdin.write(line);
  }

  private wake(waiters: (() => void)[], count = waiters.length): void {
    for (const resolve of waiters.splice(0, count)) resolve();
  }
}

/** One data channel: uploads the segments it is given into the spool and reports each one that arrived whole. */
export class DataChannel {
  onArrived: (n: number, kind: "z" | "r", bytes: number) => void = () => undefined;
  /** The channel took more after waiting for room: the target received what was before. */
  onDrained: () => void = () => undefined;
  private readonly inFlight = new Map<number, { kind: "z" | "r"; bytes: number }>();
  private finished = false;
  private closed = false;
  private stderr = "";
  private readonly drainWait: DrainWait = {};
  private ended?: Error;

  constructor(private readonly process: RemoteProcess, readonly command: string, onFailure: (err: Error) => void) {
    process.stderr.on("data", (c: Buffer) => (this.stderr = (this.stderr + c.toString("utf8")).slice(-16384)));
    splitLines(process.stdout, (line) => {
      const n = Number(line);
      const segment = this.inFlight.get(n);
      if (segment === undefined) return;
      this.inFlight.delete(n);
      this.onArrived(n, segment.kind, segment.bytes);
    });
    process.stdin.on("error", () => undefined); // the exit status says more
    void process.exited.then((code) => {
      if (this.closed || (this.finished && this.inFlight.size === 0 && code === 0)) return;
      const reason = lastLine(this.stderr) ?? (code === null ? "the connection to the target was lost" : `it exited with code ${code}`);
      this.ended = new ServeError(`uploading to the target's spool failed: ${reason}`, command, this.stderr, code);
      this.drainWait.abort?.(this.ended);
      onFailure(this.ended);
    });
  }

  /** Sends segment n; resolves once the channel has room for more. */
  async send(n: number, kind: "z" | "r", header: Buffer, body: Buffer): Promise<void> {
    if (this.ended) throw this.ended;
    this.inFlight.set(n, { kind, bytes: header.length + body.length });
    this.process.stdin.write(header);
    if (this.process.stdin.write(body)) return;
    await waitForDrain(this.process.stdin, this.drainWait);
    this.onDrained();
  }

  /** No more segments: the remote loop ends at the end of its input. */
  finish(): void {
    this.finished = true;
    this.process.stdin.end();
  }

  /** Stops the upload (the copy failed elsewhere). */
  close(): void {
    this.closed = true;
    this.ended ??= new Error("the data channel was closed");
    this.drainWait.abort?.(this.ended);
    this.process.close();
  }
}

function lastLine(text: string): string | undefined {
  return text.split("\n").map((l) => l.trim()).filter((l) => l !== "").at(-1);
}
