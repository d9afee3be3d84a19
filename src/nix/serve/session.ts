import { nixError } from "../nix-errors";
import type { Readable, Writable } from "node:stream";
import type { NarSink, PathInfo } from "../store-source";
import { waitForDrain, type DrainWait } from "./drain";
import {
  MAX_LIST_ENTRIES,
  MAX_PATH_BYTES,
  ProtocolMismatchError,
  ServeReader,
  UnexpectedEndError,
  readHello,
  readPathInfos,
  writeAddToStoreNarHeader,
  writeHello,
  writeDumpStorePath,
  writeQueryClosure,
  writeQueryPathInfos,
  writeQueryValidPaths,
} from "./codec";

/** A running `nix-store --serve` on the other end of some byte stream (an SSH exec channel, a child process). */
export interface ServeChannel {
  /** The server's stdin. */
  readonly input: Writable;
  /** The server's stdout: the protocol. */
  readonly output: Readable;
  /** The server's stderr: Nix's error messages. */
  readonly errors: Readable;
  /** Resolves with the exit code (null when killed) once the server process has ended. */
  readonly exited: Promise<number | null>;
  /** The command as a user could run it, for messages. */
  readonly command: string;
  /** Ends the server: closes its stdin (it exits at EOF) and releases the transport. */
  close(): void;
}

/** The server failed; carries what it printed on stderr. */
export class ServeError extends Error {
  constructor(message: string, readonly command: string, readonly stderr: string, readonly exitCode?: number | null) {
    super(message);
    this.name = "ServeError";
  }
}

export interface SessionStats {
  queryValidPaths: number;
  queryPathInfos: number;
  queryClosure: number;
  addToStoreNar: number;
  narBytesSent: number;
}

/** One item for addToStoreNars: the path's info and a producer of exactly `info.narSize` NAR bytes. */
export interface NarUpload {
  readonly info: PathInfo;
  readonly nar: (sink: NarSink) => Promise<void>;
}

/** Where addToStoreNars writes the command stream when it does not go to the server's stdin. */
export interface AddToStoreStream {
  /** Resolves when there is room for more. */
  write(chunk: Buffer): Promise<void>;
  /** Everything has been written: deliver the rest, then end the server's input. */
  finish(): Promise<void>;
  /** Stop: the server failed (or the stream itself did); release everything. */
  abort(err: Error): void;
  /** Set when the stream failed on its own (not because the server did). */
  readonly failure?: Error;
  /** Bytes the stream wrote on its own ways to the server (SSH channel data). */
  readonly bytesWritten: number;
  /**
   * Called whenever bytes moved on the stream's own ways (the server took data: a channel drained, a segment arrived
   * or was read): the session's reply deadline counts from there, not from its own last write, which on a saturated
   * link may wait behind the other channels far longer than any reply.
   */
  onActivity?: () => void;
}

export interface AddToStoreOptions {
  readonly onAdded?: (info: PathInfo) => void;
  readonly stream?: AddToStoreStream;
}

export interface ValidPathsQuery {
  readonly paths: readonly string[];
  /** Let the server substitute missing paths from its caches first. */
  readonly substitute?: boolean;
  /** Keep the valid paths from garbage collection (temporary roots) until the server process ends. */
  readonly lock?: boolean;
}

const STDERR_LIMIT = 64 * 1024;

export interface SessionOptions {
  /**
   * How long a reply may keep the session waiting with no byte moving either way before the session fails.
   * @default - no limit (a local nix-store)
   */
  readonly replyTimeoutMs?: number;
}

/**
 * A client of one `nix-store --serve` process. Commands are answered in order, so several may be in flight at once;
 * addToStoreNars uses that to send NARs back to back instead of waiting a round trip per path.
 */
/** A NAR read from the server is handed on in pieces of at most this size. */
const DUMP_CHUNK_BYTES = 256 * 1024;

export class ServeSession {
  readonly stats: SessionStats = {
    queryValidPaths: 0, queryPathInfos: 0, queryClosure: 0, addToStoreNar: 0, narBytesSent: 0,
  };
  private stderrText = "";
  private written = 0;
  private readonly reader: ServeReader;
  private writeFailure?: Error;
  /** Wakes a writer waiting for 'drain' when the transfer has failed on the read side or the channel closed. */
  private readonly drainWait: DrainWait = {};
  private negotiatedVersion = 0;

  private constructor(private readonly channel: ServeChannel, options: SessionOptions = {}) {
    this.reader = new ServeReader(channel.output, { idleTimeoutMs: options.replyTimeoutMs });
  }

  /** The protocol version both sides speak. */
  get version(): number {
    return this.negotiatedVersion;
  }

