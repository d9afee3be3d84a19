import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync, lstatSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { FileCacheStore } from "../../../src/nix/binary-cache/cache-store";
import { parseCacheUrl } from "../../../src/spec/cache-url";
import { nixSha256 } from "../../../src/nix/binary-cache/hash";
import { fingerprint, parseNarinfo } from "../../../src/nix/binary-cache/narinfo";
import { parseSigningKey, verifySignature } from "../../../src/nix/binary-cache/signing-key";
import { CacheUploadError, missingFromCache, uploadToCache } from "../../../src/nix/binary-cache/upload";
import type { NarSink, PathInfo, StoreSource } from "../../../src/nix/store-source";
import { missing } from "../../harness/requirements";
import { SECRET } from "./test-key";

const key = parseSigningKey(SECRET, "test key");

/** A store of made-up NARs (their bytes are what the source streams), with the infos Nix would report for them. */
function fakeStore(nars: Record<string, Buffer>, reported: Partial<Record<string, Partial<PathInfo>>> = {}): StoreSource & { dumped: string[] } {
  const infos = Object.entries(nars).map(([path, nar]): PathInfo => ({
    path, narHash: nixSha256(createHash("sha256").update(nar).digest()), narSize: nar.length, references: [], registrationTime: 0, ultimate: false, sigs: [],
    ...reported[path],
  }));
  const dumped: string[] = [];
  return {
    dumped,
    closure: async () => infos,
    dumpPath: async (info: PathInfo, sink: NarSink) => {
      dumped.push(info.path);
      await sink(nars[info.path]!);
    },
    close: async () => undefined,
  };
}

describe.skipIf(missing("zstd"))("uploading to a file:// binary cache", () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "upload-test-"));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const A = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-a";
  const B = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-b";

  it("uploads what the cache lacks as signed narinfos and zstd NARs, then finds nothing missing", async () => {
    const store = fakeStore({ [A]: Buffer.alloc(5000, 1), [B]: Buffer.alloc(300, 2) });
    const cache = new FileCacheStore(`file://${dir}`, dir);
    const closure = await store.closure([A, B]);
    expect((await missingFromCache(cache, closure)).map((p) => p.path)).toEqual([A, B]);
    const report = await uploadToCache(store, cache, closure, { signingKey: key, compression: "zstd" });
    expect(report).toMatchObject({ pathsUploaded: 2, narBytes: 5300 });
    const narinfo = parseNarinfo(readFileSync(join(dir, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa.narinfo"), "utf8"));
    expect(narinfo.fields.get("Compression")).toBe("zstd");
    expect(verifySignature(key.publicKey, fingerprint(closure[0]!), narinfo.sigs[0]!)).toBe(true);
    const nar = readFileSync(join(dir, narinfo.fields.get("URL")!));
    expect(nixSha256(createHash("sha256").update(nar).digest())).toBe(narinfo.fields.get("FileHash"));
    expect(readFileSync(join(dir, "nix-cache-info"), "utf8")).toBe("StoreDir: /nix/store\nWantMassQuery: 1\nPriority: 40\n");
    expect(await missingFromCache(cache, closure)).toEqual([]);
    // no spool file or half-written object is left
    expect(readdirSync(join(dir, "nar")).filter((name) => name.endsWith(".part"))).toEqual([]);
  });

  it("refuses a NAR that is not the one Nix registered, and lists no narinfo for it", async () => {
    const store = fakeStore({ [A]: Buffer.alloc(100, 1) }, { [A]: { narHash: nixSha256(Buffer.alloc(32)) } });
    const cache = new FileCacheStore(`file://${dir}`, dir);
    await expect(uploadToCache(store, cache, await store.closure([A]), { signingKey: key, compression: "zstd" }))
      .rejects.toThrow(CacheUploadError);
    expect(readdirSync(dir).filter((name) => name.endsWith(".narinfo"))).toEqual([]);
  });

  it("replaces a symlink at an object's place instead of writing through it", async () => {
    const outside = join(dir, "outside");
    writeFileSync(outside, "the user's file\n");
    symlinkSync(outside, join(dir, "nix-cache-info"));
    const cache = new FileCacheStore(`file://${dir}`, dir);
    await cache.put("nix-cache-info", { text: "StoreDir: /nix/store\n" });
    expect(readFileSync(outside, "utf8")).toBe("the user's file\n");
    expect(lstatSync(join(dir, "nix-cache-info")).isSymbolicLink()).toBe(false);
  });

  it("refuses a cache made for another store directory", async () => {
    writeFileSync(join(dir, "nix-cache-info"), "StoreDir: /gnu/store\n");
    const store = fakeStore({ [A]: Buffer.alloc(10) });
    await expect(missingFromCache(new FileCacheStore(`file://${dir}`, dir), await store.closure([A]))).rejects.toThrow(/is a cache for the store \/gnu\/store, not \/nix\/store/);
  });
});

describe("binary cache URLs", () => {
  it.each([
    ["s3://fleet?region=eu-west-1", { kind: "s3", bucket: "fleet", region: "eu-west-1", endpoint: undefined, compression: "zstd" }],
    ["s3://fleet?endpoint=minio.local:9000&scheme=http&compression=xz", { kind: "s3", bucket: "fleet", endpoint: "http://minio.local:9000", compression: "xz" }],
    ["s3://fleet?endpoint=http://10.0.0.1:9000", { kind: "s3", endpoint: "http://10.0.0.1:9000" }],
    ["file:///var/cache/nix", { kind: "file", directory: "/var/cache/nix", compression: "zstd" }],
    ["https://cache.example.com", { kind: "http" }],
  ])("reads %s", (url, expected) => {
    expect(parseCacheUrl(url)).toMatchObject(expected);
  });
  it.each([
    ["nix-cache", /'nix-cache' is not a URL: give s3:\/\/BUCKET\?region=REGION, file:\/\/\/DIR or http\(s\):\/\/HOST/],
    ["ftp://x/y", /ftp:\/\/ caches are not supported/],
    ["s3://fleet?secret-key=/k", /the signing key is not part of the URL here: give it as --cache-signing-key FILE/],
    ["s3://fleet?regoin=eu-west-1", /unknown parameter regoin \(known: region, endpoint/],
    ["s3://fleet?compression=bzip2", /compression 'bzip2' is not one this tool writes \(zstd, xz\)/],
    ["file://relative/dir", /a file cache is file:\/\/\/ABSOLUTE\/DIR/],
  ])("refuses %s", (url, message) => {
    expect(() => parseCacheUrl(url)).toThrow(message);
  });
});
