import { createHash, randomBytes } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { S3CacheStore } from "../../src/aws/s3-cache-store";
import { startS3Server, type S3Server } from "../harness/s3-server";

/**
 * The S3 store against a real S3 API (the npm s3rver): a file above the part size goes up as a multipart upload whose
 * parts are streamed from the file (what keeps an image upload's memory flat), and arrives whole.
 */
describe("S3CacheStore against s3rver", () => {
  let s3: S3Server;
  let dir: string;
  const saved: Record<string, string | undefined> = {};
  beforeAll(async () => {
    s3 = await startS3Server("127.0.0.1", ["parts"]);
    dir = mkdtempSync(join(tmpdir(), "s3-store-"));
    for (const [name, value] of Object.entries(s3.env)) {
      saved[name] = process.env[name];
      process.env[name] = value;
    }
  });
  afterAll(async () => {
    for (const [name, value] of Object.entries(saved)) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    await s3?.stop();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });
  const store = (bucket = "parts") => new S3CacheStore({ url: `s3://${bucket}`, bucket, region: "us-east-1", endpoint: s3.endpoint, profile: undefined });

  it("a 40 MiB file goes up in three parts streamed from the file and is stored byte for byte", async () => {
    const file = join(dir, "image.vhd");
    const content = randomBytes(40 * 1024 * 1024 + 123);
    writeFileSync(file, content);
    const s = store();
    try {
      await s.put("images/a.vhd", { file, size: content.length }, "application/octet-stream");
      expect(await s.exists("images/a.vhd")).toBe(true);
      const stored = Buffer.from(await (await fetch(`${s3.endpoint}/parts/images/a.vhd`)).arrayBuffer());
      expect(createHash("sha256").update(stored).digest("hex")).toBe(createHash("sha256").update(content).digest("hex"));
    } finally {
      await s.close();
    }
    const puts = s3.requests.filter((r) => r.method === "PUT" && r.path === "/parts/images/a.vhd");
    expect(puts.map((r) => r.bytesIn).sort((a, b) => a - b)).toEqual([8 * 1024 * 1024 + 123, 16 * 1024 * 1024, 16 * 1024 * 1024]);
  });

  it("a bucket that does not exist is one clear error, and nothing is left behind", async () => {
    const file = join(dir, "big.img");
    writeFileSync(file, Buffer.alloc(17 * 1024 * 1024));
    const s = store("no-such-bucket");
    try {
      await expect(s.put("x.img", { file, size: 17 * 1024 * 1024 }, "application/octet-stream")).rejects.toThrow(/uploading x\.img in s3:\/\/no-such-bucket failed: NoSuchBucket/);
    } finally {
      await s.close();
    }
  });
});
