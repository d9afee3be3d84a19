import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { TerraformOutput, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { NixosInstance, NixosKeyPair } from "../../src";

/**
 * The classic single NixOS host: SSH from one network, an ed25519 key pair, a t3.micro with a 50 GiB root volume,
 * and its public DNS name as output.
 */
export class SingleHostStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    new AwsProvider(this, "aws", { region: process.env.AWS_REGION ?? "eu-central-1" });
    const web = new NixosInstance(this, "web", {
      release: "25.05",
      instanceType: "t3.micro",
      rootVolumeSize: 50,
      sshAllowedCidrs: ["203.0.113.0/24"],
      keyPair: NixosKeyPair.generate(this, "ops", { privateKeyFile: ".cdktf-nixos/keys/ops" }),
    });
    new TerraformOutput(this, "public_dns", { value: web.publicDns });
  }
}
