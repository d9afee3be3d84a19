import { lstat, open, readdir, readlink } from "node:fs/promises";
import type { NarSink } from "./store-source";

/**
 * Nix's archive format, written from the file system (Nix's `dumpPath`): the bytes `nix-store --dump PATH` prints,
 * so their SHA-256 and length are the path's registered narHash and narSize. Reading the store's files here, instead
 * of through a local `nix-store --serve` pipe, saves a process and a copy of every byte on the deploying machine; the
 * target still checks each NAR against the narHash it is sent with, and the copy checks the length.
 */

/** Small pieces (headers, small files) are gathered into writes of about this size: one SSH packet each. */
const GATHER_BYTES = 64 * 1024;
/** Large files are read and sent in chunks of this size. */
const READ_CHUNK_BYTES = 256 * 1024;
const SLASH = Buffer.from("/");

export async function dumpNar(path: string, sink: NarSink): Promise<void> {
  const out = new GatheringSink(sink);
  await out.string("nix-archive-1");
  await dumpNode(Buffer.from(path, "utf8"), out);
  await out.flush();
}

/** Paths are bytes: a store path may hold names that are not UTF-8. */
async function dumpNode(path: Buffer, out: GatheringSink): Promise<void> {
  const info = await lstat(path);
  await out.string("(");
  await out.string("type");
  if (info.isSymbolicLink()) {
    await out.string("symlink");
    await out.string("target");
    await out.bytes(await readlink(path, { encoding: "buffer" }));
  } else if (info.isFile()) {
    await out.string("regular");
    // Nix records one bit: the owner's execute permission
    if ((info.mode & 0o100) !== 0) {
      await out.string("executable");
      await out.string("");
    }
    await out.string("contents");
    await dumpContents(path, info.size, out);
  } else if (info.isDirectory()) {
    await out.string("directory");
    // Nix sorts entries by their bytes (std::string order), not by locale
    const names = (await readdir(path, { encoding: "buffer" })).sort(Buffer.compare);
    for (const name of names) {
      await out.string("entry");
      await out.string("(");
      await out.string("name");
      await out.bytes(name);
      await out.string("node");
      await dumpNode(Buffer.concat([path, SLASH, name]), out);
      await out.string(")");
    }
  } else {
    throw new Error(`${path} is neither a file, a directory nor a symlink, so it cannot be archived`);
  }
  await out.string(")");
}

async function dumpContents(path: Buffer, size: number, out: GatheringSink): Promise<void> {
  out.length(size);
  const file = await open(path, "r");
  try {
    let done = 0;
    while (done < size) {
      const want = Math.min(READ_CHUNK_BYTES, size - done);
      // a fresh buffer per chunk: the sink may keep it queued after it returns
      const chunk = Buffer.allocUnsafe(want);
      const { bytesRead } = await file.read(chunk, 0, want, done);
      if (bytesRead === 0) throw new Error(`${path} shrank while it was being sent (${done} of ${size} bytes read)`);
      await out.bytes(chunk.subarray(0, bytesRead), { raw: true });
      done += bytesRead;
    }
    const extra = await file.read(Buffer.alloc(1), 0, 1, size);
    if (extra.bytesRead !== 0) throw new Error(`${path} grew while it was being sent`);
  } finally {
    await file.close();
  }
  out.padding(size);
}

/** Gathers small writes so that the sink (and the SSH channel behind it) sees few, large chunks. */
class GatheringSink {
  private pending: Buffer[] = [];
  private pendingBytes = 0;

  constructor(private readonly sink: NarSink) {}

  string(text: string): Promise<void> {
    return this.bytes(Buffer.from(text, "utf8"));
  }

  /** A NAR string: length, bytes, zero padding to 8 bytes. */
  async bytes(data: Buffer, options: { raw?: boolean } = {}): Promise<void> {
    if (options.raw !== true) this.length(data.length);
    if (data.length >= GATHER_BYTES) {
      await this.flush();
      await this.sink(data);
    } else {
      this.pending.push(data);
      this.pendingBytes += data.length;
      if (this.pendingBytes >= GATHER_BYTES) await this.flush();
    }
    if (options.raw !== true) this.padding(data.length);
  }

  length(n: number): void {
    const header = Buffer.alloc(8);
    header.writeBigUInt64LE(BigInt(n));
    this.pending.push(header);
    this.pendingBytes += 8;
  }

  padding(n: number): void {
    const pad = (8 - (n % 8)) % 8;
    if (pad === 0) return;
    this.pending.push(Buffer.alloc(pad));
    this.pendingBytes += pad;
  }

  async flush(): Promise<void> {
    if (this.pendingBytes === 0) return;
    const data = this.pending.length === 1 ? this.pending[0]! : Buffer.concat(this.pending, this.pendingBytes);
    this.pending = [];
    this.pendingBytes = 0;
    await this.sink(data);
  }
}
