import { DataResource, TerraformStack, TerraformVariable } from "cdktf";
import { Construct } from "constructs";
import { join } from "node:path";
import { NixosDeployment, type NixosKey } from "../../src";

export type ThreeHosts = "web" | "app" | "db";

/**
 * Three NixOS hosts for `vm` and `test`: web is told app's address (inside a URL) and app is told db's, both as
 * Terraform values: each host's address is the output of a resource (as an Elastic IP's would be), and the
 * deployments connect to those same values. A Terraform variable reaches web and app too. Each host's configuration
 * is `<name>.nix` in `nixosDir`.
 */
export class ThreeHostsStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: {
    nixosDir: string;
    nixpkgs: string;
    addresses: Record<ThreeHosts, string>;
    sshPrivateKeyFile: string;
    knownHostsFile: string;
    /** Keys of db (none by default). */
    dbKeys?: NixosKey[];
  }) {
    super(scope, id);
    const greeting = new TerraformVariable(this, "greeting", { type: "string", default: "hello" });
    const address = (name: ThreeHosts) => new DataResource(this, `${name}-address`, { input: { address: props.addresses[name] } }).getStringAttribute("output.address");
    const [web, app, db] = (["web", "app", "db"] as const).map(address);
    const common = { nixPath: { nixpkgs: props.nixpkgs }, sshPrivateKeyFile: props.sshPrivateKeyFile, knownHostsFile: props.knownHostsFile };
    new NixosDeployment(this, "db", { ...common, host: db, configuration: join(props.nixosDir, "db.nix"), tags: { role: "db" }, keys: props.dbKeys });
    new NixosDeployment(this, "app", { ...common, host: app, configuration: join(props.nixosDir, "app.nix"), tags: { role: "app" }, nixosArgs: { dbAddress: db, greeting: greeting.stringValue } });
    new NixosDeployment(this, "web", { ...common, host: web, configuration: join(props.nixosDir, "web.nix"), tags: { role: "web" }, nixosArgs: { upstream: `http://${app}:8080`, greeting: greeting.stringValue } });
  }
}
