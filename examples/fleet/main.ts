import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { TerraformOutput, TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { NixosInstance, NixosKeyPair, NixosProtocol, NixosSecurityGroup } from "../../src";

/** Three hosts with roles: a web server open to HTTP(S), an app server, and a Graviton database host. */
export class FleetStack extends TerraformStack {
  constructor(scope: Construct, id: string) {
    super(scope, id);
    new AwsProvider(this, "aws", { region: process.env.AWS_REGION ?? "eu-central-1" });
    const admin = ["203.0.113.0/24", "2001:db8::/32"];
    const keyPair = NixosKeyPair.generate(this, "fleet", { privateKeyFile: ".cdktf-nixos/keys/fleet" });
    const webGroup = new NixosSecurityGroup(this, "web-sg", {
      sshAllowedCidrs: admin,
      ingress: [
        { port: 80, cidrs: ["0.0.0.0/0", "::/0"] },
        { port: 443, cidrs: ["0.0.0.0/0", "::/0"] },
        { port: 443, protocol: NixosProtocol.UDP, cidrs: ["0.0.0.0/0", "::/0"], description: "HTTP/3" },
      ],
    });
    const hosts = {
      web: new NixosInstance(this, "web", { instanceType: "t3.small", securityGroupIds: [webGroup.securityGroupId], keyPair, tags: { role: "web" } }),
      app: new NixosInstance(this, "app", { instanceType: "t3.medium", sshAllowedCidrs: admin, keyPair, tags: { role: "app" } }),
      db: new NixosInstance(this, "db", { instanceType: "m7g.large", rootVolumeSize: 100, sshAllowedCidrs: admin, keyPair, tags: { role: "db" } }),
    };
    for (const [role, host] of Object.entries(hosts)) {
      new TerraformOutput(this, `${role}_public_dns`, { value: host.publicDns });
      new TerraformOutput(this, `${role}_private_ip`, { value: host.privateIp });
    }
  }
}
