import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { S3Bucket } from "@cdktf/provider-aws/lib/s3-bucket";
import { S3BucketPublicAccessBlock } from "@cdktf/provider-aws/lib/s3-bucket-public-access-block";
import { join } from "node:path";
import { TerraformOutput, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { NixosImage, NixosInstance, NixosKeyPair } from "../../src";

export interface BakedAmiStackProps {
  /** @default 2 */
  readonly hosts?: number;
  /**
   * The nixpkgs the image is built with.
   * @default - $NIXPKGS, else the nixos-25.05 channel
   */
  readonly nixpkgs?: string;
}

/**
 * Web hosts that run their configuration from the first boot: the configuration is built as an AMI at apply
 * (NixosImage.fromConfiguration: built, uploaded to a private bucket, imported, registered) and the instances are
 * launched from it, with no deployment step. A changed configuration is a new AMI and new instances.
 */
export class BakedAmiStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: BakedAmiStackProps = {}) {
    super(scope, id);
    const region = process.env.AWS_REGION ?? "eu-central-1";
    new AwsProvider(this, "aws", { region });
    const bucket = new S3Bucket(this, "images", { bucket: "example-baked-ami-images" });
    new S3BucketPublicAccessBlock(this, "images-private", {
      bucket: bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true,
    });
    const image = NixosImage.fromConfiguration(this, "web-image", {
      configuration: join(__dirname, "nixos", "web.nix"),
      nixPath: { nixpkgs: props.nixpkgs ?? process.env.NIXPKGS ?? "channel:nixos-25.05" },
      nixosArgs: { greeting: "baked into the AMI" },
      bucket: bucket.bucket,
      region,
    });
    const keyPair = NixosKeyPair.generate(this, "web", { privateKeyFile: ".cdktf-nixos/keys/baked-ami" });
    for (let i = 1; i <= (props.hosts ?? 2); i++) {
      new NixosInstance(this, `web${i}`, { image, instanceType: "t3.small", keyPair, sshAllowedCidrs: ["203.0.113.0/24"], tags: { role: "web" } });
    }
    new TerraformOutput(this, "ami", { value: image.ami.id });
  }
}
