import { ValidationError } from "./validation-error";
import { DataAwsAmi } from "./core";
import type { Construct } from "constructs";
import type { INixosImage, NixosImageConfig } from "./image-config";
import { NixosConfigurationImage, type NixosConfigurationImageProps } from "./nixos-configuration-image";
import { checkProps, describeValue, latestImageProps } from "./prop-types";
import {
  DEFAULT_NIXOS_RELEASE,
  NIXOS_AMI_OWNER,
  NixosArchitecture,
  ec2Architecture,
  nixosAmiNamePattern,
  validateRelease,
} from "../aws/nixos-ami-names";

export { NixosArchitecture };

export type { INixosImage, NixosImageConfig } from "./image-config";

export interface LatestNixosImageProps {
  /**
   * NixOS release, as in the AMI name.
   * @default - "25.05", the newest stable release this library knows
   */
  readonly release?: string;
  /**
   * @default NixosArchitecture.X86_64
   */
  readonly architecture?: NixosArchitecture;
  /**
   * Account that publishes the images.
   * @default "427812963091" - the NixOS project's official AMIs
   */
  readonly owner?: string;
}

/** NixOS AMIs: looked up at plan time (never a hard-coded table: official AMIs are deleted after 90 days) or pinned. */
export abstract class NixosImage {
  /**
   * The newest official AMI of a release and architecture: an `aws_ami` data source with the owner, a name filter
   * `nixos/<release>.*-<arch>-linux`, an architecture filter, and `most_recent`.
   */
  static latest(props: LatestNixosImageProps = {}): INixosImage {
    checkProps("NixosImage.latest", latestImageProps, props ?? {});
    const release = props.release ?? DEFAULT_NIXOS_RELEASE;
    try {
      validateRelease(release);
    } catch (err) {
      throw new ValidationError((err as Error).message, "NixosImage.latest");
    }
    return new LatestNixosImage(release, props.architecture ?? NixosArchitecture.X86_64, props.owner ?? NIXOS_AMI_OWNER);
  }

  /**
   * An AMI of your own NixOS configuration: nixpkgs' amazonImage, built and uploaded to S3 at apply, imported as an
   * EBS snapshot and registered (NixosConfigurationImage). Instances launched from it run the configuration from
   * their first boot.
   */
  static fromConfiguration(scope: Construct, id: string, props: NixosConfigurationImageProps): NixosConfigurationImage {
    return new NixosConfigurationImage(scope, id, props);
  }

  /** A pinned AMI, e.g. one you built with nixos-generators or copied into your account. */
  static fromAmiId(amiId: string, architecture?: NixosArchitecture): INixosImage {
    if (typeof amiId !== "string") throw new ValidationError(`the AMI ID must be a string, got ${describeValue(amiId)}`, "NixosImage.fromAmiId");
    if (architecture !== undefined && !Object.values(NixosArchitecture).includes(architecture)) {
      throw new ValidationError(`architecture must be one of ${Object.values(NixosArchitecture).map((a) => `"${a}"`).join(", ")}, got ${describeValue(architecture)}`, "NixosImage.fromAmiId");
    }
    if (!/^ami-[0-9a-f]{8,17}$/.test(amiId) && !amiId.includes("${")) {
      throw new ValidationError(`"${amiId}" is not an AMI ID (ami- followed by 8 or 17 hex digits)`, "NixosImage.fromAmiId");
    }
    return { bind: () => ({ imageId: amiId, architecture }) };
  }
}

class LatestNixosImage implements INixosImage {
  private readonly bound = new WeakMap<Construct, NixosImageConfig>();

  constructor(private readonly release: string, private readonly architecture: NixosArchitecture, private readonly owner: string) {}

  bind(scope: Construct): NixosImageConfig {
    let config = this.bound.get(scope);
    if (config === undefined) {
      const ami = new DataAwsAmi(scope, `NixosImage-${this.release.replace(".", "")}-${this.architecture}`, {
        owners: [this.owner],
        mostRecent: true,
        filter: [
          { name: "name", values: [nixosAmiNamePattern(this.release, this.architecture)] },
          { name: "architecture", values: [ec2Architecture(this.architecture)] },
          { name: "state", values: ["available"] },
        ],
      });
      config = { imageId: ami.id, architecture: this.architecture };
      this.bound.set(scope, config);
    }
    return config;
  }
}
