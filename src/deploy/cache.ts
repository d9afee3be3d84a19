// A deployment through a binary cache: the deploying machine uploads what the cache lacks (once for a whole fleet),
// each host fetches its closure from there, and whatever the cache cannot give a host is copied to it directly.
import { spawn } from "node:child_process";
import { CopyError, DeployError } from "../errors";
import { FileCacheStore, type CacheStore } from "../nix/binary-cache/cache-store";
import { parseCacheUrl } from "../spec/cache-url";
import { missingFromCache, uploadToCache, type CacheUploadProgress, type CacheUploadReport as UploadedToCache } from "../nix/binary-cache/upload";
import { readSigningKey } from "../nix/binary-cache/signing-key";
import type { PathInfo, StoreSource } from "../nix/store-source";
import { shellQuote } from "../shell";
import type { CacheSpec } from "../spec/cache";
import type { Host } from "./host";

/**
 * What uploading a closure to a cache did (or, in a dry run, would do: `pathsUploaded` the cache lacks, `fileBytes`
 * 0). A push command does not say what it uploaded: its counts are 0.
 */
export interface CacheUploadReport extends UploadedToCache {
  /** The user's push command did the upload (the cache's content was not looked at). */
  readonly byPushCommand?: boolean;
  readonly dryRun?: boolean;
  /** A dry run: the paths the cache lacks. */
  readonly missing?: readonly string[];
}

/** What a host fetched from the cache before the direct copy. */
export interface CacheFetchReport {
  readonly substituter: string;
  readonly pathsFetched: number;
  /** The download size Nix announced for them (compressed), in bytes. */
  readonly downloadBytes: number;
  /** Why the cache could not give the host every path (Nix's own lines); those paths are then copied directly. */
  readonly fellBack?: string;
}

export interface CacheDependencies {
  /** @default S3 (AWS SDK) or file:// by the URL */
  readonly openCache?: (url: string) => Promise<CacheStore>;
  /** Runs the user's push command with the store paths as arguments. @default a local `sh -c` */
  readonly runPushCommand?: (command: string, paths: readonly string[]) => Promise<void>;
}

export async function openCacheStore(url: string): Promise<CacheStore> {
  const location = parseCacheUrl(url);
  if (location.kind === "file") return new FileCacheStore(url, location.directory);
  if (location.kind === "s3") {
    // the S3 SDK takes a noticeable time to load: only deployments with an s3:// cache pay for it
    const { S3CacheStore } = await import("../aws/s3-cache-store.js");
    return new S3CacheStore(location);
  }
  throw new CopyError(`this tool uploads to s3:// and file:// caches, not ${url}: give --cache-push-command`);
}

/** The key hosts trust for the cache: given, or the public half of the signing key (read now, held in memory). */
export async function cachePublicKey(spec: CacheSpec): Promise<string> {
  if (spec.publicKey !== undefined) return spec.publicKey;
  return (await readSigningKey(spec.signingKeyFile!)).publicKey;
}

/**
 * Puts the closures of `roots` in the cache: what it lacks, each path once, signed; or runs the user's push command
 * with the roots. A dry run only looks up what the cache lacks.
 */
export async function uploadClosure(
  spec: CacheSpec,
  roots: readonly string[],
  openSource: () => Promise<StoreSource>,
  options: { readonly dryRun?: boolean; readonly onProgress?: (progress: CacheUploadProgress) => void } & CacheDependencies = {},
): Promise<CacheUploadReport> {
  try {
    if (spec.pushCommand !== undefined) {
      if (!options.dryRun) await (options.runPushCommand ?? runPushCommand)(spec.pushCommand, roots);
      return { cache: spec.url, pathsInClosure: 0, pathsUploaded: 0, narBytes: 0, fileBytes: 0, byPushCommand: true, ...(options.dryRun ? { dryRun: true } : {}) };
    }
    const signingKey = options.dryRun ? undefined : await readSigningKey(spec.signingKeyFile!);
    const cache = await (options.openCache ?? openCacheStore)(spec.url);
    const source = await openSource().catch(async (err: unknown) => {
      await cache.close();
      throw err;
    });
    try {
      const closure = await source.closure(roots);
      const missing = await missingFromCache(cache, closure);
      const narBytes = sum(missing);
      if (options.dryRun || signingKey === undefined) {
        return { cache: spec.url, pathsInClosure: closure.length, pathsUploaded: missing.length, narBytes, fileBytes: 0, dryRun: true, missing: missing.map((p) => p.path) };
      }
      const location = parseCacheUrl(spec.url);
      const uploaded = await uploadToCache(source, cache, missing, {
        signingKey,
        compression: location.kind === "http" ? "zstd" : location.compression,
        onProgress: options.onProgress,
      });
      return { cache: spec.url, pathsInClosure: closure.length, pathsUploaded: uploaded.pathsUploaded, narBytes: uploaded.narBytes, fileBytes: uploaded.fileBytes };
    } finally {
      await source.close();
      await cache.close();
    }
  } catch (err) {
    if (err instanceof DeployError) throw err;
    throw new CopyError(`uploading to the binary cache ${spec.url} failed: ${(err as Error).message}`, {
      cause: err,
      hint: "nothing was deployed; what was uploaded stays in the cache (each path's narinfo is written last) and is not uploaded again",
    });
  }
}

