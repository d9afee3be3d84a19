import type { CompressMode } from "../nix/serve/copy-policy";
import { shellQuote } from "../shell";
import type { Action } from "./goal";
import type { KeySpec } from "./keys";
import type { SynthesisRecord } from "./synthesis";

/**
 * Version of the manifest format; bumped on any change that a reader must know about (2: keys, sensitiveArgs; 3: the
 * synthesis record).
 */
export const MANIFEST_VERSION = 3;
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
 * One deployment of a stack, as `NixosDeployment` describes it. Values known only after apply are Terraform
 * expressions (`${aws_instance.web_Instance_1A2B3C.public_ip}`), to be read from the stack's state.
 */
export interface DeploymentSpec {
  /** Construct path, unique in the app: `fleet/web/Deployment`. */
  readonly id: string;
  /** Terraform address of the `terraform_data` resource that runs it. */
  readonly resource: string;
  /** Address of the host: a literal or a Terraform expression. */
  readonly host: string;
  readonly user: string;
  readonly port: number;
  readonly source: DeploymentSource;
  /** Module arguments as Terraform sees them: literals, or expressions for apply-time values. */
  readonly nixosArgs: { readonly [name: string]: unknown };
  /** Names of module arguments whose values are taken out of every message (they are still in state and the store). */
  readonly sensitiveArgs: readonly string[];
  /** The module arguments the synth-time evaluation used: apply-time values as `@cdktf-nixos:<name>@` placeholders. */
  readonly nixosArgsAtSynth: { readonly [name: string]: unknown };
  /** The system's derivation at synth: Terraform's trigger. */
  readonly drvPath: string;
  /** Nix system double of the system, e.g. `x86_64-linux`. */
  readonly system: string;
  readonly action: Action;
  /** Private key to log in with; undefined means ssh-agent. */
  readonly sshPrivateKeyFile?: string;
  readonly knownHostsFile: string;
  readonly acceptNewHostKey: boolean;
  /** EC2 instance whose console lists the host key fingerprints (literal or expression). */
  readonly instanceId?: string;
  readonly region?: string;
  /** EC2 endpoint for the console check (the stack's AwsProvider endpoints); undefined is AWS's. */
  readonly ec2Endpoint?: string;
  readonly useSubstitutes: boolean;
  /** zstd on the copy; undefined is "auto". */
  readonly compress?: CompressMode;
  readonly buildOnTarget: boolean;
  readonly connectTimeoutSeconds: number;
  /** Magic rollback for switch/test; 0 is off. */
  readonly confirmTimeoutSeconds: number;
  /** Keep only the newest this many system generations after a deployment; undefined keeps all. */
  readonly keepGenerations?: number;
  /** Tags of the deployment (a NixosInstance's tags), for selecting hosts. */
  readonly tags: { readonly [key: string]: string };
  /** Files put on the host outside the store; the specs only (where the content comes from), never the content. */
  readonly keys: readonly KeySpec[];
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

/** A word of a command line: literal text, or the value of an environment variable at run time. */
export type CommandWord = string | { readonly env: string };

/**
 * The `cdktf-nixos deploy` arguments of a deployment. Apply-time values (host, module arguments, instance id,
 * region) are not on the command line: Terraform passes them in the environment (DEPLOY_ENV).
 */
export function deployArguments(spec: DeploymentSettings): CommandWord[] {
  const source = spec.source;
  return [
    "deploy",
    "--target-port", String(spec.port),
    "--known-hosts", spec.knownHostsFile,
    "--action", spec.action,
    "--connect-timeout", String(spec.connectTimeoutSeconds),
    "--json",
    ...(spec.sshPrivateKeyFile !== undefined ? ["--ssh-key", spec.sshPrivateKeyFile] : []),
    ...(spec.acceptNewHostKey ? ["--accept-new-host-key"] : []),
    ...(spec.useSubstitutes ? ["--use-substitutes"] : []),
    ...(spec.compress !== undefined && spec.compress !== "auto" ? ["--compress", spec.compress] : []),
    ...(spec.buildOnTarget ? ["--build-on-target"] : []),
    ...(spec.keepGenerations !== undefined ? ["--keep-generations", String(spec.keepGenerations)] : []),
    ...(spec.confirmTimeoutSeconds > 0 ? ["--confirm-timeout", String(spec.confirmTimeoutSeconds)] : []),
    ...spec.sensitiveArgs.flatMap((name) => ["--sensitive-arg", name]),
    // where each key's content comes from (a path or a command), never the content
    ...spec.keys.flatMap((key) => ["--key-spec", JSON.stringify(key)]),
    ...(source.configuration !== undefined
      ? ["--config", source.configuration, ...Object.entries(source.nixPath ?? {}).flatMap(([k, v]) => ["-I", `${k}=${v}`])]
      : []),
    ...(source.flake !== undefined ? ["--flake", source.flake] : []),
    ...(spec.instanceId !== undefined ? ["--host-key-from-ec2-console", { env: DEPLOY_ENV.instanceId }] : []),
    ...(spec.instanceId !== undefined && spec.region !== undefined ? ["--region", { env: DEPLOY_ENV.region }] : []),
    ...(spec.instanceId !== undefined && spec.ec2Endpoint !== undefined ? ["--endpoint", spec.ec2Endpoint] : []),
  ];
}

/** A POSIX shell command line; environment words become double-quoted expansions. */
export function renderCommand(words: readonly CommandWord[]): string {
  return words.map((word) => (typeof word === "string" ? shellQuote(word) : `"$${word.env}"`)).join(" ");
}
