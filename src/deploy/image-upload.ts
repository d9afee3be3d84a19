import { mkdtemp, readlink, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { CopyError, EvaluateError } from "../errors";
import { runNix } from "../nix/build";
import type { CacheBody, CacheStore } from "../nix/binary-cache/cache-store";
import { LOCAL_OUTPUTS, configurationImageEvaluation, flakeImageEvaluation, imageAttribute, imageFileIn, type ImageFormat, type OutputReader } from "../nix/image";
import { shellQuote } from "../shell";
import type { TargetSpec } from "../spec/target";
import { buildOnBuildHost } from "./build-host";
import type { Host } from "./host";
import type { HostDependencies } from "./request";
import { moduleArgsExpression } from "../nix/system";
import type { Redact } from "../redact";
import { cdkCli } from "../flavour";

/**
 * What `terraform apply` runs for NixosImage.fromConfiguration: the image evaluated again from its source (the
 * derivation synth recorded must be the one built), built, and its file put in S3 under the key synth chose (which
 * names the image's store path, so an existing object of that key is this image: not sent again). The file is read
 * as a stream in parts, never whole into memory.
 */
export interface ImageUploadRequest {
  readonly source: { readonly configuration: string; readonly nixPath: Readonly<Record<string, string>> } | { readonly flake: string };
  readonly moduleArgs: Readonly<Record<string, unknown>>;
  readonly format: ImageFormat;
  /** The image derivation synth evaluated: what Terraform's resources were planned for. */
  readonly drvPath: string;
  readonly key: string;
}

/** Where images go: a cache store that also keeps objects' metadata and deletes (S3CacheStore). */
export interface ImageStore extends CacheStore {
  metadata(key: string): Promise<Readonly<Record<string, string>> | undefined>;
  delete(key: string): Promise<void>;
}

/** The user metadata that marks an object as the upload of one image: its store path. */
export const IMAGE_METADATA = "cdktf-nixos-image";

export interface ImageUploadDependencies {
  /** Evaluates an expression (on stdin) and returns the derivation path. */
  readonly instantiate: (expression: string, args: readonly string[]) => Promise<string>;
  /** Builds a derivation: here, or on a build host (whose store the file is then read from). */
  readonly realise: (drvPath: string) => Promise<BuiltOutput>;
  readonly store: CacheStore;
  readonly log: (line: string) => void;
}

/** A built image output and how its file is read where it was built. */
export interface BuiltOutput {
  readonly outPath: string;
  readonly reader: OutputReader;
  /** The upload's body for a file of the output. */
  body(file: string, size: number): CacheBody;
  close(): Promise<void>;
}

export interface ImageUploadResult {
  readonly file: string;
  readonly bytes: number;
  readonly key: string;
  /** False when the object was already there (an earlier apply uploaded it). */
  readonly uploaded: boolean;
}

export function imageUploadExpression(request: ImageUploadRequest): { readonly expression: string; readonly args: string[] } {
  if ("flake" in request.source) {
    return { expression: imageAttribute(flakeImageEvaluation(request.source.flake, request.format), request.format), args: ["--extra-experimental-features", "nix-command flakes"] };
  }
  return {
    expression: imageAttribute(configurationImageEvaluation(request.source.configuration, moduleArgsExpression(request.moduleArgs), request.format), request.format),
    args: Object.entries(request.source.nixPath).flatMap(([name, path]) => ["-I", `${name}=${path}`]),
  };
}

export async function uploadImage(request: ImageUploadRequest, deps: ImageUploadDependencies): Promise<ImageUploadResult> {
  const { expression, args } = imageUploadExpression(request);
  const drvPath = await deps.instantiate(expression, args);
  if (drvPath !== request.drvPath) {
    throw new EvaluateError(`the image evaluates to ${drvPath} now, but the stack was synthesized for ${request.drvPath}: ` +
      `its configuration changed since ${cdkCli()} synth; synthesize and plan again (${cdkCli()} deploy does both)`);
  }
  deps.log(`building ${drvPath}`);
  const built = await deps.realise(drvPath);
  try {
    const { path: file, size: bytes } = await imageFileIn(built.outPath, request.format, built.reader);
    if (await deps.store.exists(request.key)) {
      deps.log(`${deps.store.url}/${request.key} is already there (${bytes} bytes): not sent again`);
      return { file, bytes, key: request.key, uploaded: false };
    }
    deps.log(`uploading ${file} (${bytes} bytes) to ${deps.store.url}/${request.key}`);
    try {
      await deps.store.put(request.key, built.body(file, bytes), "application/octet-stream", { [IMAGE_METADATA]: built.outPath });
    } catch (err) {
      throw new CopyError(`uploading the image to ${deps.store.url}/${request.key} failed: ${(err as Error).message}`);
    }
    deps.log(`uploaded ${bytes} bytes to ${deps.store.url}/${request.key}`);
    return { file, bytes, key: request.key, uploaded: true };
  } finally {
    await built.close();
  }
}

/**
 * What `terraform destroy` runs for an image's upload: its object goes, when it is the one uploaded for this image
 * (its metadata names the image's store path). Anything else under the key — an object of the same name uploaded by
 * someone else — is left alone and said so; an object already gone is fine.
 */
export async function removeImageUpload(key: string, imagePath: string, store: ImageStore, log: (line: string) => void): Promise<"removed" | "gone" | "not ours"> {
  const metadata = await store.metadata(key);
  if (metadata === undefined) {
    log(`${store.url}/${key} is already gone`);
    return "gone";
  }
  if (metadata[IMAGE_METADATA] !== imagePath) {
    log(`${store.url}/${key} was not uploaded by cdktf-nixos for ${imagePath} (its ${IMAGE_METADATA} metadata is ` +
      `${metadata[IMAGE_METADATA] === undefined ? "missing" : `"${metadata[IMAGE_METADATA]}"`}): left alone`);
    return "not ours";
  }
  await store.delete(key);
  log(`removed ${store.url}/${key}`);
  return "removed";
}

const lastLine = (text: string) => text.trim().split("\n").at(-1) ?? "";

/**
 * Nix on this machine: the expression on stdin (it holds the module arguments), the build's log to `log`. With a
 * build host, the derivations go there and are built there; the image file is then read from its store in ranges, as
 * the upload sends them, and never enters this machine's store.
 */
export function imageNix(
  redact: Redact,
  log: (line: string) => void,
  buildHost?: { readonly target: TargetSpec; readonly deps: HostDependencies },
): Pick<ImageUploadDependencies, "instantiate" | "realise"> {
  return {
    instantiate: async (expression, args) => lastLine(await runNix("nix-instantiate", [...args, "-"], "evaluate", { stdin: expression, redact })),
    realise: async (drvPath) => {
      if (buildHost === undefined) {
        // a garbage collection while a large image uploads must not take it: a root of our own in a directory of our
        // own, for as long as the upload runs (nix-store then prints the root, a link to the output)
        const rootDir = await mkdtemp(join(tmpdir(), "cdktf-nixos-image-"));
        try {
          const root = join(rootDir, "image");
          await runNix("nix-store", ["--realise", drvPath, "--add-root", root, "--indirect"], "build", { onLog: log, redact });
          const outPath = await readlink(root);
          return { outPath, reader: LOCAL_OUTPUTS, body: (file, size) => ({ file, size }), close: () => rm(rootDir, { recursive: true, force: true }) };
        } catch (err) {
          await rm(rootDir, { recursive: true, force: true });
          throw err;
        }
      }
      const outPath = lastLine(await runNix("nix-store", ["--query", "--outputs", drvPath], "evaluate", { redact }));
      log(`building on the build host ${buildHost.target.host}`);
      const builder = await buildOnBuildHost(buildHost.target, [{ drvPath, outPath, system: "" }], buildHost.deps, { replyTimeoutMs: BUILD_HOST_REPLY_MS, onNotice: log });
      return {
        outPath,
        reader: hostOutputs(builder.host),
        body: (file, size) => ({ size, readRange: (start, length) => builder.host.readFile(file, { start, length }) }),
        close: () => builder.close(),
      };
    },
  };
}

/** How long the build host's store may keep the copy of the derivations waiting with nothing moving. */
const BUILD_HOST_REPLY_MS = 60_000;
const LIST_BYTES = 1024 * 1024;

/** A build host's outputs, read through its shell: bounded, and only regular files count as image files. */
export function hostOutputs(host: Host): OutputReader {
  const run = async (command: string, maxOutputBytes: number) => {
    const result = await host.run(command, { maxOutputBytes });
    if (result.exitCode !== 0) throw new Error(`${command} on ${host.name} failed (exit ${result.exitCode}): ${result.stderr.trim()}`);
    return result.stdout;
  };
  return {
    readText: async (path, maxBytes) => {
      const text = await run(`head -c ${maxBytes + 1} -- ${shellQuote(path)}`, maxBytes + 1);
      if (Buffer.byteLength(text) > maxBytes) throw new Error(`${path} on ${host.name} is larger than ${maxBytes} bytes`);
      return text;
    },
    list: async (dir) => (await run(`ls -1A -- ${shellQuote(dir)}`, LIST_BYTES)).split("\n").filter(Boolean),
    regularFileSize: async (path) => {
      const match = /^regular (?:empty )?file (\d+)$/.exec((await run(`stat -c '%F %s' -- ${shellQuote(path)}`, 1024)).trim());
      return match === null ? undefined : Number(match[1]);
    },
  };
}