  /** Starts the session: sends the greeting and checks the server's. */
  static async open(channel: ServeChannel, options: SessionOptions = {}): Promise<ServeSession> {
    const session = new ServeSession(channel, options);
    session.listen();
    session.send((write) => writeHello(write));
    try {
      session.negotiatedVersion = await readHello(session.reader);
    } catch (err) {
      throw await session.explain(err, "starting the serve protocol");
    }
    return session;
  }

  /**
   * The first bytes a client sends: the greeting and a QueryValidPaths. A command that feeds the server its input in
   * pieces (the spooled copy) must know their length before it starts.
   */
  static preamble(query: ValidPathsQuery): Buffer {
    const bytes: Buffer[] = [];
    writeHello((b) => bytes.push(b));
    writeQueryValidPaths((b) => bytes.push(b), query.paths, { lock: query.lock === true, substitute: query.substitute === true });
    return Buffer.concat(bytes);
  }

  /** Starts a session whose server gets `preamble(query)` first, and returns the answer to that query. */
  static async openWithQuery(channel: ServeChannel, query: ValidPathsQuery, options: SessionOptions = {}): Promise<{ session: ServeSession; valid: Set<string> }> {
    const session = new ServeSession(channel, options);
    session.listen();
    session.stats.queryValidPaths++;
    session.send((write) => write(ServeSession.preamble(query)));
    try {
      session.negotiatedVersion = await readHello(session.reader);
    } catch (err) {
      throw await session.explain(err, "starting the serve protocol");
    }
    const valid = new Set(await session.reply(() => session.reader.readStrings("the valid paths", query.paths.length, MAX_PATH_BYTES), "querying valid paths"));
    return { session, valid };
  }

  /** Bytes this session wrote into the server's input. */
  get bytesWritten(): number {
    return this.written;
  }

  get stderr(): string {
    return this.stderrText;
  }

  async queryValidPaths(paths: readonly string[], options: { substitute?: boolean; lock?: boolean } = {}): Promise<Set<string>> {
    this.stats.queryValidPaths++;
    this.send((write) => writeQueryValidPaths(write, paths, { lock: options.lock === true, substitute: options.substitute === true }));
    return new Set(await this.reply(() => this.reader.readStrings("the valid paths", paths.length, MAX_PATH_BYTES), "querying valid paths"));
  }

  async queryPathInfos(paths: readonly string[]): Promise<PathInfo[]> {
    this.stats.queryPathInfos++;
    this.send((write) => writeQueryPathInfos(write, paths));
    return this.reply(() => readPathInfos(this.reader, paths.length), "querying path infos");
  }

  async queryClosure(paths: readonly string[]): Promise<string[]> {
    this.stats.queryClosure++;
    this.send((write) => writeQueryClosure(write, paths, false));
    return this.reply(() => this.reader.readStrings("the closure", MAX_LIST_ENTRIES, MAX_PATH_BYTES), "querying the closure");
  }

  /**
   * Streams the NAR of `info.path` from the server's store into `sink`: exactly `info.narSize` bytes (the reply has
   * no length of its own; the size comes from the path's info), in pieces the sink may hold up.
   */
  async dumpStorePath(info: PathInfo, sink: (chunk: Buffer) => Promise<void> | void): Promise<void> {
    this.send((write) => writeDumpStorePath(write, info.path));
    let left = info.narSize;
    while (left > 0) {
      const chunk = await this.reply(() => this.reader.readBytes(Math.min(left, DUMP_CHUNK_BYTES), `the NAR of ${info.path}`), `reading ${info.path}`);
      left -= chunk.length;
      await sink(chunk);
    }
  }

