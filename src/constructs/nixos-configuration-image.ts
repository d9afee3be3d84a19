import { ValidationError } from "./validation-error";
import { existsSync } from "node:fs";
import { basename, resolve } from "node:path";
import { Ami, DataResource, EbsSnapshotImport, Lazy, TerraformStack, Token } from "./core";
import { Construct } from "constructs";
import { endpointProblem } from "../aws/endpoint";
import { NixosArchitecture, ec2Architecture } from "../aws/nixos-ami-names";
import { regionProblem } from "../aws/regions";
import { absoluteFlakeRef, parseFlakeRef, reservedModuleArgsProblem } from "../nix/system";
import { DEPLOY_ENV } from "../spec/manifest";
import { renderCommand } from "../spec/command-line";
import { privateKeyFileProblem } from "../spec/private-key-file";
import { CONSTRUCT_DEFAULTS } from "../spec/settings";
import { parseJumpHost } from "../spec/target";
import { StackDeployments, cliPath } from "./nixos-deployment";
import type { INixosImage, NixosImageConfig } from "./image-config";
import { checkProps, configurationImageProps, jsonValueProblem } from "./prop-types";

/** nixpkgs' amazonImage.format → what EC2's snapshot import calls it, and the object's extension. */
const IMPORT_FORMATS: { readonly [nixpkgsFormat: string]: { readonly format: string; readonly extension: string } | undefined } = {
  vpc: { format: "VHD", extension: "vhd" },
  raw: { format: "RAW", extension: "img" },
};

/** How Terraform hands the upload command what it learns or keeps in state (never on the command line). */
const IMAGE_ENV = { drvPath: "CDKTF_NIXOS_IMAGE_DRV", bucket: "CDKTF_NIXOS_IMAGE_BUCKET", key: "CDKTF_NIXOS_IMAGE_KEY", imagePath: "CDKTF_NIXOS_IMAGE_PATH" } as const;

export interface NixosConfigurationImageProps {
  /** The NixOS configuration file (give this or `flake`). */
  readonly configuration?: string;
  /** A flake's `REF#NAME` (nixosConfigurations.NAME); give this or `configuration`. */
  readonly flake?: string;
  /**
   * NIX_PATH entries for `configuration`, e.g. `{ nixpkgs: "/path/to/nixpkgs" }`.
   * @default - none (the evaluation then fails unless NIX_PATH is set)
   */
  readonly nixPath?: { [name: string]: string };
  /**
   * Module arguments: literal values only, because the image is built before anything is applied (an instance's
   * address cannot be in it; deploy such values with a NixosDeployment).
   * @default - none
   */
  readonly nixosArgs?: { [name: string]: unknown };
  /**
   * The system the configuration is for; checked against the evaluated one at synth.
   * @default NixosArchitecture.X86_64
   */
  readonly architecture?: NixosArchitecture;
  /** An existing S3 bucket the image file is uploaded to, for EC2's snapshot import to read. */
  readonly bucket: string;
  /**
   * Where in the bucket: the key is `<keyPrefix><image store path name>.vhd` (`.img` for amazonImage.format = "raw").
   * @default "nixos-images/"
   */
  readonly keyPrefix?: string;
  /**
   * The bucket's region, for the upload.
   * @default - $AWS_REGION when the upload runs
   */
  readonly region?: string;
  /**
   * An S3-compatible endpoint for the upload instead of AWS's (path-style addressing).
   * @default - AWS's S3 endpoint for the region
   */
  readonly s3Endpoint?: string;
  /**
   * The IAM role EC2's VM Import uses to read the bucket.
   * @default "vmimport" - the service role AWS's VM Import documentation sets up
   */
  readonly importRoleName?: string;
  /**
   * Prefix of the AMI's name; the name goes on with the system's store path name.
   * @default "cdktf-nixos"
   */
  readonly namePrefix?: string;
  /**
   * Build the image on another machine (nixos-rebuild's --build-host, `[user@]host[:port]`): the derivations go
   * there, and the image file is read from its store as it is uploaded (it never enters the store of the machine that
   * runs terraform apply).
   * @default - built on the machine that runs terraform apply
   */
  readonly buildHost?: string;
  /**
   * The private key to log in to the build host with.
   * @default - ssh-agent
   */
  readonly sshPrivateKeyFile?: string;
  /**
   * The known_hosts file the build host's key is checked against.
   * @default ".cdktf-nixos/known_hosts" - as deployments
   */
  readonly knownHostsFile?: string;
  /**
   * Tags of the snapshot and the AMI (besides Name and the store paths).
   * @default - none
   */
  readonly tags?: { [key: string]: string };
}

