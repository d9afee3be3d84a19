import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { createWriteStream } from "node:fs";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { once } from "node:events";
import { eachAtMost } from "../../pool";
import type { PathInfo, StoreSource } from "../store-source";
import type { CacheStore } from "./cache-store";
import { sha256Digest } from "./hash";
import { CACHE_INFO_KEY, STORE_DIR, cacheInfo, cacheInfoStoreDir, fingerprint, narKey, narinfoKey, renderNarinfo, type Compression } from "./narinfo";
import type { SigningKey } from "./signing-key";

/** narinfo lookups at once: each is one small request. */
const LOOKUPS_AT_ONCE = 16;
/** Paths compressed and uploaded at once: each runs a compressor on a core and holds one upload. */
const UPLOADS_AT_ONCE = 4;
const MAX_CACHE_INFO_BYTES = 64 * 1024;

export class CacheUploadError extends Error {}

export interface CacheUploadProgress {
  readonly pathsUploaded: number;
  readonly pathsToUpload: number;
  readonly narBytesUploaded: number;
  readonly narBytesToUpload: number;
}

export interface CacheUploadReport {
  readonly cache: string;
  readonly pathsInClosure: number;
  /** Paths this upload put in the cache (each once). */
  readonly pathsUploaded: number;
  /** Their NAR size, and what went over the wire (compressed). */
  readonly narBytes: number;
  readonly fileBytes: number;
}

/** Which paths of `closure` the cache has no narinfo for (the cache's `nix-cache-info` is checked first). */
export async function missingFromCache(cache: CacheStore, closure: readonly PathInfo[]): Promise<PathInfo[]> {
  const info = await cache.get(CACHE_INFO_KEY, MAX_CACHE_INFO_BYTES);
  if (info !== undefined) {
    const storeDir = cacheInfoStoreDir(info.toString("utf8"));
    if (storeDir !== undefined && storeDir !== STORE_DIR) {
      throw new CacheUploadError(`${cache.url} is a cache for the store ${storeDir}, not ${STORE_DIR}`);
    }
  }
  const missing = new Set<string>();
  await eachAtMost(LOOKUPS_AT_ONCE, closure, async (path) => {
    if (!(await cache.exists(narinfoKey(path.path)))) missing.add(path.path);
  });
  return closure.filter((path) => missing.has(path.path));
}

/**
 * Uploads each of `paths` (infos from Nix, in dependency order) to the cache in Nix's format: the NAR, written from
 * the store and checked against the narHash and narSize Nix registered, compressed into a spool file (disk, not
 * memory) and stored under its file hash; then its narinfo, signed, last, so that a path is never listed before its
 * NAR is there. Writes the cache's nix-cache-info when it has none.
 */
export async function uploadToCache(
  source: StoreSource,
  cache: CacheStore,
  paths: readonly PathInfo[],
  options: { readonly signingKey: SigningKey; readonly compression: Compression; readonly onProgress?: (progress: CacheUploadProgress) => void },
): Promise<CacheUploadReport> {
  if (!(await cache.exists(CACHE_INFO_KEY))) await cache.put(CACHE_INFO_KEY, { text: cacheInfo() }, "text/x-nix-cache-info");
  const spool = await mkdtemp(join(tmpdir(), "cdktf-nixos-cache-"));
  const progress = { pathsUploaded: 0, pathsToUpload: paths.length, narBytesUploaded: 0, narBytesToUpload: paths.reduce((n, p) => n + p.narSize, 0) };
  let fileBytes = 0;
  try {
    let spooled = 0;
    await eachAtMost(UPLOADS_AT_ONCE, paths, async (info) => {
      const file = join(spool, `${spooled++}.nar`);
      const compressed = await writeCompressedNar(source, info, file, options.compression);
      const key = narKey(compressed.fileHash, options.compression);
      if (!(await cache.exists(key))) {
        await cache.put(key, { file, size: compressed.fileSize }, options.compression === "zstd" ? "application/zstd" : "application/x-xz");
      }
      await rm(file, { force: true });
      const narinfo = renderNarinfo(info, { key, compression: options.compression, ...compressed }, [options.signingKey.sign(fingerprint(info))]);
      await cache.put(narinfoKey(info.path), { text: narinfo }, "text/x-nix-narinfo");
      fileBytes += compressed.fileSize;
      progress.pathsUploaded++;
      progress.narBytesUploaded += info.narSize;
      options.onProgress?.({ ...progress });
    });
  } finally {
    await rm(spool, { recursive: true, force: true });
  }
  return { cache: cache.url, pathsInClosure: paths.length, pathsUploaded: progress.pathsUploaded, narBytes: progress.narBytesUploaded, fileBytes };
}

/** The NAR of `info` through the compressor into `file`; refuses one that is not what Nix registered. */
async function writeCompressedNar(source: StoreSource, info: PathInfo, file: string, compression: Compression): Promise<{ fileHash: Buffer; fileSize: number }> {
  const compressor = spawn(compression === "zstd" ? "zstd" : "xz", compression === "zstd" ? ["-q", "-3", "-c"] : ["-q", "-6", "-c"], { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve, reject) => {
    compressor.once("error", (err) => reject(new CacheUploadError(`${compression} could not run: ${err.message} (install it: apt install ${compression === "zstd" ? "zstd" : "xz-utils"})`)));
    compressor.once("close", resolve);
  });
  let stderr = "";
  compressor.stderr.on("data", (chunk: Buffer) => (stderr = (stderr + chunk.toString("utf8")).slice(-4096)));
  compressor.stdin.on("error", () => undefined); // a failing compressor is reported by its exit status
  const fileHash = createHash("sha256");
  let fileSize = 0;
  const output = createWriteStream(file, { flags: "wx", mode: 0o600 });
  compressor.stdout.on("data", (chunk: Buffer) => {
    fileHash.update(chunk);
    fileSize += chunk.length;
  });
  compressor.stdout.pipe(output);
  const written = once(output, "close");

  const narHash = createHash("sha256");
  let narSize = 0;
  try {
    await source.dumpPath(info, async (chunk) => {
      narHash.update(chunk);
      narSize += chunk.length;
      if (!compressor.stdin.write(chunk)) await once(compressor.stdin, "drain");
    });
  } finally {
    compressor.stdin.end();
  }
  const code = await exited;
  await written;
  if (code !== 0) throw new CacheUploadError(`${compression} failed (exit ${code}) compressing ${info.path}: ${stderr.trim()}`);
  if (narSize !== info.narSize || !narHash.digest().equals(sha256Digest(info.narHash))) {
    throw new CacheUploadError(`the NAR of ${info.path} is not the one Nix registered (${narSize} bytes, expected ${info.narSize}, or another hash): ` +
      "the store path changed on disk; run nix-store --verify --check-contents");
  }
  return { fileHash: fileHash.digest(), fileSize };
}
