import { ValidationError } from "./validation-error";
import { Annotations, DataAwsRegion, Instance, Token } from "./core";
import { Construct } from "constructs";
import { DEFAULT_NIXOS_RELEASE, NixosArchitecture, validateRelease } from "../aws/nixos-ami-names";
import { architectureOfInstanceType } from "./instance-architecture";
import { NixosDeployment, type NixosDeploymentOptions } from "./nixos-deployment";
import type { INixosBinaryCache } from "./nixos-binary-cache";
import { NixosImage, type INixosImage, type NixosImageConfig } from "./nixos-image";
import { NixosKeyPair, type IKeyPair } from "./nixos-key-pair";
import { NixosSecurityGroup, type INixosSecurityGroup } from "./nixos-security-group";
import { checkProps, instanceProps } from "./prop-types";

export interface NixosInstanceProps {
  /**
   * NixOS release of the image, when `image` is not given.
   * @default "25.05"
   */
  readonly release?: string;
  /**
   * @default - the latest official NixOS AMI of `release` for the instance type's architecture
   */
  readonly image?: INixosImage;
  /**
   * Graviton families (t4g, m7g, c8g…) get aarch64 images.
   * @default "t3.micro"
   */
  readonly instanceType?: string;
  /**
   * Size of the gp3, encrypted root volume, in GiB.
   * @default 20
   */
  readonly rootVolumeSize?: number;
  /**
   * @default - a key pair generated on this machine into `.cdktf-nixos/keys/<construct id>` (see NixosKeyPair.generate)
   */
  readonly keyPair?: IKeyPair;
  /**
   * CIDR blocks allowed to reach SSH, for the security group created when `securityGroups` is not given.
   * @default - none: the instance gets no SSH ingress (a warning says so)
   */
  readonly sshAllowedCidrs?: string[];
  /**
   * Security groups to use instead of creating one: NixosSecurityGroups of the stack, or existing ones
   * (`NixosSecurityGroup.fromSecurityGroupId(this, "Web", "sg-0123456789abcdef0")`).
   * @default - a NixosSecurityGroup with `sshAllowedCidrs`
   */
  readonly securityGroups?: INixosSecurityGroup[];
  /** @default - the default subnet of the default VPC */
  readonly subnetId?: string;
  /** VPC of the created security group. @default - the default VPC */
  readonly vpcId?: string;
  /** @default - the subnet's setting */
  readonly associatePublicIpAddress?: boolean;
  /** @default - no user data */
  readonly userData?: string;
  /** Tags of the instance and what it creates. @default - Name = the construct id */
  readonly tags?: { [key: string]: string };
  /**
   * A NixOS configuration to put on the instance once it runs (a NixosDeployment to its public IP, logging in with
   * the key pair's private key when known, the host key verified against the instance's console output).
   * @default - none: the instance runs the image's configuration
   */
  readonly nixos?: NixosInstanceDeployment;
  /**
   * A binary cache for this host: the instance gets the cache's instance profile (to read an S3 cache with its own
   * role), and `nixos`'s deployment uploads to and fetches from it, with `binaryCache = { substituter; publicKey; }`
   * among its module arguments (a configuration sets `nix.settings` from them).
   * @default - none
   */
  readonly binaryCache?: INixosBinaryCache;
  /** An instance profile of your own (it must allow reading the binary cache, if any). @default - the binaryCache's, else none */
  readonly iamInstanceProfile?: string;
}

export interface NixosInstanceDeployment extends NixosDeploymentOptions {
  /**
   * Deploy to the private IP instead of the public one (from inside the VPC, or through a bastion).
   * @default false
   */
  readonly usePrivateIp?: boolean;
}

const DEFAULT_INSTANCE_TYPE = "t3.micro";
const DEFAULT_ROOT_VOLUME_GIB = 20;

/** An EC2 instance running NixOS, with secure defaults: IMDSv2 only, encrypted gp3 root, no SSH unless allowed. */
export class NixosInstance extends Construct {
  readonly instance: Instance;
  readonly image: NixosImageConfig;
  readonly architecture: NixosArchitecture;
  readonly keyPair: IKeyPair;
  /** The created security group, when `securityGroups` was not given. */
  readonly securityGroup?: NixosSecurityGroup;
  readonly instanceType: string;
  readonly rootVolumeSize: number;
  readonly instanceId: string;
  readonly publicIp: string;
  readonly privateIp: string;
  readonly publicDns: string;
  /** The deployment of `nixos`, when given. */
  readonly deployment?: NixosDeployment;