  /**
   * Adds paths in the given order (dependencies first), sending each NAR right after the previous one and reading
   * the server's acknowledgements as they come. The command stream goes to the server's stdin, or to `stream` when
   * the bytes travel another way (the spooled copy's data channels).
   */
  async addToStoreNars(uploads: readonly NarUpload[], options: AddToStoreOptions = {}): Promise<void> {
    const stream = options.stream;
    const acknowledgements = (async () => {
      for (const upload of uploads) {
        const ok = await this.reply(() => this.reader.readU64("the acknowledgement"), `adding ${upload.info.path}`);
        if (ok !== 1) throw new ServeError(`unexpected reply ${ok} to adding ${upload.info.path}`, this.channel.command, this.stderr);
        options.onAdded?.(upload.info);
      }
    })();
    // Surface the server's error (read side) rather than the EPIPE the write side sees when the server gives up,
    // and stop a writer that waits for room the server will never make.
    acknowledgements.catch((err: Error) => {
      this.failWrites(err);
      stream?.abort(err);
    });
    if (stream !== undefined) stream.onActivity = () => this.reader.touch();
    const write = stream ? (chunk: Buffer) => { this.reader.touch(); return stream.write(chunk); } : (chunk: Buffer) => this.writeWithBackpressure(chunk);
    try {
      for (const upload of uploads) {
        this.stats.addToStoreNar++;
        const header: Buffer[] = [];
        writeAddToStoreNarHeader((bytes) => header.push(bytes), upload.info);
        await write(Buffer.concat(header));
        let sent = 0;
        await upload.nar(async (chunk) => {
          sent += chunk.length;
          this.stats.narBytesSent += chunk.length;
          await write(chunk);
        });
        if (sent !== upload.info.narSize) {
          throw new ServeError(`the NAR of ${upload.info.path} was ${sent} bytes, its info says ${upload.info.narSize}`, this.channel.command, this.stderr);
        }
      }
      await stream?.finish();
    } catch (err) {
      // the server's explanation wins, unless the failure was on a path of our own (a data channel) first
      if (stream !== undefined && stream.failure !== undefined) {
        stream.abort(stream.failure);
        await acknowledgements.catch(() => undefined);
        throw stream.failure;
      }
      stream?.abort(err as Error);
      await acknowledgements;
      throw err;
    }
    await acknowledgements;
  }

  /** Closes stdin so the server exits, and waits for it. */
  async close(): Promise<void> {
    this.channel.close();
    await Promise.race([this.channel.exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  }

  private listen(): void {
    this.channel.errors.on("data", (chunk: Buffer) => {
      this.stderrText = (this.stderrText + chunk.toString("utf8")).slice(-STDERR_LIMIT);
    });
    this.channel.input.on("error", (err: Error) => this.failWrites(err));
    this.channel.input.on("close", () => this.failWrites(new Error("the server closed its input")));
  }

  private send(encode: (write: (bytes: Buffer) => void) => void): void {
    if (this.writeFailure) throw this.writeFailure;
    encode((bytes) => {
      this.written += bytes.length;
      this.reader.touch();
      this.channel.input.write(bytes);
    });
  }

  private async writeWithBackpressure(chunk: Buffer): Promise<void> {
    if (this.writeFailure) throw this.writeFailure;
    this.written += chunk.length;
    this.reader.touch();
    if (this.channel.input.write(chunk)) return;
    await waitForDrain(this.channel.input, this.drainWait);
  }

  private failWrites(err: Error): void {
    this.writeFailure ??= err;
    this.drainWait.abort?.(this.writeFailure);
  }

  private async reply<T>(read: () => Promise<T>, doing: string): Promise<T> {
    try {
      return await read();
    } catch (err) {
      throw await this.explain(err, doing);
    }
  }

  /** Turns a broken stream into an error that says what the server printed. */
  private async explain(err: unknown, doing: string): Promise<Error> {
    if (err instanceof ServeError) return err;
    if (err instanceof ProtocolMismatchError) {
      const head = err.received.subarray(0, 256);
      const text = head.toString("latin1");
      const printable = text.replace(/[^\x20-\x7e\n\t\r]/g, "");
      // a shell rc's greeting is text; anything else is some other program's bytes, shown as they are
      const message = printable.trim() === "" && head.length === 0
        ? "the target did not answer with the nix-store --serve greeting"
        : printable.length >= text.length * 0.9 && printable.trim() !== ""
          ? `the remote shell printed '${printable.trim().slice(0, 200)}' before nix-store answered`
          : `the target answered with bytes that are not Nix's serve protocol: ${head.subarray(0, 16).toString("hex").replace(/(..)(?!$)/g, "$1 ")}`;
      return new ServeError(message, this.channel.command, this.stderr);
    }
    if (err instanceof UnexpectedEndError || (err as NodeJS.ErrnoException).code === "EPIPE") {
      const exitCode = await Promise.race([
        this.channel.exited,
        new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000).unref()),
      ]);
      // stderr may still be arriving after stdout closed
      await new Promise((resolve) => setImmediate(resolve));
      // null: the channel closed without an exit status, i.e. the connection itself was lost
      const message = nixError(this.stderr, "last").reason ?? (exitCode === null
        ? "the connection to the target was lost"
        : `the server exited${exitCode === undefined ? "" : ` with code ${exitCode}`}`);
      return new ServeError(`${doing} failed: ${message}`, this.channel.command, this.stderr, exitCode);
    }
    // Anything else (a server too old, a malformed reply) is still this server's failure, named as such.
    return new ServeError(`${doing} failed: ${err instanceof Error ? err.message : String(err)}`, this.channel.command, this.stderr);
  }
}