function sum(paths: readonly PathInfo[]): number {
  return paths.reduce((n, p) => n + p.narSize, 0);
}

/** What a push command prints is shown only when it fails; this much of its end is kept. */
const PUSH_COMMAND_OUTPUT_BYTES = 16 * 1024;

function runPushCommand(command: string, paths: readonly string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    // the paths are the command's arguments ("$@"), never spliced into its text
    const child = spawn("sh", ["-c", `${command} "$@"`, "sh", ...paths], { stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    const keep = (chunk: Buffer) => (output = (output + chunk.toString("utf8")).slice(-PUSH_COMMAND_OUTPUT_BYTES));
    child.stdout.on("data", keep);
    child.stderr.on("data", keep);
    child.once("error", (err) => reject(new Error(`--cache-push-command could not run: ${err.message}`)));
    child.once("close", (code) => {
      if (code === 0) resolve();
      else reject(new Error(`--cache-push-command '${command}' exited with ${code}: ${output.trim()}`));
    });
  });
}

/**
 * What a host runs to fetch `path`'s closure from the cache: `nix-store --realise` with the cache as an extra
 * substituter and its key trusted, for this command only (root's, through sudo for another login user: Nix takes
 * substituters only from trusted users). `narinfo-cache-negative-ttl 0`: a path the host asked the cache for before
 * it was uploaded must not stay "missing" for an hour. Nix's lines (what it fetched, why it could not) go to stderr,
 * bounded; its exit status is the command's.
 */
export function cacheFetchCommand(path: string, substituter: string, publicKey: string, sudo: boolean): string {
  const realise = [
    ...(sudo ? ["sudo", "-n"] : []),
    "nix-store", "--realise", "--keep-going",
    "--option", "extra-substituters", substituter,
    "--option", "extra-trusted-public-keys", publicKey,
    "--option", "narinfo-cache-negative-ttl", "0",
    path,
  ].map(shellQuote).join(" ");
  return `out=$(${realise} 2>&1 >/dev/null); code=$?; printf '%s\\n' "$out" | tail -c ${FETCH_OUTPUT_BYTES} >&2; exit $code`;
}

const FETCH_OUTPUT_BYTES = 64 * 1024;

/** Reads what `cacheFetchCommand` printed: the paths Nix fetched, its announced download size, why it fell short. */
export function parseCacheFetch(substituter: string, exitCode: number, stderr: string): CacheFetchReport {
  const lines = stderr.split("\n");
  const fetched = new Set(lines.flatMap((line) => /^copying path '([^']+)' from '/.exec(line)?.[1] ?? []));
  const download = /these \d+ paths will be fetched \(([\d.]+) MiB download/.exec(stderr) ?? /this path will be fetched \(([\d.]+) MiB download/.exec(stderr);
  // curl's retries repeat a line with another delay: said once, without it
  const problems = lines.filter((line) => /does not have a valid signature|is not signed by any of the keys|^error:|^warning: (?!ignoring the client-specified setting)|unable to download|HTTP error/.test(line))
    .map((line) => line.replace(/;? retrying in \d+ ms$/, ""));
  return {
    substituter,
    pathsFetched: fetched.size,
    downloadBytes: download === null ? 0 : Math.round(Number(download[1]) * 1024 * 1024),
    ...(exitCode !== 0 ? { fellBack: problems.length > 0 ? [...new Set(problems)].slice(0, 3).join("; ") : `nix-store --realise exited with ${exitCode}` } : {}),
  };
}

/**
 * Lets the host fetch `path`'s closure from the cache. Never fatal by itself: what the cache cannot give is copied
 * directly afterwards (the copy sends only what the host still lacks). A lost connection is the copy's failure.
 */
export async function fetchFromCache(host: Host, path: string, substituter: string, publicKey: string, options: { readonly sudo: boolean; readonly timeoutMs: number }): Promise<CacheFetchReport> {
  try {
    const result = await host.run(cacheFetchCommand(path, substituter, publicKey, options.sudo), { timeoutMs: options.timeoutMs, maxOutputBytes: 2 * FETCH_OUTPUT_BYTES });
    return parseCacheFetch(substituter, result.exitCode, result.stderr);
  } catch (err) {
    throw new CopyError(`fetching from the binary cache on ${host.name} failed: ${(err as Error).message}`, {
      cause: err,
      hint: "paths already fetched stay valid on the host; run the deploy again",
    });
  }
}
