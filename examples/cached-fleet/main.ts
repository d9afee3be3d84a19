import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { join } from "node:path";
import { TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { NixosBinaryCache, NixosInstance, NixosKeyPair } from "../../src";

export interface CachedFleetStackProps {
  /** @default 3 */
  readonly hosts?: number;
  /**
   * The nixpkgs the configurations are built with.
   * @default - $NIXPKGS, else the nixos-25.05 channel
   */
  readonly nixpkgs?: string;
}

/**
 * A fleet whose closures go through its own binary cache: a private S3 bucket with a signing key made on this
 * machine; each deployment uploads what the cache lacks (a path once, whichever host needs it first) and each host
 * fetches from the bucket with the instance profile the cache gives it. `cdktf-nixos push` uploads once for all hosts.
 */
export class CachedFleetStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: CachedFleetStackProps = {}) {
    super(scope, id);
    const region = process.env.AWS_REGION ?? "eu-central-1";
    new AwsProvider(this, "aws", { region });
    const cache = new NixosBinaryCache(this, "cache", {
      bucketName: "example-fleet-nix-cache", region, signingKeyFile: ".cdktf-nixos/binary-cache-key", expireAfterDays: 90,
    });
    const keyPair = NixosKeyPair.generate(this, "fleet", { privateKeyFile: ".cdktf-nixos/keys/cached-fleet" });
    const nixPath = { nixpkgs: props.nixpkgs ?? process.env.NIXPKGS ?? "channel:nixos-25.05" };
    for (let i = 1; i <= (props.hosts ?? 3); i++) {
      new NixosInstance(this, `web${i}`, {
        instanceType: "t3.small", sshAllowedCidrs: ["203.0.113.0/24"], keyPair, tags: { role: "web" }, binaryCache: cache,
        nixos: { configuration: join(__dirname, "nixos", "host.nix"), nixPath, nixosArgs: { hostName: `web${i}` } },
      });
    }
  }
}
