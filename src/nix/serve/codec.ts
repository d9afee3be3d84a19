import type { Readable } from "node:stream";

/**
 * Nix's serve protocol (`nix-store --serve`), as in NixOS/nix src/libstore/serve-protocol.hh and opServe in
 * src/nix-store/nix-store.cc: little-endian u64 integers, strings as u64 length + bytes + zero padding to 8, sets as
 * a u64 count followed by strings.
 */
export const SERVE_MAGIC_1 = 0x390c9deb;
export const SERVE_MAGIC_2 = 0x5452eecb;
/** The version we speak: Nix 2.4 – 2.34 and Lix announce it too. */
export const CLIENT_VERSION = 0x207;
/** AddToStoreNar (9) arrived with 2.5; without it we could only use ImportPaths, which Nix 2.32 removed. */
export const MIN_SERVER_VERSION = 0x205;

export const enum ServeCommand {
  QueryValidPaths = 1,
  QueryPathInfos = 2,
  DumpStorePath = 3,
  QueryClosure = 7,
  AddToStoreNar = 9,
}

export type Write = (bytes: Buffer) => void;

export function encodeU64(value: number | bigint): Buffer {
  const buf = Buffer.alloc(8);
  buf.writeBigUInt64LE(BigInt(value));
  return buf;
}

export function encodeString(value: string | Buffer): Buffer {
  const bytes = typeof value === "string" ? Buffer.from(value, "utf8") : value;
  const padding = (8 - (bytes.length % 8)) % 8;
  return Buffer.concat([encodeU64(bytes.length), bytes, Buffer.alloc(padding)]);
}

export function encodeStrings(values: Iterable<string>): Buffer {
  const list = [...values];
  return Buffer.concat([encodeU64(list.length), ...list.map(encodeString)]);
}

export function writeHello(write: Write): void {
  write(Buffer.concat([encodeU64(SERVE_MAGIC_1), encodeU64(CLIENT_VERSION)]));
}

export function writeQueryValidPaths(write: Write, paths: readonly string[], options: { lock: boolean; substitute: boolean }): void {
  write(Buffer.concat([
    encodeU64(ServeCommand.QueryValidPaths),
    encodeU64(options.lock ? 1 : 0),
    encodeU64(options.substitute ? 1 : 0),
    encodeStrings(paths),
  ]));
}

export function writeQueryPathInfos(write: Write, paths: readonly string[]): void {
  write(Buffer.concat([encodeU64(ServeCommand.QueryPathInfos), encodeStrings(paths)]));
}

/** DumpStorePath: the server answers with the path's NAR (its length is the path's narSize, from its info). */
export function writeDumpStorePath(write: Write, path: string): void {
  write(Buffer.concat([encodeU64(ServeCommand.DumpStorePath), encodeString(path)]));
}

export function writeQueryClosure(write: Write, paths: readonly string[], includeOutputs: boolean): void {
  write(Buffer.concat([encodeU64(ServeCommand.QueryClosure), encodeU64(includeOutputs ? 1 : 0), encodeStrings(paths)]));
}

/** Store metadata as the serve protocol carries it. */
export interface ServePathInfo {
  readonly path: string;
  readonly deriver?: string;
  readonly narHash: string;
  readonly references: readonly string[];
  readonly narSize: number;
  readonly registrationTime: number;
  readonly ultimate: boolean;
  readonly sigs: readonly string[];
  readonly ca?: string;
}

/** The header of AddToStoreNar; exactly `info.narSize` NAR bytes must follow it. */
export function writeAddToStoreNarHeader(write: Write, info: ServePathInfo): void {
  write(Buffer.concat([
    encodeU64(ServeCommand.AddToStoreNar),
    encodeString(info.path),
    encodeString(info.deriver ?? ""),
    encodeString(info.narHash),
    encodeStrings(info.references),
    encodeU64(info.registrationTime),
    encodeU64(info.narSize),
    encodeU64(info.ultimate ? 1 : 0),
    encodeStrings(info.sigs),
    encodeString(info.ca ?? ""),
  ]));
}

/** The stream ended (the remote process exited) while a reply was expected. */
export class UnexpectedEndError extends Error {
  constructor(readonly expected: string, readonly received: Buffer) {
    super(`connection closed while reading ${expected}`);
    this.name = "UnexpectedEndError";
  }
}

