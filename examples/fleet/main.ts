import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { join } from "node:path";
import { TerraformOutput, TerraformStack, TerraformVariable } from "cdktf";
import { Construct } from "constructs";
import { NixosInstance, NixosKeyPair, NixosProtocol, NixosSecurityGroup } from "../../src";

export interface FleetStackProps {
  /**
   * Directory with web.nix, app.nix and db.nix.
   * @default - examples/fleet/nixos
   */
  readonly nixosDir?: string;
  /**
   * The nixpkgs the configurations are built with.
   * @default - $NIXPKGS, else the nixos-25.05 channel
   */
  readonly nixpkgs?: string;
  /**
   * @default "m7g.large" - Graviton
   */
  readonly dbInstanceType?: string;
}

/**
 * Three NixOS hosts with roles, each deployed with its own configuration by `cdktf deploy`: a web server open to
 * HTTP(S) that is told the app server's private IP, an app server, and a Graviton database host.
 */
export class FleetStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: FleetStackProps = {}) {
    super(scope, id);
    new AwsProvider(this, "aws", { region: process.env.AWS_REGION ?? "eu-central-1" });
    const admin = ["203.0.113.0/24", "2001:db8::/32"];
    const keyPair = NixosKeyPair.generate(this, "fleet", { privateKeyFile: ".cdktf-nixos/keys/fleet" });
    const greeting = new TerraformVariable(this, "greeting", { type: "string", default: "hello", description: "shown in /etc/motd of web and app" });
    const nixosDir = props.nixosDir ?? join(__dirname, "nixos");
    const nixPath = { nixpkgs: props.nixpkgs ?? process.env.NIXPKGS ?? "channel:nixos-25.05" };
    const webGroup = new NixosSecurityGroup(this, "web-sg", {
      sshAllowedCidrs: admin,
      ingress: [
        { port: 80, cidrs: ["0.0.0.0/0", "::/0"] },
        { port: 443, cidrs: ["0.0.0.0/0", "::/0"] },
        { port: 443, protocol: NixosProtocol.UDP, cidrs: ["0.0.0.0/0", "::/0"], description: "HTTP/3" },
      ],
    });
    const app = new NixosInstance(this, "app", {
      instanceType: "t3.medium", sshAllowedCidrs: admin, keyPair, tags: { role: "app" },
      nixos: { configuration: join(nixosDir, "app.nix"), nixPath, nixosArgs: { greeting: greeting.stringValue } },
    });
    const web = new NixosInstance(this, "web", {
      instanceType: "t3.small", securityGroups: [webGroup], keyPair, tags: { role: "web" },
      nixos: { configuration: join(nixosDir, "web.nix"), nixPath, nixosArgs: { appAddress: app.privateIp, greeting: greeting.stringValue } },
    });
    const db = new NixosInstance(this, "db", {
      instanceType: props.dbInstanceType ?? "m7g.large", rootVolumeSize: 100, sshAllowedCidrs: admin, keyPair, tags: { role: "db" },
      nixos: { configuration: join(nixosDir, "db.nix"), nixPath, buildOnTarget: true },
    });
    for (const [role, host] of Object.entries({ web, app, db })) {
      new TerraformOutput(this, `${role}_public_dns`, { value: host.publicDns });
      new TerraformOutput(this, `${role}_private_ip`, { value: host.privateIp });
    }
  }
}
