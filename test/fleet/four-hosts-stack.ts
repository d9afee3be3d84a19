import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { join } from "node:path";
import { TerraformStack, TerraformVariable } from "cdktf";
import { Construct } from "constructs";
import { KeyUploadAt, NixosInstance, NixosKeyPair } from "../../src";

/**
 * Four NixOS hosts for the push tests: two web hosts told the app host's private IP and a Terraform variable, an app
 * host and a db host, tagged by role. Each host's configuration is `<name>.nix` in `nixosDir`. Two secrets from
 * `secretsDir` go to hosts as keys: db's password from a file, app's API token from a command, after activation.
 *
 * With `ec2Endpoint`, the AWS provider talks to that EC2 (the test double) through its `endpoints` block, as a user
 * with an EC2-compatible API would configure it; the deployments' console checks follow it.
 */
export class FourHostsStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: { nixosDir: string; nixpkgs: string; secretsDir: string; ec2Endpoint?: string }) {
    super(scope, id);
    new AwsProvider(this, "aws", {
      region: "eu-central-1",
      ...(props.ec2Endpoint === undefined ? {} : {
        accessKey: "test", secretKey: "test", skipCredentialsValidation: true, skipRequestingAccountId: true,
        skipMetadataApiCheck: "true", skipRegionValidation: true, endpoints: [{ ec2: props.ec2Endpoint, sts: props.ec2Endpoint }],
      }),
    });
    const keyPair = NixosKeyPair.generate(this, "fleet", { privateKeyFile: ".cdktf-nixos/keys/fleet" });
    const greeting = new TerraformVariable(this, "greeting", { type: "string", default: "hello" });
    const nixPath = { nixpkgs: props.nixpkgs };
    const ssh = ["127.0.0.0/8"];
    const app = new NixosInstance(this, "app", {
      sshAllowedCidrs: ssh, keyPair, tags: { role: "app" },
      nixos: {
        configuration: join(props.nixosDir, "app.nix"), nixPath, keepGenerations: 2,
        keys: [{ name: "api-token", command: ["cat", join(props.secretsDir, "api-token")], uploadAt: KeyUploadAt.AFTER_ACTIVATION }],
      },
    });
    for (const name of ["web1", "web2"]) {
      new NixosInstance(this, name, {
        sshAllowedCidrs: ssh, keyPair, tags: { role: "web" },
        nixos: { configuration: join(props.nixosDir, `${name}.nix`), nixPath, nixosArgs: { appAddress: app.privateIp, greeting: greeting.stringValue } },
      });
    }
    new NixosInstance(this, "db", {
      sshAllowedCidrs: ssh, keyPair, tags: { role: "db" },
      nixos: {
        configuration: join(props.nixosDir, "db.nix"), nixPath,
        keys: [{ name: "db-password", file: join(props.secretsDir, "db-password"), user: "nobody", group: "nogroup", permissions: "0440" }],
      },
    });
  }
}
