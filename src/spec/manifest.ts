import type { ResolvedDeploymentSettings } from "./settings";
import type { SynthesisRecord } from "./synthesis";

/**
 * Version of the manifest format; bumped on any change that a reader must know about (2: keys, sensitiveArgs; 3: the
 * synthesis record; 4: every setting resolved, ResolvedDeploymentSettings).
 */
export const MANIFEST_VERSION = 4;
/** The file `cdktf synth` writes into each synthesized stack directory that has deployments. */
export const MANIFEST_FILE = "cdktf-nixos.manifest.json";

/** Environment variables through which Terraform hands apply-time values to the deploy step. */
export const DEPLOY_ENV = {
  targetHost: "CDKTF_NIXOS_TARGET_HOST",
  moduleArgsJson: "CDKTF_NIXOS_ARGS_JSON",
  instanceId: "CDKTF_NIXOS_INSTANCE_ID",
  region: "CDKTF_NIXOS_REGION",
} as const;

/** Where a deployment's system comes from. */
export interface DeploymentSource {
  /** Absolute path of configuration.nix; with `nixPath`. */
  readonly configuration?: string;
  /** NIX_PATH entries for `configuration`, name → absolute path or URL. */
  readonly nixPath?: { readonly [name: string]: string };
  /** `path:/abs/dir#name` (nixosConfigurations.name). */
  readonly flake?: string;
}

/**
 * One deployment of a stack, as `NixosDeployment` describes it: where its system comes from, how it is deployed
 * (every setting resolved) and what Terraform fills in. Values known only after apply are Terraform expressions
 * (`${aws_instance.web_Instance_1A2B3C.public_ip}`), to be read from the stack's state.
 */
export interface DeploymentSpec extends ResolvedDeploymentSettings {
  /** Construct path, unique in the app: `fleet/web/Deployment`. */
  readonly id: string;
  /** Terraform address of the `terraform_data` resource that runs it. */
  readonly resource: string;
  /** Address of the host: a literal or a Terraform expression. */
  readonly host: string;
  readonly source: DeploymentSource;
  /** Module arguments as Terraform sees them: literals, or expressions for apply-time values. */
  readonly nixosArgs: { readonly [name: string]: unknown };
  /** The module arguments the synth-time evaluation used: apply-time values as `@cdktf-nixos:<name>@` placeholders. */
  readonly nixosArgsAtSynth: { readonly [name: string]: unknown };
  /** The system's derivation at synth: Terraform's trigger. */
  readonly drvPath: string;
  /** Nix system double of the system, e.g. `x86_64-linux`. */
  readonly system: string;
  /** EC2 instance whose console lists the host key fingerprints (literal or expression). */
  readonly instanceId?: string;
  readonly region?: string;
  /** Tags of the deployment (a NixosInstance's tags), for selecting hosts. */
  readonly tags: { readonly [key: string]: string };
}

/** What a deployment is configured with, before synthesis adds its resource address and evaluated system. */
export type DeploymentSettings = Omit<DeploymentSpec, "resource" | "drvPath" | "system">;

/** Everything a synthesized stack deploys, written next to its cdk.tf.json. */
export interface DeploymentManifest {
  readonly version: typeof MANIFEST_VERSION;
  readonly stack: string;
  /** Where and from which sources it was synthesized: what tells a push whether to synthesize again. */
  readonly synthesis: SynthesisRecord;
  readonly deployments: readonly DeploymentSpec[];
}

export function deploymentManifest(stack: string, deployments: readonly DeploymentSpec[], synthesis: SynthesisRecord): DeploymentManifest {
  return { version: MANIFEST_VERSION, stack, synthesis, deployments };
}