/**
 * A NixOS configuration as an AMI (NixosImage.fromConfiguration): nixpkgs' `config.system.build.amazonImage`
 * evaluated at synth (with the stack's deployments: one evaluation), built and uploaded to S3 at apply by
 * `cdktf-nixos upload-image`, imported as an EBS snapshot and registered as an AMI. A changed configuration is a new
 * image, so a new key, snapshot and AMI (and the instances launched from it are replaced); Terraform deregisters the
 * old AMI and deletes its snapshot, and the old object goes with its upload resource when it is still the one
 * uploaded for that image (`remove-image-upload`).
 */
export class NixosConfigurationImage extends Construct implements INixosImage {
  readonly upload: DataResource;
  readonly snapshot: EbsSnapshotImport;
  readonly ami: Ami;
  readonly architecture: NixosArchitecture;
  /** The image's derivation (at synth). */
  readonly drvPath: string;
  /** The NixOS system (toplevel) the image boots. */
  readonly systemPath: string;
  /** The S3 key the image file is uploaded to. */
  readonly objectKey: string;

  constructor(scope: Construct, id: string, props: NixosConfigurationImageProps) {
    super(scope, id);
    validate(this, props);
    const configuration = props.configuration === undefined ? undefined : resolve(props.configuration);
    const flake = props.flake === undefined ? undefined : absoluteFlakeRef(props.flake);
    const nixPath = Object.fromEntries(Object.entries(props.nixPath ?? {}).map(([name, path]) => [name, /^[a-z]+:/.test(path) ? path : resolve(path)]));
    const args = props.nixosArgs ?? {};
    this.architecture = props.architecture ?? NixosArchitecture.X86_64;
    const fleet = StackDeployments.of(TerraformStack.of(this));
    const evaluated = fleet.evaluation({ name: this.node.path, configuration, flake, nixPath, moduleArgs: args, image: "amazon" }, {});
    const checked = () => {
      const system = evaluated();
      if (system.system !== `${this.architecture}-linux`) {
        throw new ValidationError(`the configuration is for ${system.system}, but architecture is ${this.architecture}: set architecture to ` +
          `NixosArchitecture.${system.system.startsWith("aarch64") ? "AARCH64" : "X86_64"} (or nixpkgs.hostPlatform in the configuration)`, this);
      }
      const format = system.image!.diskFormat;
      if (!Object.hasOwn(IMPORT_FORMATS, format)) {
        throw new ValidationError(`the configuration sets amazonImage.format = "${format}", which EC2's snapshot import does not read: ` +
          `use "vpc" (nixpkgs' default, a VHD) or "raw"`, this);
      }
      return system;
    };
    // before any token resolves (a clean message), and again wherever a value is produced (Testing.synth prepares no stack)
    fleet.afterEvaluation(checked);
    const image = () => checked().image!;
    this.drvPath = Lazy.stringValue({ produce: () => image().drvPath });
    this.systemPath = Lazy.stringValue({ produce: () => checked().outPath });
    const importFormat = () => IMPORT_FORMATS[image().diskFormat]!;
    this.objectKey = Lazy.stringValue({ produce: () => `${props.keyPrefix ?? "nixos-images/"}${basename(image().outPath)}.${importFormat().extension}` });
    const s3Location = [...(props.region !== undefined ? ["--region", props.region] : []), ...(props.s3Endpoint !== undefined ? ["--s3-endpoint", props.s3Endpoint] : [])];
    const command = renderCommand([process.execPath, cliPath(), "upload-image", "--format", "amazon",
      ...(configuration !== undefined ? ["--config", configuration, ...Object.entries(nixPath).flatMap(([n, p]) => ["-I", `${n}=${p}`])] : ["--flake", flake!]),
      "--drv-path", { env: IMAGE_ENV.drvPath }, "--bucket", { env: IMAGE_ENV.bucket }, "--key", { env: IMAGE_ENV.key },
      ...s3Location,
      ...(props.buildHost !== undefined ? ["--build-host", props.buildHost, "--known-hosts", resolve(props.knownHostsFile ?? CONSTRUCT_DEFAULTS.knownHostsFile)] : []),
      ...(props.buildHost !== undefined && props.sshPrivateKeyFile !== undefined ? ["--ssh-key", resolve(props.sshPrivateKeyFile)] : [])]);
    const imagePath = Lazy.stringValue({ produce: () => image().outPath });
    const remove = renderCommand([process.execPath, cliPath(), "remove-image-upload", "--bucket", { env: IMAGE_ENV.bucket }, "--key", { env: IMAGE_ENV.key },
      "--image-path", { env: IMAGE_ENV.imagePath }, ...s3Location]);
    this.upload = new DataResource(this, "Upload", {
      input: { drv_path: this.drvPath, bucket: props.bucket, key: this.objectKey, image_path: imagePath, nixos_args: args },
      triggersReplace: { drv_path: this.drvPath, bucket: props.bucket, key: this.objectKey },
    });
    this.upload.addOverride("provisioner", [{
      "local-exec": {
        command,
        environment: {
          [IMAGE_ENV.drvPath]: "${self.input.drv_path}",
          [IMAGE_ENV.bucket]: "${self.input.bucket}",
          [IMAGE_ENV.key]: "${self.input.key}",
          [DEPLOY_ENV.moduleArgsJson]: "${jsonencode(self.input.nixos_args)}",
        },
      },
    }, {
      // the object goes with its resource (a replaced image, a destroyed stack), if it is still the one uploaded for it
      "local-exec": {
        when: "destroy",
        command: remove,
        environment: { [IMAGE_ENV.bucket]: "${self.input.bucket}", [IMAGE_ENV.key]: "${self.input.key}", [IMAGE_ENV.imagePath]: "${self.input.image_path}" },
      },
    }]);
    const systemName = Lazy.stringValue({ produce: () => basename(checked().outPath) });
    const tags = { ...(props.tags ?? {}), "nixos:system": this.systemPath, "nixos:image": imagePath };
    const name = `${props.namePrefix ?? "cdktf-nixos"}/${systemName}`;
    this.snapshot = new EbsSnapshotImport(this, "Snapshot", {
      diskContainer: { format: Lazy.stringValue({ produce: () => importFormat().format }), userBucket: { s3Bucket: props.bucket, s3Key: this.objectKey } },
      roleName: props.importRoleName ?? "vmimport",
      description: `NixOS ${this.systemPath}`,
      tags: { ...tags, Name: name },
      dependsOn: [this.upload],
    });
    this.ami = new Ami(this, "Ami", {
      name,
      description: `NixOS ${this.systemPath}`,
      architecture: ec2Architecture(this.architecture),
      bootMode: Lazy.stringValue({ produce: () => image().bootMode }),
      enaSupport: true,
      imdsSupport: "v2.0",
      virtualizationType: "hvm",
      rootDeviceName: "/dev/xvda",
      ebsBlockDevice: [{ deviceName: "/dev/xvda", snapshotId: this.snapshot.id, volumeType: "gp3", deleteOnTermination: true }],
      tags: { ...tags, Name: name },
    });
  }

