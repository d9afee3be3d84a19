import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { TerraformOutput, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { NixosImage, NixosInstance, NixosKeyPair } from "../../src";

/**
 * An AMI of `configuration` (NixosImage.fromConfiguration) and two instances launched from it: `web` with no
 * deployment (it runs what the image holds), `app` with a NixosDeployment of the same configuration (its first
 * deployment finds the system already there). The AWS provider talks to the EC2 test double; the image goes to an
 * S3-compatible server.
 */
export class BakedImageStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: { configuration: string; nixpkgs: string; ec2Endpoint: string; s3Endpoint: string; bucket: string }) {
    super(scope, id);
    new AwsProvider(this, "aws", {
      region: "eu-central-1", accessKey: "test", secretKey: "test", skipCredentialsValidation: true, skipRequestingAccountId: true,
      skipMetadataApiCheck: "true", skipRegionValidation: true, endpoints: [{ ec2: props.ec2Endpoint, sts: props.ec2Endpoint }],
    });
    const nixPath = { nixpkgs: props.nixpkgs };
    const image = NixosImage.fromConfiguration(this, "image", {
      configuration: props.configuration, nixPath, bucket: props.bucket, region: "us-east-1", s3Endpoint: props.s3Endpoint, tags: { team: "infra" },
    });
    const keyPair = NixosKeyPair.generate(this, "fleet", { privateKeyFile: ".cdktf-nixos/keys/fleet" });
    const ssh = ["127.0.0.0/8"];
    const web = new NixosInstance(this, "web", { image, keyPair, sshAllowedCidrs: ssh });
    new NixosInstance(this, "app", { image, keyPair, sshAllowedCidrs: ssh, nixos: { configuration: props.configuration, nixPath } });
    new TerraformOutput(this, "web_address", { value: web.publicIp });
    new TerraformOutput(this, "ami", { value: image.ami.id });
  }
}