/**
 * Pull-style reader over a byte stream: replies are read in the order commands were sent, and NAR payloads are
 * handed on chunk by chunk so nothing is buffered whole. Pauses the stream when enough is buffered (backpressure).
 */
export class ServeReader {
  private readonly chunks: Buffer[] = [];
  /** When bytes last moved either way (read here, or written by the session: see `touch`). */
  private lastActivity = Date.now();
  private buffered = 0;
  private ended = false;
  private failure?: Error;
  private wake?: () => void;
  /** Every byte read so far when the stream ended early; helps explain garbage before the handshake. */
  private consumed = 0;
  private static readonly HIGH_WATER = 4 * 1024 * 1024;

  /**
   * `idleTimeoutMs`: a read that waits this long with no byte moving either way fails with a ReplyTimeoutError (a
   * host that accepts the connection and never answers cannot hold the deployer).
   */
  constructor(private readonly stream: Readable, private readonly options: { idleTimeoutMs?: number } = {}) {
    stream.on("data", (chunk: Buffer) => {
      this.lastActivity = Date.now();
      this.chunks.push(chunk);
      this.buffered += chunk.length;
      if (this.buffered >= ServeReader.HIGH_WATER) stream.pause();
      this.notify();
    });
    stream.on("end", () => {
      this.ended = true;
      this.notify();
    });
    stream.on("close", () => {
      this.ended = true;
      this.notify();
    });
    stream.on("error", (err: Error) => {
      this.failure = err;
      this.notify();
    });
  }

  get bytesRead(): number {
    return this.consumed;
  }

  /** Bytes went to the server: a reply may take as long as they keep going. */
  touch(): void {
    this.lastActivity = Date.now();
  }

  /** What is buffered but not consumed: on a protocol mismatch, the text the remote printed. */
  peekBuffered(): Buffer {
    return Buffer.concat(this.chunks);
  }

  async readBytes(length: number, what: string): Promise<Buffer> {
    return this.take(length, what);
  }

  async readU64(what = "an integer"): Promise<number> {
    const bytes = await this.take(8, what);
    const value = bytes.readBigUInt64LE();
    if (value > BigInt(Number.MAX_SAFE_INTEGER)) throw new Error(`${what} ${value} is out of range`);
    return Number(value);
  }

  /** A string of at most `maxBytes` (what it can be: a store path is < 4 KiB); a longer one is refused unread. */
  async readString(what = "a string", maxBytes = MAX_STRING_BYTES): Promise<string> {
    const length = await this.readU64(`the length of ${what}`);
    if (length > maxBytes) throw new ReplyBoundError(`${what} of ${length} bytes, more than it can be (${maxBytes})`);
    const padded = length + ((8 - (length % 8)) % 8);
    const bytes = await this.take(padded, what);
    return bytes.subarray(0, length).toString("utf8");
  }

  /** A list of at most `maxCount` strings (a reply has at most as many entries as were asked about). */
  async readStrings(what = "a list of strings", maxCount = MAX_LIST_ENTRIES, maxBytes = MAX_STRING_BYTES): Promise<string[]> {
    const count = await this.readU64(`the size of ${what}`);
    if (count > maxCount) throw new ReplyBoundError(`${what}: ${count} entries, more than it can have (${maxCount})`);
    const out: string[] = [];
    for (let i = 0; i < count; i++) out.push(await this.readString(what, maxBytes));
    return out;
  }

  private async take(length: number, what: string): Promise<Buffer> {
    if (length === 0) return Buffer.alloc(0);
    if (this.buffered < length) await this.waitFor(length, what);
    let out: Buffer;
    if (this.chunks[0].length >= length) {
      out = this.chunks[0].subarray(0, length);
      if (this.chunks[0].length === length) this.chunks.shift();
      else this.chunks[0] = this.chunks[0].subarray(length);
    } else {
      const all = Buffer.concat(this.chunks);
      out = all.subarray(0, length);
      this.chunks.length = 0;
      if (all.length > length) this.chunks.push(all.subarray(length));
    }
    this.buffered -= length;
    this.consumed += length;
    this.resumeIfLow();
    return out;
  }