  bind(): NixosImageConfig {
    return { imageId: this.ami.id, architecture: this.architecture };
  }
}

function validate(scope: NixosConfigurationImage, props: NixosConfigurationImageProps): void {
  const fail = (message: string) => {
    throw new ValidationError(message, scope);
  };
  if (props === undefined || props === null) fail("props are required: bucket, and configuration or flake");
  checkProps(`${scope.node.path} (NixosConfigurationImage)`, configurationImageProps, props);
  if ((props.configuration === undefined) === (props.flake === undefined)) fail("give exactly one of configuration and flake");
  if (props.flake !== undefined && parseFlakeRef(props.flake) === undefined) fail(`flake "${props.flake}" is not REF#NAME (e.g. "./infra#web")`);
  if (props.flake !== undefined && props.nixosArgs !== undefined) fail("nixosArgs works with configuration; a flake takes values through specialArgs in flake.nix");
  if (props.configuration !== undefined && !existsSync(resolve(props.configuration))) {
    fail(`configuration "${props.configuration}" does not exist (looked at ${resolve(props.configuration)})`);
  }
  for (const [name, value] of Object.entries(props.nixosArgs ?? {})) {
    const problem = jsonValueProblem(value, `nixosArgs.${name}`);
    if (problem !== undefined) fail(problem);
    if (containsToken(value)) {
      fail(`nixosArgs.${name} is a Terraform value known only at apply, but an image is built before anything is applied: ` +
        "give a literal value, or pass it to the instance with a NixosDeployment");
    }
  }
  const reserved = reservedModuleArgsProblem(Object.keys(props.nixosArgs ?? {}));
  if (reserved !== undefined) fail(reserved);
  if (props.architecture !== undefined && !Object.values(NixosArchitecture).includes(props.architecture)) {
    fail(`architecture must be one of ${Object.values(NixosArchitecture).map((a) => `"${a}"`).join(", ")}, got ${JSON.stringify(props.architecture)}`);
  }
  if (!Token.isUnresolved(props.bucket) && !/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(props.bucket)) {
    fail(`bucket "${props.bucket}" is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)`);
  }
  if (props.keyPrefix !== undefined && (props.keyPrefix.startsWith("/") || props.keyPrefix.length > 512)) {
    fail(`keyPrefix "${props.keyPrefix}" must not start with / (S3 keys are relative to the bucket)`);
  }
  const region = props.region === undefined || Token.isUnresolved(props.region) ? undefined : regionProblem(props.region);
  if (region !== undefined) fail(`region ${region}`);
  const endpoint = props.s3Endpoint === undefined ? undefined : endpointProblem(props.s3Endpoint);
  if (endpoint !== undefined) fail(`s3Endpoint ${endpoint}`);
  if (props.buildHost !== undefined && !Token.isUnresolved(props.buildHost)) {
    try {
      parseJumpHost(props.buildHost, "buildHost");
    } catch (err) {
      fail((err as Error).message);
    }
  }
  if ((props.sshPrivateKeyFile !== undefined || props.knownHostsFile !== undefined) && props.buildHost === undefined) {
    fail("sshPrivateKeyFile and knownHostsFile are how the build host is reached: give buildHost too, or leave them out");
  }
  if (props.sshPrivateKeyFile !== undefined) {
    const problem = privateKeyFileProblem(resolve(props.sshPrivateKeyFile));
    if (problem !== undefined) fail(`sshPrivateKeyFile "${props.sshPrivateKeyFile}" ${problem}`);
  }
  if (props.namePrefix !== undefined && !/^[A-Za-z0-9()[\]./\-'@_]{1,40}$/.test(props.namePrefix)) {
    fail(`namePrefix "${props.namePrefix}" may hold only letters, digits and ( ) [ ] . / - ' @ _ (AMI names), at most 40 of them`);
  }
}

function containsToken(value: unknown): boolean {
  if (typeof value === "string") return Token.isUnresolved(value);
  if (typeof value === "number") return Token.isUnresolved(value);
  if (Array.isArray(value)) return value.some(containsToken);
  if (typeof value === "object" && value !== null) return Object.values(value).some(containsToken);
  return false;
}
