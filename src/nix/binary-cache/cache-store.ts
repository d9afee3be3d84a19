import { randomBytes } from "node:crypto";
import { createReadStream, createWriteStream } from "node:fs";
import { pipeline } from "node:stream/promises";
import { lstat, mkdir, open, rename, rm } from "node:fs/promises";
import { dirname, join } from "node:path";
import type { Readable } from "node:stream";

/**
 * Where a binary cache's objects are written and looked up: an S3 bucket (src/aws/s3-cache-store.ts) or a directory.
 * Keys are the cache's relative names (`nix-cache-info`, `HASH.narinfo`, `nar/FILEHASH.nar.zst`).
 */
export interface CacheStore {
  /** The cache as hosts and messages name it. */
  readonly url: string;
  exists(key: string): Promise<boolean>;
  /** The object's bytes, or undefined when there is none; more than `maxBytes` is an error. */
  get(key: string, maxBytes: number): Promise<Buffer | undefined>;
  /** `metadata`: the object's user metadata, where the store keeps any (S3's x-amz-meta-*). */
  put(key: string, body: CacheBody, contentType: string, metadata?: Readonly<Record<string, string>>): Promise<void>;
  close(): Promise<void>;
}

/**
 * What is uploaded: small text, a spooled file (read as often as a retry needs), or `size` bytes read in ranges from
 * elsewhere (an image file in a build host's store), each range as often as a retry needs.
 */
export type CacheBody =
  | { readonly text: string }
  | { readonly file: string; readonly size: number }
  | { readonly size: number; readonly readRange: (start: number, length: number) => Promise<Readable> };

export async function bodyStream(body: CacheBody): Promise<Readable | Buffer> {
  if ("text" in body) return Buffer.from(body.text, "utf8");
  return "file" in body ? createReadStream(body.file) : body.readRange(0, body.size);
}

/** A range of a body that has a size: what one part of a multipart upload sends. */
export function bodyRange(body: Exclude<CacheBody, { readonly text: string }>, start: number, length: number): Promise<Readable> {
  return "file" in body ? Promise.resolve(createReadStream(body.file, { start, end: start + length - 1 })) : body.readRange(start, length);
}

/**
 * A `file://` cache. An object is written to a new file beside its place and renamed over it, so a reader never sees
 * half an object and a symlink at its place is replaced, never written through.
 */
export class FileCacheStore implements CacheStore {
  constructor(readonly url: string, private readonly directory: string) {}

  async exists(key: string): Promise<boolean> {
    try {
      await lstat(this.path(key));
      return true;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return false;
      throw err;
    }
  }

  async get(key: string, maxBytes: number): Promise<Buffer | undefined> {
    let handle;
    try {
      handle = await open(this.path(key), "r");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return undefined;
      throw err;
    }
    try {
      const buffer = Buffer.alloc(maxBytes + 1);
      const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
      if (bytesRead > maxBytes) throw new Error(`${this.url}: ${key} is larger than ${maxBytes} bytes`);
      return buffer.subarray(0, bytesRead);
    } finally {
      await handle.close();
    }
  }

  async put(key: string, body: CacheBody): Promise<void> {
    const target = this.path(key);
    await mkdir(dirname(target), { recursive: true });
    const temporary = `${target}.${randomBytes(6).toString("hex")}.part`;
    try {
      if ("text" in body) {
        const handle = await open(temporary, "wx", 0o644);
        try {
          await handle.writeFile(body.text);
        } finally {
          await handle.close();
        }
      } else if ("file" in body) {
        // the spool file stays the uploader's (it removes it); the cache gets its own copy
        await copyInto(body.file, temporary);
      } else {
        await pipeline(await body.readRange(0, body.size), createWriteStream(temporary, { flags: "wx", mode: 0o644 }));
      }
      await rename(temporary, target);
    } catch (err) {
      await rm(temporary, { force: true });
      throw err;
    }
  }

  async close(): Promise<void> {}

  private path(key: string): string {
    if (key.split("/").some((part) => part === "" || part === "." || part === "..")) throw new Error(`not a cache key: ${key}`);
    return join(this.directory, key);
  }
}

async function copyInto(from: string, to: string): Promise<void> {
  await pipeline(createReadStream(from), createWriteStream(to, { flags: "wx", mode: 0o644 }));
}
