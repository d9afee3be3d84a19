import { join } from "node:path";
import { TerraformStack } from "cdktf";
import { Construct } from "constructs";
import { HealthCheckFrom, NixosBinaryCache, NixosDeployment, type NixosDeploymentProps } from "../../src";

/** One host of the rollout tests: where it is, and the URL its health check asks (through its SSH connection). */
export interface RolloutHost {
  readonly name: string;
  readonly address: string;
  /** @default - no HTTP health check */
  readonly healthUrl?: string;
}

/**
 * Six NixOS hosts (NixosDeployment, no instances: the hosts are the test's own), each with its `<name>.nix` in
 * `nixosDir` and an HTTP health check asked from the host itself. The systemd check runs too (the construct confirms
 * within 30 s by default).
 */
export class SixHostsStack extends TerraformStack {
  constructor(scope: Construct, id: string, props: {
    nixosDir: string; nixpkgs: string; hosts: readonly RolloutHost[]; sshPrivateKeyFile: string; knownHostsFile: string;
    /** More settings of every deployment. */
    deployment?: Partial<NixosDeploymentProps>;
    /** An existing binary cache every deployment goes through (NixosBinaryCache.fromUrl). */
    binaryCache?: { url: string; publicKey: string; substituter: string; signingKeyFile: string };
  }) {
    super(scope, id);
    const cache = props.binaryCache === undefined
      ? undefined
      : NixosBinaryCache.fromUrl(this, "cache", props.binaryCache.url, props.binaryCache.publicKey, { substituter: props.binaryCache.substituter, signingKeyFile: props.binaryCache.signingKeyFile });
    for (const host of props.hosts) {
      new NixosDeployment(this, host.name, {
        host: host.address,
        configuration: join(props.nixosDir, `${host.name}.nix`),
        nixPath: { nixpkgs: props.nixpkgs },
        sshPrivateKeyFile: props.sshPrivateKeyFile,
        knownHostsFile: props.knownHostsFile,
        tags: { role: "web" },
        healthChecks: host.healthUrl === undefined
          ? []
          : [{ name: "health endpoint", http: { url: host.healthUrl, bodyContains: "ok", from: HealthCheckFrom.TARGET }, timeoutSeconds: 5, retries: 1, intervalSeconds: 1 }],
        ...props.deployment,
        ...(cache !== undefined ? { binaryCache: cache } : {}),
      });
    }
  }
}