  constructor(scope: Construct, id: string, props: NixosInstanceProps = {}) {
    super(scope, id);
    const path = this.node.path;
    const fail = (message: string): never => {
      throw new ValidationError(message, this);
    };
    checkProps(`${path} (NixosInstance)`, instanceProps, props ?? {});
    this.instanceType = props.instanceType ?? DEFAULT_INSTANCE_TYPE;
    if (!Token.isUnresolved(this.instanceType) && !/^[a-z][a-z0-9-]*\.[a-z0-9]+$/.test(this.instanceType)) {
      fail(`instanceType "${this.instanceType}" is not an EC2 instance type (e.g. "t3.micro", "m7g.large")`);
    }
    this.rootVolumeSize = props.rootVolumeSize ?? DEFAULT_ROOT_VOLUME_GIB;
    if (!Token.isUnresolved(this.rootVolumeSize) && (!Number.isInteger(this.rootVolumeSize) || this.rootVolumeSize < 1 || this.rootVolumeSize > 16384)) {
      fail(`rootVolumeSize ${this.rootVolumeSize} is out of range: a whole number of GiB from 1 to 16384 (gp3)`);
    }
    if (props.image !== undefined && props.release !== undefined) {
      fail(`give either image or release, not both (release "${props.release}" would be ignored)`);
    }
    if (props.securityGroups !== undefined && props.sshAllowedCidrs !== undefined) {
      fail("sshAllowedCidrs only applies to the security group created when securityGroups is not given");
    }
    if (props.securityGroups !== undefined && props.securityGroups.length === 0) {
      Annotations.of(this).addWarning(`${path}: securityGroups is empty: the instance gets no security group rule at all, so nothing can reach SSH on it`);
    }
    const release = props.release ?? DEFAULT_NIXOS_RELEASE;
    try {
      validateRelease(release);
    } catch (err) {
      fail((err as Error).message);
    }

    this.architecture = architectureOfInstanceType(this.instanceType);
    this.image = (props.image ?? NixosImage.latest({ release, architecture: this.architecture })).bind(this);
    if (this.image.architecture !== undefined && this.image.architecture !== this.architecture) {
      fail(`image is ${this.image.architecture} but instanceType "${this.instanceType}" is ${this.architecture}`);
    }
    this.keyPair = props.keyPair ?? NixosKeyPair.generate(this, "KeyPair", { privateKeyFile: `.cdktf-nixos/keys/${id}` });
    if (props.securityGroups === undefined) {
      this.securityGroup = new NixosSecurityGroup(this, "SecurityGroup", {
        sshAllowedCidrs: props.sshAllowedCidrs,
        vpcId: props.vpcId,
        tags: props.tags,
      });
    }
    this.instance = new Instance(this, "Resource", {
      ami: this.image.imageId,
      instanceType: this.instanceType,
      keyName: this.keyPair.keyName,
      vpcSecurityGroupIds: (props.securityGroups ?? [this.securityGroup!]).map((group) => group.securityGroupId),
      subnetId: props.subnetId,
      associatePublicIpAddress: props.associatePublicIpAddress,
      userData: props.userData,
      iamInstanceProfile: props.iamInstanceProfile ?? props.binaryCache?.instanceProfileName,
      rootBlockDevice: { volumeType: "gp3", volumeSize: this.rootVolumeSize, encrypted: true, deleteOnTermination: true },
      metadataOptions: { httpEndpoint: "enabled", httpTokens: "required", httpPutResponseHopLimit: 1 },
      tags: { Name: id, ...props.tags },
    });
    this.instanceId = this.instance.id;
    this.publicIp = this.instance.publicIp;
    this.privateIp = this.instance.privateIp;
    this.publicDns = this.instance.publicDns;

    if (props.nixos !== undefined) {
      const { usePrivateIp, ...options } = props.nixos;
      const cache = props.binaryCache;
      this.deployment = new NixosDeployment(this, "Deployment", {
        sshPrivateKeyFile: this.keyPair.privateKeyFile,
        tags: props.tags,
        ...(cache !== undefined ? { binaryCache: cache } : {}),
        ...options,
        // a flake takes no module arguments (specialArgs in flake.nix); a configuration gets the cache's
        ...(cache !== undefined && options.configuration !== undefined ? { nixosArgs: { ...cache.nixosArgs, ...options.nixosArgs } } : {}),
        host: usePrivateIp ? this.privateIp : this.publicIp,
        instanceId: this.instanceId,
        region: new DataAwsRegion(this, "Region").name,
      });
    }
  }
}
