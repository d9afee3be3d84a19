/**
 * One synth of a generated fleet, for bench/synth.ts: `tsx bench/synth-app.ts constructs|bare HOSTS OUTDIR`.
 * Both variants describe the same infrastructure: per host an AMI lookup, a security group and an instance, and one
 * shared key pair.
 */
import { DataAwsAmi } from "@cdktf/provider-aws/lib/data-aws-ami";
import { Instance } from "@cdktf/provider-aws/lib/instance";
import { KeyPair } from "@cdktf/provider-aws/lib/key-pair";
import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { SecurityGroup } from "@cdktf/provider-aws/lib/security-group";
import { App, TerraformStack } from "cdktf";
import { NixosInstance, NixosKeyPair } from "../src";

const [variant, hosts, outdir] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0Gk5m5ZpVz8c3fY4Ok7Rr8m0Yq0k7d0p2n6Qv5m4c3 bench";
const app = new App({ outdir });
const stack = new TerraformStack(app, "fleet");
new AwsProvider(stack, "aws", { region: "eu-central-1" });

if (variant === "constructs") {
  const keyPair = NixosKeyPair.fromPublicKey(stack, "ops", KEY);
  for (let i = 0; i < hosts; i++) {
    new NixosInstance(stack, `host${i}`, { instanceType: "t3.micro", rootVolumeSize: 50, sshAllowedCidrs: ["203.0.113.0/24"], keyPair });
  }
} else {
  const keyPair = new KeyPair(stack, "ops", { keyNamePrefix: "ops-", publicKey: KEY });
  for (let i = 0; i < hosts; i++) {
    const ami = new DataAwsAmi(stack, `ami${i}`, {
      owners: ["427812963091"],
      mostRecent: true,
      filter: [
        { name: "name", values: ["nixos/25.05.*-x86_64-linux"] },
        { name: "architecture", values: ["x86_64"] },
        { name: "state", values: ["available"] },
      ],
    });
    const group = new SecurityGroup(stack, `sg${i}`, {
      namePrefix: `host${i}-`,
      ingress: [{ fromPort: 22, toPort: 22, protocol: "tcp", cidrBlocks: ["203.0.113.0/24"] }],
      egress: [{ fromPort: 0, toPort: 0, protocol: "-1", cidrBlocks: ["0.0.0.0/0"], ipv6CidrBlocks: ["::/0"] }],
    });
    new Instance(stack, `host${i}`, {
      ami: ami.id,
      instanceType: "t3.micro",
      keyName: keyPair.keyName,
      vpcSecurityGroupIds: [group.id],
      rootBlockDevice: { volumeType: "gp3", volumeSize: 50, encrypted: true },
      metadataOptions: { httpEndpoint: "enabled", httpTokens: "required" },
    });
  }
}
app.synth();
