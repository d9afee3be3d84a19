import { stat } from "node:fs/promises";
import { CopyError, EvaluateError } from "../errors";
import { runNix } from "../nix/build";
import type { CacheStore } from "../nix/binary-cache/cache-store";
import { configurationImageEvaluation, flakeImageEvaluation, imageAttribute, imageFileOf, type ImageFormat } from "../nix/image";
import { moduleArgsExpression } from "../nix/system";
import type { Redact } from "../redact";

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

export interface ImageUploadDependencies {
  /** Evaluates an expression (on stdin) and returns the derivation path. */
  readonly instantiate: (expression: string, args: readonly string[]) => Promise<string>;
  /** Builds a derivation and returns its output path. */
  readonly realise: (drvPath: string) => Promise<string>;
  readonly store: CacheStore;
  readonly log: (line: string) => void;
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
      "its configuration changed since cdktf synth; synthesize and plan again (cdktf deploy does both)");
  }
  deps.log(`building ${drvPath}`);
  const outPath = await deps.realise(drvPath);
  const file = await imageFileOf(outPath, request.format);
  const bytes = (await stat(file)).size;
  if (await deps.store.exists(request.key)) {
    deps.log(`${deps.store.url}/${request.key} is already there (${bytes} bytes): not sent again`);
    return { file, bytes, key: request.key, uploaded: false };
  }
  deps.log(`uploading ${file} (${bytes} bytes) to ${deps.store.url}/${request.key}`);
  try {
    await deps.store.put(request.key, { file, size: bytes }, "application/octet-stream");
  } catch (err) {
    throw new CopyError(`uploading the image to ${deps.store.url}/${request.key} failed: ${(err as Error).message}`);
  }
  deps.log(`uploaded ${bytes} bytes to ${deps.store.url}/${request.key}`);
  return { file, bytes, key: request.key, uploaded: true };
}

/** Nix on this machine: the expression on stdin (it holds the module arguments), the build's log to `log`. */
export function localImageNix(redact: Redact, log: (line: string) => void): Pick<ImageUploadDependencies, "instantiate" | "realise"> {
  const lastLine = (text: string) => text.trim().split("\n").at(-1) ?? "";
  return {
    instantiate: async (expression, args) => lastLine(await runNix("nix-instantiate", [...args, "-"], "evaluate", { stdin: expression, redact })),
    realise: async (drvPath) => lastLine(await runNix("nix-store", ["--realise", drvPath], "build", { onLog: log, redact })),
  };
}
