import { lstat, readdir, readFile } from "node:fs/promises";
import { join } from "node:path";
import { flakeConfigurationExpression, nixString } from "./system";

/**
 * Images of a NixOS configuration, as nixpkgs builds them: the module nixos-generators (and `nixos-rebuild
 * build-image`) add for each format, and the `config.system.build` attribute that holds the result.
 */
export type ImageFormat = "amazon" | "iso" | "raw";

interface ImageFormatDefinition {
  /** The module that defines the image, relative to nixpkgs' `nixos/` directory. */
  readonly module: string;
  /** Settings the format needs besides the module, as a Nix attribute set. */
  readonly settings?: string;
  /** `config.system.build.<attribute>`. */
  readonly attribute: string;
  readonly describe: string;
}

export const IMAGE_FORMATS: { readonly [format in ImageFormat]: ImageFormatDefinition } = {
  amazon: { module: "maintainers/scripts/ec2/amazon-image.nix", attribute: "amazonImage", describe: "an EC2 disk image (VHD) with nix-support/image-info.json" },
  iso: { module: "modules/installer/cd-dvd/installation-cd-minimal.nix", attribute: "isoImage", describe: "a bootable ISO (the minimal installation CD with the host's configuration)" },
  raw: { module: "modules/virtualisation/disk-image.nix", settings: `{ image.format = "raw"; }`, attribute: "image", describe: "a raw disk image" },
};

export function isImageFormat(value: string): value is ImageFormat {
  return Object.prototype.hasOwnProperty.call(IMAGE_FORMATS, value);
}

/**
 * The NixOS evaluation of a configuration file with module arguments plus the format's module: the same
 * `<nixpkgs/nixos>` evaluation as the deployed system (configurationSystemExpression) with one module more. Its
 * `.config.system.build` holds the image and the toplevel the image boots (which the format's module may change).
 */
export function configurationImageEvaluation(configuration: string, moduleArgs: string, format: ImageFormat): string {
  const definition = IMAGE_FORMATS[format];
  // named through modulesPath as a configuration names it ("${modulesPath}/../maintainers/…"), so a configuration
  // that imports the module itself imports the same one (the module system keeps one import per name)
  const modules = [nixString(configuration), `({ modulesPath, ... }: { imports = [ (modulesPath + ${nixString(`/../${definition.module}`)}) ]; })`,
    ...(definition.settings ? [definition.settings] : [])];
  return `(import <nixpkgs/nixos> { configuration = { imports = [ ${modules.join(" ")} ]; _module.args = ${moduleArgs}; }; })`;
}

/**
 * The evaluation of a flake's nixosConfigurations.NAME extended (`extendModules`, as `nixos-rebuild build-image`
 * does) with the format's module from the nixpkgs the configuration was built with.
 */
export function flakeImageEvaluation(flake: string, format: ImageFormat): string {
  const definition = IMAGE_FORMATS[format];
  const modules = [`(c._module.specialArgs.modulesPath + ${nixString(`/../${definition.module}`)})`, ...(definition.settings ? [definition.settings] : [])];
  return `(let c = ${flakeConfigurationExpression(flake)}; in c.extendModules { modules = [ ${modules.join(" ")} ]; })`;
}

/** The image derivation of an evaluation (configurationImageEvaluation, flakeImageEvaluation). */
export function imageAttribute(evaluation: string, format: ImageFormat): string {
  return `${evaluation}.config.system.build.${IMAGE_FORMATS[format].attribute}`;
}

const MAX_METADATA_BYTES = 64 * 1024;

/** How an image's output is read: this machine's store, or a build host's (through its shell). */
export interface OutputReader {
  /** A small file's text; more than `maxBytes` is an error. */
  readText(path: string, maxBytes: number): Promise<string>;
  /** The names in a directory. */
  list(dir: string): Promise<string[]>;
  /** The size of a regular file; undefined when it is anything else. */
  regularFileSize(path: string): Promise<number | undefined>;
}

export const LOCAL_OUTPUTS: OutputReader = {
  readText: async (path, maxBytes) => {
    const text = await readFile(path, "utf8");
    if (Buffer.byteLength(text) > maxBytes) throw new Error(`${path} is larger than ${maxBytes} bytes`);
    return text;
  },
  list: (dir) => readdir(dir),
  regularFileSize: async (path) => {
    const stat = await lstat(path);
    return stat.isFile() ? stat.size : undefined;
  },
};

/**
 * The image file in a built image's output: an amazon image names it in nix-support/image-info.json, an ISO in
 * nix-support/hydra-build-products, a raw image is the output's one `.img`. Only a regular file inside the output is
 * accepted.
 */
export async function imageFileIn(outPath: string, format: ImageFormat, reader: OutputReader = LOCAL_OUTPUTS): Promise<{ readonly path: string; readonly size: number }> {
  let file: string | undefined;
  if (format === "amazon") {
    const info = JSON.parse(await reader.readText(join(outPath, "nix-support", "image-info.json"), MAX_METADATA_BYTES)) as { file?: unknown; disks?: { root?: { file?: unknown } } };
    const named = info.disks?.root?.file ?? info.file;
    if (typeof named === "string") file = named;
  } else if (format === "iso") {
    const products = await reader.readText(join(outPath, "nix-support", "hydra-build-products"), MAX_METADATA_BYTES);
    file = /^file iso (\S+)$/m.exec(products)?.[1];
  } else {
    const images = (await reader.list(outPath)).filter((name) => name.endsWith(".img"));
    if (images.length === 1) file = join(outPath, images[0]);
  }
  if (file === undefined || !file.startsWith(`${outPath}/`) || file.split("/").includes("..")) {
    throw new Error(`${outPath} does not name its ${format} image file where nixpkgs puts it`);
  }
  const size = await reader.regularFileSize(file);
  if (size === undefined) throw new Error(`${file} is not a regular file`);
  return { path: file, size };
}
