import { Command } from "commander";
import { resolve } from "node:path";
import { endpointProblem } from "../../aws/endpoint";
import { regionProblem } from "../../aws/regions";
import { defaultDependencies } from "../../deploy/default-dependencies";
import { imageNix, removeImageUpload, uploadImage } from "../../deploy/image-upload";
import { DEFAULT_SETTINGS } from "../../spec/settings";
import { parseJumpHost } from "../../spec/target";
import { isImageFormat, IMAGE_FORMATS } from "../../nix/image";
import { parseFlakeRef } from "../../nix/system";
import { redactor } from "../../redact";
import { DEPLOY_ENV } from "../../spec/manifest";
import { collect } from "../interruptible";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";
import { moduleArgs } from "./deploy";

interface UploadImageFlags {
  format: string;
  config?: string;
  include: string[];
  flake?: string;
  nixosArgsFile?: string;
  drvPath: string;
  bucket: string;
  key: string;
  region?: string;
  s3Endpoint?: string;
  json?: boolean;
  buildHost?: string;
  sshKey?: string;
  knownHosts?: string;
}

/**
 * `upload-image`: what NixosImage.fromConfiguration's resource runs at `terraform apply` (as NixosDeployment's runs
 * `deploy`); the S3 object is what aws_ebs_snapshot_import imports.
 */
export function registerUploadImageCommand(program: Command, output: Output): void {
  program.command("upload-image")
    .description("build a configuration's image and put its file in S3 (what NixosImage.fromConfiguration runs at terraform apply; `image` builds without uploading)")
    .requiredOption("--format <format>", `the image format: ${Object.keys(IMAGE_FORMATS).join(", ")}`)
    .option("--config <configuration.nix>", "the NixOS configuration file")
    .option("-I, --include <name=path>", "a NIX_PATH entry (nixpkgs=/path); repeatable", collect, [])
    .option("--flake <ref#name>", "a flake's nixosConfigurations.NAME")
    .option("--nixos-args-file <file.json>", `JSON object whose keys become NixOS module arguments (default: $${DEPLOY_ENV.moduleArgsJson})`)
    .requiredOption("--drv-path <drv>", "the image derivation the stack was synthesized for: another one is refused")
    .requiredOption("--bucket <name>", "the S3 bucket")
    .requiredOption("--key <key>", "the object's key")
    .option("--region <region>", "the bucket's region (default: $AWS_REGION)")
    .option("--s3-endpoint <url>", "an S3-compatible endpoint instead of AWS's (path-style addressing)")
    .option("--json", "print the result as one JSON line on stdout (file, bytes, key, uploaded)")
    .option("--build-host <[user@]host[:port]>", "build the image there (nixos-rebuild's --build-host); its file is read from that store as it is uploaded")
    .option("--ssh-key <file>", "the private key to log in to the build host with (default: ssh-agent)")
    .option("--known-hosts <file>", `the known_hosts file the build host's key is checked against (default: ${DEFAULT_SETTINGS.knownHostsFile})`)
    .action(async (flags: UploadImageFlags) => {
      if (!isImageFormat(flags.format)) throw new UsageError(`--format ${flags.format} is not one of ${Object.keys(IMAGE_FORMATS).join(", ")}`);
      if ((flags.config === undefined) === (flags.flake === undefined)) throw new UsageError("give exactly one of --config and --flake");
      if (flags.flake !== undefined && parseFlakeRef(flags.flake) === undefined) throw new UsageError(`--flake ${flags.flake} is not REF#NAME`);
      const region = flags.region === undefined ? undefined : regionProblem(flags.region);
      if (region !== undefined) throw new UsageError(`--region ${region}`);
      const endpoint = flags.s3Endpoint === undefined ? undefined : endpointProblem(flags.s3Endpoint);
      if (endpoint !== undefined) throw new UsageError(`--s3-endpoint ${endpoint}`);
      const argsJson = await moduleArgs(flags);
      const args = argsJson === undefined ? {} : JSON.parse(argsJson) as Record<string, unknown>;
      const nixPath = Object.fromEntries(flags.include.map((entry) => {
        const at = entry.indexOf("=");
        if (at < 1) throw new UsageError(`-I ${entry} is not name=path`);
        return [entry.slice(0, at), entry.slice(at + 1)];
      }));
      const buildHost = flags.buildHost === undefined ? undefined : (() => {
        try {
          return parseJumpHost(flags.buildHost, "--build-host");
        } catch (err) {
          throw new UsageError((err as Error).message);
        }
      })();
      const log = (line: string) => output.stderr.write(`${line}\n`);
      const { S3CacheStore } = await import("../../aws/s3-cache-store.js");
      const store = new S3CacheStore({ url: `s3://${flags.bucket}`, bucket: flags.bucket, region: flags.region, endpoint: flags.s3Endpoint, profile: undefined });
      try {
        const result = await uploadImage({
          source: flags.flake !== undefined ? { flake: flags.flake } : { configuration: resolve(flags.config!), nixPath },
          moduleArgs: args,
          format: flags.format,
          drvPath: flags.drvPath,
          key: flags.key,
        }, {
          ...imageNix(redactor({}), log, buildHost === undefined ? undefined : {
            target: {
              host: buildHost.host, port: buildHost.port, user: buildHost.user ?? DEFAULT_SETTINGS.user,
              privateKeyFile: flags.sshKey === undefined ? undefined : resolve(flags.sshKey),
              knownHostsFile: resolve(flags.knownHosts ?? DEFAULT_SETTINGS.knownHostsFile),
            },
            deps: defaultDependencies(),
          }),
          store,
          log,
        });
        if (flags.json === true) output.stdout.write(`${JSON.stringify(result)}\n`);
      } finally {
        await store.close();
      }
    });
}

/**
 * `remove-image-upload`: what an image's upload resource runs when Terraform destroys it (the image was replaced, or
 * the stack destroyed): the object goes only when its metadata names this image.
 */
export function registerRemoveImageUploadCommand(program: Command, output: Output): void {
  program.command("remove-image-upload")
    .description("delete an image's object from S3 if cdktf-nixos uploaded it for that image (what NixosImage.fromConfiguration's resource runs at destroy)")
    .requiredOption("--bucket <name>", "the S3 bucket")
    .requiredOption("--key <key>", "the object's key")
    .requiredOption("--image-path <store path>", "the image's store path, which the object's metadata must name")
    .option("--region <region>", "the bucket's region (default: $AWS_REGION)")
    .option("--s3-endpoint <url>", "an S3-compatible endpoint instead of AWS's (path-style addressing)")
    .action(async (flags: { bucket: string; key: string; imagePath: string; region?: string; s3Endpoint?: string }) => {
      const endpoint = flags.s3Endpoint === undefined ? undefined : endpointProblem(flags.s3Endpoint);
      if (endpoint !== undefined) throw new UsageError(`--s3-endpoint ${endpoint}`);
      const { S3CacheStore } = await import("../../aws/s3-cache-store.js");
      const store = new S3CacheStore({ url: `s3://${flags.bucket}`, bucket: flags.bucket, region: flags.region, endpoint: flags.s3Endpoint, profile: undefined });
      try {
        await removeImageUpload(flags.key, flags.imagePath, store, (line) => output.stderr.write(`${line}\n`));
      } finally {
        await store.close();
      }
    });
}
