import { basename } from "node:path";
import type { PathInfo } from "../store-source";
import { nixSha256, sha256Digest } from "./hash";
import type { Compression } from "../../spec/cache-url";

/**
 * Nix's binary cache format (nix/src/libstore/nar-info.cc and binary-cache-store.cc): `<hash part>.narinfo` beside
 * `nar/<file hash>.nar.<ext>`, and `nix-cache-info` at the root.
 */
export type { Compression } from "../../spec/cache-url";

export const CACHE_INFO_KEY = "nix-cache-info";
export const STORE_DIR = "/nix/store";

export function cacheInfo(priority = 40): string {
  return `StoreDir: ${STORE_DIR}\nWantMassQuery: 1\nPriority: ${priority}\n`;
}

/** The store directory a `nix-cache-info` declares (a cache for another store dir cannot serve this one). */
export function cacheInfoStoreDir(text: string): string | undefined {
  return /^StoreDir: (.*)$/m.exec(text)?.[1]?.trim();
}

/** `/nix/store/abc…-name` → `abc…`: the name of its narinfo. */
export function hashPart(storePath: string): string {
  return basename(storePath).slice(0, 32);
}

export function narinfoKey(storePath: string): string {
  return `${hashPart(storePath)}.narinfo`;
}

/** The object a compressed NAR is stored as, named by its file's hash (as Nix names it). */
export function narKey(fileHash: Buffer, compression: Compression): string {
  return `nar/${nixSha256(fileHash).slice("sha256:".length)}.nar.${compression === "zstd" ? "zst" : "xz"}`;
}

/** What a signature covers: `1;PATH;NARHASH;NARSIZE;REF,REF…` (ValidPathInfo::fingerprint). */
export function fingerprint(info: PathInfo): string {
  return `1;${info.path};${nixSha256(sha256Digest(info.narHash))};${info.narSize};${[...info.references].sort().join(",")}`;
}

export interface NarFile {
  readonly key: string;
  readonly compression: Compression;
  readonly fileHash: Buffer;
  readonly fileSize: number;
}

export function renderNarinfo(info: PathInfo, file: NarFile, signatures: readonly string[]): string {
  const lines = [
    `StorePath: ${info.path}`,
    `URL: ${file.key}`,
    `Compression: ${file.compression}`,
    `FileHash: ${nixSha256(file.fileHash)}`,
    `FileSize: ${file.fileSize}`,
    `NarHash: ${nixSha256(sha256Digest(info.narHash))}`,
    `NarSize: ${info.narSize}`,
    `References: ${[...info.references].map((ref) => basename(ref)).sort().join(" ")}`,
    ...(info.deriver !== undefined ? [`Deriver: ${basename(info.deriver)}`] : []),
    ...signatures.map((sig) => `Sig: ${sig}`),
    ...(info.ca !== undefined ? [`CA: ${info.ca}`] : []),
  ];
  return `${lines.join("\n")}\n`;
}

/** The fields of a narinfo (each `Key: value` line; Sig may repeat). */
export function parseNarinfo(text: string): { readonly fields: ReadonlyMap<string, string>; readonly sigs: readonly string[] } {
  const fields = new Map<string, string>();
  const sigs: string[] = [];
  for (const line of text.split("\n")) {
    const colon = line.indexOf(": ");
    if (colon < 0) continue;
    const key = line.slice(0, colon);
    const value = line.slice(colon + 2);
    if (key === "Sig") sigs.push(value);
    else fields.set(key, value);
  }
  return { fields, sigs };
}
