import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmod, mkdir, mkdtemp, rm, symlink, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { dumpNar } from "../../src/nix/nar";
import { buildSystem, closureOf } from "../harness/fixture";
import { missing } from "../harness/requirements";

async function narOf(path: string): Promise<{ bytes: Buffer; chunks: number }> {
  const chunks: Buffer[] = [];
  await dumpNar(path, (chunk) => {
    chunks.push(Buffer.from(chunk));
  });
  return { bytes: Buffer.concat(chunks), chunks: chunks.length };
}

/** Our NAR writer against Nix's own: the same bytes as `nix-store --dump`, the registered narHash and narSize. */
describe.skipIf(missing("nix"))("NARs written from the file system", () => {
  let dir: string;

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "nar-world-"));
  });
  afterAll(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("writes exactly the bytes nix-store --dump writes, for every kind of entry", async () => {
    const tree = join(dir, "tree");
    await mkdir(join(tree, "sub", "empty-dir"), { recursive: true });
    // names whose byte order differs from locale order and from UTF-16 order
    for (const name of ["B", "a", "a.b", "a-b", "ä", "Z", "_x"]) await writeFile(join(tree, name), `content of ${name}\n`);
    await writeFile(join(tree, "empty"), "");
    await writeFile(join(tree, "seven"), "1234567");
    await writeFile(join(tree, "tool"), "#!/bin/sh\necho hi\n");
    await chmod(join(tree, "tool"), 0o755);
    // read-only for the owner but executable for others: Nix only looks at the owner's execute bit
    await writeFile(join(tree, "others-exec"), "x");
    await chmod(join(tree, "others-exec"), 0o645);
    await symlink("../a", join(tree, "sub", "up"));
    await symlink("/nonexistent/target", join(tree, "dangling"));
    // bigger than one read chunk and not a multiple of 8
    await writeFile(join(tree, "sub", "big"), Buffer.alloc(700_001, 7));
    await writeFile(join(tree, "sub", "medium"), Buffer.alloc(70_003, 1));

    const ours = await narOf(tree);
    const nix = execFileSync("nix-store", ["--dump", tree], { maxBuffer: 64 * 1024 * 1024 });
    expect(ours.bytes.length).toBe(nix.length);
    expect(ours.bytes.equals(nix)).toBe(true);
    // small pieces are gathered: far fewer sink calls than NAR strings
    expect(ours.chunks).toBeLessThan(12);

    for (const single of [join(tree, "tool"), join(tree, "dangling"), join(tree, "sub", "empty-dir")]) {
      expect((await narOf(single)).bytes.equals(execFileSync("nix-store", ["--dump", single]))).toBe(true);
    }
  });

  it("matches the narHash and narSize Nix registered for every path of a system closure", async () => {
    const system = await buildSystem({ config: { networking: { hostName: "nar" }, lite: { payload: { paths: 3, sizeKiB: 300, compressible: true } } } });
    const closure = await closureOf(system.toplevel);
    expect(closure.length).toBeGreaterThan(5);
    for (const path of closure) {
      const { bytes } = await narOf(path);
      const hash = execFileSync("nix-store", ["--query", "--hash", path], { encoding: "utf8" }).trim();
      const size = execFileSync("nix-store", ["--query", "--size", path], { encoding: "utf8" }).trim();
      expect(bytes.length, path).toBe(Number(size));
      const nixBase32 = execFileSync("nix-hash", ["--type", "sha256", "--to-base32", createHash("sha256").update(bytes).digest("hex")], { encoding: "utf8" }).trim();
      expect(`sha256:${nixBase32}`, path).toBe(hash);
    }
  });

  it("refuses what a NAR cannot hold", async () => {
    const fifo = join(dir, "fifo");
    execFileSync("mkfifo", [fifo]);
    await expect(narOf(fifo)).rejects.toThrow(`${fifo} is neither a file, a directory nor a symlink, so it cannot be archived`);
  });
});
