import { constants } from "node:fs";
import { access, chmod, copyFile, lstat, rename, rm, stat } from "node:fs/promises";
import { basename, join } from "node:path";
import { randomBytes } from "node:crypto";
import type { ExpressionBuild } from "../nix/build";
import { IMAGE_FORMATS, configurationImageEvaluation, flakeImageEvaluation, imageAttribute, isImageFormat, type ImageFormat } from "../nix/image";
import { moduleArgsExpression } from "../nix/system";
import type { Redact } from "../redact";
import { LocalArgsError, localRedactor, resolveLocalArgs, unknownOverrides, type LocalArgs, type LocalHost } from "./local-args";

/**
 * `cdktf-nixos image`: one host of the stack as an image file (an AMI's disk, the seed's installation ISO, a raw
 * disk), built from the deployment's own source and module arguments, as `vm` builds its VM. Never uploaded.
 */
export interface ImagePlan {
  readonly host: string;
  readonly format: ImageFormat;
  readonly build: ExpressionBuild;
  readonly args: LocalArgs;
  readonly redact: Redact;
}

export function parseImageFormat(value: string | undefined): ImageFormat {
  const formats = Object.keys(IMAGE_FORMATS).join(", ");
  if (value === undefined) throw new LocalArgsError(`image needs --format: one of ${formats} (e.g. --format amazon)`);
  if (!isImageFormat(value)) throw new LocalArgsError(`--format ${value} is not an image format cdktf-nixos builds; use one of ${formats}`);
  return value;
}

export function planImage(host: LocalHost, format: ImageFormat, overrides: Readonly<Record<string, unknown>>, stateProblem?: string): ImagePlan {
  const unknown = unknownOverrides([host], overrides);
  if (unknown !== undefined) throw new LocalArgsError(unknown);
  const args = resolveLocalArgs(host, overrides, { stateProblem });
  const redact = localRedactor([{ host, args }]);
  const source = host.spec.source;
  const what = `the ${format} image of ${host.name}`;
  if (source.flake !== undefined) {
    return { host: host.name, format, args, redact, build: { expression: imageAttribute(flakeImageEvaluation(source.flake, format), format), includes: [], flakes: true, what } };
  }
  const configuration = source.configuration!;
  return {
    host: host.name,
    format,
    args,
    redact,
    build: {
      expression: imageAttribute(configurationImageEvaluation(configuration, moduleArgsExpression(args.args), format), format),
      includes: [...Object.entries(source.nixPath ?? {}).map(([k, v]) => `${k}=${v}`), `nixos-config=${configuration}`],
      what,
    },
  };
}

/** `--out DIR` must be a directory this process can write to: checked before anything is built. */
export async function checkOutDir(outDir: string): Promise<void> {
  const dir = await stat(outDir).catch(() => undefined);
  if (dir === undefined) throw new LocalArgsError(`--out ${outDir} does not exist; create the directory first`);
  if (!dir.isDirectory()) throw new LocalArgsError(`--out ${outDir} is not a directory`);
  try {
    await access(outDir, constants.W_OK);
  } catch (err) {
    throw new LocalArgsError(`--out ${outDir} is not writable (${(err as NodeJS.ErrnoException).code}); choose a directory you can write to`);
  }
}

/**
 * `--out DIR`: the image file copied into an existing directory under its own name. An existing file of that name is
 * never replaced (it may be the user's); the copy goes to a new file beside it, renamed into place when complete.
 */
export async function copyImageTo(file: string, outDir: string): Promise<string> {
  await checkOutDir(outDir);
  const target = join(outDir, basename(file));
  if (await lstat(target).then(() => true, () => false)) {
    throw new LocalArgsError(`${target} already exists; cdktf-nixos does not replace it: remove it or choose another --out`);
  }
  const partial = join(outDir, `.${basename(file)}.${randomBytes(6).toString("hex")}.partial`);
  try {
    await copyFile(file, partial, constants.COPYFILE_EXCL);
  } catch (err) {
    await rm(partial, { force: true });
    const code = (err as NodeJS.ErrnoException).code;
    if (code === "EACCES" || code === "EPERM" || code === "EROFS") throw new LocalArgsError(`--out ${outDir} is not writable (${code}); choose a directory you can write to`);
    throw err;
  }
  await chmod(partial, 0o644);
  // rename(2) replaces silently, so the check above is repeated as late as it can be
  if (await lstat(target).then(() => true, () => false)) {
    await rm(partial, { force: true });
    throw new LocalArgsError(`${target} appeared while the image was copied; cdktf-nixos does not replace it`);
  }
  await rename(partial, target);
  return target;
}