  private async waitFor(length: number, what: string): Promise<void> {
    const idle = this.options.idleTimeoutMs;
    while (this.buffered < length) {
      if (this.failure) throw this.failure;
      if (this.ended) throw new UnexpectedEndError(what, this.peekBuffered());
      if (idle !== undefined && Date.now() - this.lastActivity >= idle) throw new ReplyTimeoutError(what, idle);
      this.stream.resume();
      let timer: NodeJS.Timeout | undefined;
      await new Promise<void>((resolve) => {
        this.wake = resolve;
        if (idle !== undefined) timer = setTimeout(resolve, Math.max(idle - (Date.now() - this.lastActivity), 1));
      });
      clearTimeout(timer);
    }
  }

  private resumeIfLow(): void {
    if (this.buffered < ServeReader.HIGH_WATER / 2 && this.stream.isPaused()) this.stream.resume();
  }

  private notify(): void {
    const wake = this.wake;
    this.wake = undefined;
    wake?.();
  }
}

/** What a reply's parts can be at most: a store path (Nix's own limit is far below), a string, a list. */
export const MAX_PATH_BYTES = 4096;
export const MAX_STRING_BYTES = 64 * 1024;
export const MAX_LIST_ENTRIES = 1_000_000;

/** A reply claimed a size it cannot have (a string of 2^40 bytes, a set of 2^50 paths): refused before reading it. */
export class ReplyBoundError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "ReplyBoundError";
  }
}

/** No byte moved either way for the reader's idle timeout while a reply was awaited. */
export class ReplyTimeoutError extends Error {
  constructor(what: string, idleMs: number) {
    super(`no answer within ${idleMs / 1000} s while waiting for ${what}`);
    this.name = "ReplyTimeoutError";
  }
}

/** Reads one QueryPathInfos reply: infos until an empty path, at most one per path asked about. */
export async function readPathInfos(reader: ServeReader, maxCount = MAX_LIST_ENTRIES): Promise<ServePathInfo[]> {
  const infos: ServePathInfo[] = [];
  for (;;) {
    const path = await reader.readString("a path info", MAX_PATH_BYTES);
    if (path === "") return infos;
    if (infos.length >= maxCount) throw new ReplyBoundError(`path infos: more than the ${maxCount} asked about`);
    const deriver = await reader.readString("a deriver", MAX_PATH_BYTES);
    const references = await reader.readStrings("references", MAX_LIST_ENTRIES, MAX_PATH_BYTES);
    await reader.readU64("a download size");
    const narSize = await reader.readU64("a NAR size");
    const narHash = await reader.readString("a NAR hash", 256);
    const ca = await reader.readString("a content address", MAX_PATH_BYTES);
    const sigs = await reader.readStrings("signatures", 1024, MAX_PATH_BYTES);
    infos.push({
      path,
      deriver: deriver === "" ? undefined : deriver,
      references,
      narSize,
      narHash,
      ca: ca === "" ? undefined : ca,
      sigs,
      registrationTime: 0,
      ultimate: false,
    });
  }
}

/** Reads the server's greeting and returns the version both sides will speak. */
export async function readHello(reader: ServeReader): Promise<number> {
  const greeting = await reader.readBytes(8, "the serve protocol greeting");
  if (greeting.readBigUInt64LE() !== BigInt(SERVE_MAGIC_2)) {
    throw new ProtocolMismatchError(Buffer.concat([greeting, reader.peekBuffered()]));
  }
  const serverVersion = await reader.readU64("the server's protocol version");
  if ((serverVersion & 0xff00) !== 0x200 || serverVersion < MIN_SERVER_VERSION) {
    throw new Error(
      `the target's nix-store --serve speaks protocol ${formatVersion(serverVersion)}; ` +
        `cdktf-nixos needs ${formatVersion(MIN_SERVER_VERSION)} or newer (Nix 2.4+)`,
    );
  }
  return Math.min(serverVersion, CLIENT_VERSION);
}

export function formatVersion(version: number): string {
  return `${version >> 8}.${version & 0xff} (0x${version.toString(16)})`;
}

/** The first bytes from the remote were not the serve greeting: usually a shell rc printing text. */
export class ProtocolMismatchError extends Error {
  constructor(readonly received: Buffer) {
    super("the remote did not answer with the nix-store --serve greeting");
    this.name = "ProtocolMismatchError";
  }
}
