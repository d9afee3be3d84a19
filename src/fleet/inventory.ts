import type { DeploymentManifest, DeploymentSpec } from "../spec/manifest";
import { cdkCli } from "../flavour";

/**
 * The hosts of one synthesized stack, each with the values Terraform applied to it. Pure: the manifest and the
 * state in, the inventory out (reading them is `project.ts`).
 */
export interface FleetHost {
  /** How `--on` and every report name the host: the construct path below the stack, e.g. "web" or "db/replica". */
  readonly name: string;
  readonly spec: DeploymentSpec;
  /** Tags to select by (`--on @role=web`, `--on @web`). */
  readonly tags: { readonly [key: string]: string };
  /** The values this host is deployed with, or why it cannot be (its resources do not exist yet). */
  readonly applied: AppliedValues | NotCreated;
}

export interface AppliedValues {
  readonly created: true;
  /** Address to connect to. */
  readonly host: string;
  /** Module arguments with every Terraform value as it was applied. */
  readonly moduleArgs: { readonly [name: string]: unknown };
  readonly instanceId?: string;
  readonly region?: string;
}

export interface NotCreated {
  readonly created: false;
  readonly reason: string;
}

/** The part of `terraform show -json` this reads: the resources in the state, with their attribute values. */
export interface TerraformShowState {
  readonly values?: { readonly root_module?: TerraformModule };
}

interface TerraformModule {
  readonly resources?: readonly { readonly address: string; readonly values?: { readonly input?: unknown } }[];
  readonly child_modules?: readonly TerraformModule[];
}

/** What the deployment's terraform_data resource records as its input (see NixosDeployment). */
export interface DeploymentInput {
  readonly target?: string;
  readonly nixos_args?: { readonly [name: string]: unknown };
  readonly instance_id?: string;
  readonly region?: string;
}

/** A value cdktf left as a Terraform expression: known only after apply, so it is read from the state. */
export function isExpression(value: unknown): boolean {
  return JSON.stringify(value ?? null).includes("${");
}

/**
 * Whether Terraform applied a value: null (unknown, or not in the state) is none. For a module argument an empty
 * string is a value (a variable may be ""); for the deployment's own fields (`target`, `instance_id`, `region`) it is
 * none, as NixosDeployment writes "" for a field it does not have. The one reading for push, vm and test.
 */
export function isApplied(value: unknown, field: "module-argument" | "deployment-field"): boolean {
  return value !== undefined && value !== null && (field === "module-argument" || value !== "");
}

/** The short name of a deployment: its construct path below the stack, without NixosInstance's "Deployment". */
export function hostName(stack: string, id: string): string {
  const parts = id.split("/");
  if (parts[0] === stack) parts.shift();
  if (parts.length > 1 && parts.at(-1) === "Deployment") parts.pop();
  return parts.join("/");
}

function resources(module: TerraformModule | undefined): Map<string, DeploymentInput | undefined> {
  const found = new Map<string, DeploymentInput | undefined>();
  for (const resource of module?.resources ?? []) found.set(resource.address, resource.values?.input as DeploymentInput | undefined);
  for (const child of module?.child_modules ?? []) for (const [k, v] of resources(child)) found.set(k, v);
  return found;
}

/** The input each deployment's terraform_data recorded when Terraform applied it, by resource address. */
export function recordedInputs(state: TerraformShowState): Map<string, DeploymentInput | undefined> {
  return resources(state.values?.root_module);
}

/**
 * Joins the synthesized deployments with the state: literal settings come from the synthesized stack (so a push
 * uses what the code says now), Terraform values (addresses, instance ids, injected values) from what was applied.
 * A deployment Terraform has not applied yet is "not created", never guessed.
 */
export function resolveInventory(
  manifest: DeploymentManifest,
  state: TerraformShowState,
  /** The CDK CLI a "not created" host's reason tells the user to deploy with (this package's kind). */
  cdk: "cdktf" | "cdktn" = cdkCli(),
): FleetHost[] {
  const applied = recordedInputs(state);
  return manifest.deployments.map((spec): FleetHost => {
    const name = hostName(manifest.stack, spec.id);
    const base = { name, spec, tags: spec.tags };
    const input = applied.get(spec.resource);
    if (!applied.has(spec.resource) || input === undefined) {
      return { ...base, applied: { created: false, reason: `not created — run ${cdk} deploy` } };
    }
    const missing: string[] = [];
    const fromState = <T>(value: T, stateValue: unknown, what: string, field: Parameters<typeof isApplied>[1]): T => {
      if (!isExpression(value)) return value;
      if (!isApplied(stateValue, field)) missing.push(what);
      return stateValue as T;
    };
    const host = isExpression(spec.host) ? (input.target ?? "").replace(/^[^@]*@/, "") : spec.host;
    if (host === "") missing.push("host");
    const moduleArgs = Object.fromEntries(Object.entries(spec.nixosArgs).map(([key, value]) =>
      [key, fromState(value, input.nixos_args?.[key], `nixosArgs.${key}`, "module-argument")]));
    const instanceId = spec.instanceId === undefined ? undefined : fromState(spec.instanceId, input.instance_id, "instanceId", "deployment-field");
    const region = spec.region === undefined ? undefined : fromState(spec.region, input.region, "region", "deployment-field") || undefined;
    if (missing.length > 0) {
      return { ...base, applied: { created: false, reason: `${missing.join(", ")} not applied yet — run ${cdk} deploy` } };
    }
    return { ...base, applied: { created: true, host, moduleArgs, instanceId, region } };
  });
}
