import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { hostOutputs, imageUploadExpression, removeImageUpload, uploadImage, type ImageUploadDependencies, type ImageUploadRequest } from "../../src/deploy/image-upload";
import { FakeHost } from "./fake-host";
import { CopyError, EvaluateError } from "../../src/errors";
import type { CacheBody, CacheStore } from "../../src/nix/binary-cache/cache-store";
import { LOCAL_OUTPUTS } from "../../src/nix/image";

const dir = mkdtempSync(join(tmpdir(), "image-upload-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** A built amazon image as nixpkgs lays it out: the VHD and nix-support/image-info.json naming it. */
function builtImage(bytes: number): string {
  const out = mkdtempSync(join(dir, "out-"));
  mkdirSync(join(out, "nix-support"));
  const file = join(out, "nixos-amazon-image-25.05-x86_64-linux.vhd");
  writeFileSync(file, Buffer.alloc(bytes, 7));
  writeFileSync(join(out, "nix-support", "image-info.json"), JSON.stringify({ label: "25.05", boot_mode: "uefi", system: "x86_64-linux", disks: { root: { logical_bytes: String(bytes), file } } }));
  return out;
}

class RecordingStore implements CacheStore {
  readonly url = "s3://acme-images";
  readonly puts: Array<{ key: string; body: CacheBody; contentType: string; metadata?: Readonly<Record<string, string>> }> = [];
  readonly deleted: string[] = [];
  objectMetadata = new Map<string, Record<string, string>>();
  constructor(private readonly existing: readonly string[] = [], private readonly failure?: Error) {}
  async exists(key: string) {
    return this.existing.includes(key);
  }
  async get() {
    return undefined;
  }
  async put(key: string, body: CacheBody, contentType: string, metadata?: Readonly<Record<string, string>>) {
    if (this.failure) throw this.failure;
    this.puts.push({ key, body, contentType, metadata });
  }
  async metadata(key: string) {
    return this.objectMetadata.get(key);
  }
  async delete(key: string) {
    this.deleted.push(key);
  }
  async close() {}
}

const request: ImageUploadRequest = {
  source: { configuration: "/p/web.nix", nixPath: { nixpkgs: "/p/nixpkgs" } },
  moduleArgs: { greeting: "hi" },
  format: "amazon",
  drvPath: "/nix/store/aaaa-nixos-amazon-image.drv",
  key: "nixos-images/bbbb-nixos-amazon-image.vhd",
};

function deps(store: CacheStore, out: string, evaluates = request.drvPath) {
  const calls: string[] = [];
  const lines: string[] = [];
  const dependencies: ImageUploadDependencies = {
    instantiate: async (_expression, args) => {
      calls.push(`instantiate ${args.join(" ")}`);
      return evaluates;
    },
    realise: async (drvPath) => {
      calls.push(`realise ${drvPath}`);
      return { outPath: out, reader: LOCAL_OUTPUTS, body: (file, size) => ({ file, size }), close: async () => void calls.push("close") };
    },
    store,
    log: (line) => lines.push(line),
  };
  return { dependencies, calls, lines };
}

describe("uploadImage", () => {
  it("evaluates the image again, builds it, and streams its file to the key synth chose", async () => {
    const out = builtImage(3000);
    const store = new RecordingStore();
    const { dependencies, calls, lines } = deps(store, out);
    const result = await uploadImage(request, dependencies);
    expect(calls).toEqual(["instantiate -I nixpkgs=/p/nixpkgs", `realise ${request.drvPath}`, "close"]);
    expect(store.puts).toEqual([{
      key: request.key, body: { file: join(out, "nixos-amazon-image-25.05-x86_64-linux.vhd"), size: 3000 }, contentType: "application/octet-stream",
      metadata: { "cdktf-nixos-image": out },
    }]);
    expect(result).toEqual({ file: join(out, "nixos-amazon-image-25.05-x86_64-linux.vhd"), bytes: 3000, key: request.key, uploaded: true });
    expect(lines.at(-1)).toBe(`uploaded 3000 bytes to s3://acme-images/${request.key}`);
  });

  it("an object already under the key is this image (the key names its store path): not sent again", async () => {
    const store = new RecordingStore([request.key]);
    const { dependencies, lines } = deps(store, builtImage(10));
    expect((await uploadImage(request, dependencies)).uploaded).toBe(false);
    expect(store.puts).toEqual([]);
    expect(lines.at(-1)).toBe(`s3://acme-images/${request.key} is already there (10 bytes): not sent again`);
  });

  it("a configuration changed since synth is refused before anything is built or sent", async () => {
    const store = new RecordingStore();
    const { dependencies, calls } = deps(store, builtImage(10), "/nix/store/cccc-nixos-amazon-image.drv");
    const failed = uploadImage(request, dependencies);
    await expect(failed).rejects.toBeInstanceOf(EvaluateError);
    await expect(failed).rejects.toThrow("the image evaluates to /nix/store/cccc-nixos-amazon-image.drv now, but the stack was synthesized for " +
      "/nix/store/aaaa-nixos-amazon-image.drv: its configuration changed since cdktf synth; synthesize and plan again (cdktf deploy does both)");
    expect(calls).toEqual(["instantiate -I nixpkgs=/p/nixpkgs"]);
    expect(store.puts).toEqual([]);
  });

  it("a failed upload is the copy phase's error, naming the object", async () => {
    const { dependencies } = deps(new RecordingStore([], new Error("AccessDenied")), builtImage(10));
    await expect(uploadImage(request, dependencies)).rejects.toThrow(new CopyError(`uploading the image to s3://acme-images/${request.key} failed: AccessDenied`));
  });

  it("the expression holds the module arguments (it goes to Nix on stdin); a flake's needs the flakes feature", () => {
    expect(imageUploadExpression(request).expression).toContain('builtins.fromJSON "{\\"greeting\\":\\"hi\\"}"');
    expect(imageUploadExpression({ ...request, source: { flake: "path:/p#web" } }).args).toEqual(["--extra-experimental-features", "nix-command flakes"]);
  });

  it("from a build host: the output read through its shell (bounded, a regular file only), the file sent in ranges from its store", async () => {
    const out = "/nix/store/bbbb-nixos-amazon-image";
    const file = `${out}/nixos-amazon-image.vhd`;
    const content = Buffer.from("a VHD from the build host");
    const builder = new FakeHost([
      [`head -c 65537 -- ${out}/nix-support/image-info.json`, { stdout: JSON.stringify({ disks: { root: { file } } }) }],
      [`stat -c '%F %s' -- ${file}`, { stdout: `regular file ${content.length}\n` }],
    ]);
    builder.files.set(file, content);
    const store = new RecordingStore();
    const { dependencies } = deps(store, out);
    const result = await uploadImage(request, {
      ...dependencies,
      realise: async () => ({
        outPath: out, reader: hostOutputs(builder),
        body: (path, size) => ({ size, readRange: (start, length) => builder.readFile(path, { start, length }) }),
        close: () => builder.close(),
      }),
    });
    expect(result).toEqual({ file, bytes: content.length, key: request.key, uploaded: true });
    const body = store.puts[0]!.body as { size: number; readRange: (start: number, length: number) => Promise<NodeJS.ReadableStream> };
    const chunks: Buffer[] = [];
    for await (const chunk of await body.readRange(2, 3)) chunks.push(chunk as Buffer);
    expect(Buffer.concat(chunks).toString()).toBe("VHD");
    expect(builder.log).toEqual([`head -c 65537 -- ${out}/nix-support/image-info.json`, `stat -c '%F %s' -- ${file}`, `read ${file} 2+3`]);
    expect(builder.closed).toBe(1);
  });

  it("a build host's output whose image is a link or names a file outside it is refused", async () => {
    const out = "/nix/store/bbbb-nixos-amazon-image";
    for (const [info, stat, message] of [
      [{ disks: { root: { file: `${out}/x.vhd` } } }, "symbolic link 20", `${out}/x.vhd is not a regular file`],
      [{ disks: { root: { file: "/etc/shadow" } } }, "regular file 20", `${out} does not name its amazon image file where nixpkgs puts it`],
      [{ disks: { root: { file: `${out}/../cccc/x.vhd` } } }, "regular file 20", `${out} does not name its amazon image file where nixpkgs puts it`],
    ] as const) {
      const builder = new FakeHost([[/^head -c/, { stdout: JSON.stringify(info) }], [/^stat/, { stdout: stat }]]);
      const store = new RecordingStore();
      const { dependencies } = deps(store, out);
      await expect(uploadImage(request, { ...dependencies, realise: async () => ({ outPath: out, reader: hostOutputs(builder), body: () => ({ text: "" }), close: async () => undefined }) }))
        .rejects.toThrow(message);
      expect(store.puts).toEqual([]);
    }
  });

  it("at destroy, removes only the object uploaded for this image: another's object under the key is left alone and said so", async () => {
    const image = "/nix/store/bbbb-nixos-amazon-image";
    const store = new RecordingStore();
    const lines: string[] = [];
    store.objectMetadata.set("ours.vhd", { "cdktf-nixos-image": image });
    store.objectMetadata.set("theirs.vhd", { owner: "ops" });
    store.objectMetadata.set("older.vhd", { "cdktf-nixos-image": "/nix/store/aaaa-nixos-amazon-image" });
    expect(await removeImageUpload("ours.vhd", image, store, (l) => lines.push(l))).toBe("removed");
    expect(await removeImageUpload("theirs.vhd", image, store, (l) => lines.push(l))).toBe("not ours");
    expect(await removeImageUpload("older.vhd", image, store, (l) => lines.push(l))).toBe("not ours");
    expect(await removeImageUpload("gone.vhd", image, store, (l) => lines.push(l))).toBe("gone");
    expect(store.deleted).toEqual(["ours.vhd"]);
    expect(lines).toEqual([
      "removed s3://acme-images/ours.vhd",
      `s3://acme-images/theirs.vhd was not uploaded by cdktf-nixos for ${image} (its cdktf-nixos-image metadata is missing): left alone`,
      `s3://acme-images/older.vhd was not uploaded by cdktf-nixos for ${image} (its cdktf-nixos-image metadata is "/nix/store/aaaa-nixos-amazon-image"): left alone`,
      "s3://acme-images/gone.vhd is already gone",
    ]);
  });
});
