import { UserInputError } from "../errors";
import { tooDeep } from "../nix/system";
import type { DeploymentSpec } from "../spec/manifest";
import { redactor, type Redact } from "../redact";
import { isApplied, isExpression, type DeploymentInput } from "./inventory";

/**
 * Module arguments for building a stack's host on this machine (`vm`, `test`) rather than deploying it: the values
 * the stack gives, Terraform's values from the state, `--arg` values over both. Pure: the CLI reads the state.
 */
export class LocalArgsError extends UserInputError {}

/** A host of the stack with what Terraform recorded for it (undefined: not applied, or no state could be read). */
export interface LocalHost {
  readonly name: string;
  readonly spec: DeploymentSpec;
  /** The deployment's tags, for `--on @tag`. */
  readonly tags: { readonly [key: string]: string };
  readonly input?: DeploymentInput;
}

/** Where a module argument's value came from, for the report. */
export type ArgOrigin = "stack" | "state" | "--arg" | "test network";

export interface LocalArgs {
  readonly args: { readonly [name: string]: unknown };
  readonly origins: { readonly [name: string]: ArgOrigin };
}

/**
 * `--arg name=value` assignments. The value is JSON when it parses as JSON (`port=5432`, `debug=true`,
 * `peers=["a","b"]`), otherwise the text itself (`appAddress=10.0.0.5`), so strings need no quotes.
 */
export function parseArgAssignments(assignments: readonly string[]): Record<string, unknown> {
  const values: Record<string, unknown> = {};
  for (const assignment of assignments) {
    const match = /^([A-Za-z_][A-Za-z0-9_'-]*)=(.*)$/s.exec(assignment);
    if (match === null) throw new LocalArgsError(`--arg '${assignment}' is not NAME=VALUE (e.g. --arg appAddress=10.0.0.5)`);
    const [, name, text] = match;
    if (name in values) throw new LocalArgsError(`--arg ${name} is given twice`);
    values[name] = parseValue(name, text);
  }
  return values;
}

/** JSON, else plain text for a string; but what looks like a JSON list or object must be one (a typo is no string). */
function parseValue(name: string, text: string): unknown {
  let value: unknown;
  try {
    value = JSON.parse(text) as unknown;
  } catch (err) {
    if (/^\s*[[{]/.test(text)) {
      throw new LocalArgsError(`--arg ${name}: ${JSON.stringify(text)} looks like JSON but is not (${(err as Error).message}); ` +
        `to give it as text, quote it as a JSON string: --arg ${name}='${JSON.stringify(text)}'`);
    }
    return text;
  }
  const deep = tooDeep(value);
  if (deep !== undefined) throw new LocalArgsError(`--arg ${name}: ${deep}`);
  return value;
}

export interface ResolveOptions {
  /** A test's replacement of other hosts' addresses by node names, applied to the stack's values first. */
  readonly replaceAddresses?: (value: unknown) => unknown;
  /** Why there is no state to read Terraform's values from (terraform show failed), for the missing-value message. */
  readonly stateProblem?: string;
}

/**
 * One host's module arguments. Precedence: `--arg`, then the stack's value (after address replacement) when it is no
 * Terraform expression, then the value Terraform applied. Every argument that has none of these is named in one
 * error, with the `--arg` that would give it.
 */
export function resolveLocalArgs(host: LocalHost, overrides: Readonly<Record<string, unknown>>, options: ResolveOptions = {}): LocalArgs {
  const args: Record<string, unknown> = {};
  const origins: Record<string, ArgOrigin> = {};
  const missing: string[] = [];
  for (const [name, stackValue] of Object.entries(host.spec.nixosArgs)) {
    if (name in overrides) {
      args[name] = overrides[name];
      origins[name] = "--arg";
      continue;
    }
    const replaced = options.replaceAddresses?.(stackValue) ?? stackValue;
    if (!isExpression(replaced)) {
      args[name] = replaced;
      origins[name] = isExpression(stackValue) ? "test network" : "stack";
      continue;
    }
    const applied = host.input?.nixos_args?.[name];
    if (isApplied(applied, "module-argument")) {
      args[name] = applied;
      origins[name] = "state";
      continue;
    }
    missing.push(`${name} (${JSON.stringify(stackValue)})`);
  }
  if (missing.length > 0) {
    const why = options.stateProblem !== undefined ? `the state could not be read: ${options.stateProblem}`
      : host.input === undefined ? "Terraform has not applied this host yet" : "the state has no value for it";
    const plural = missing.length > 1;
    throw new LocalArgsError(`${host.name}: module argument${plural ? "s" : ""} ${missing.join(", ")} ` +
      `${plural ? "are Terraform values" : "is a Terraform value"} and ${why}; give ${plural ? "them" : "it"} with ` +
      missing.map((m) => `--arg ${m.split(" ")[0]}=VALUE`).join(" "));
  }
  return { args, origins };
}

/** `--arg` names no selected host has: refused, a typo must not silently do nothing. */
export function unknownOverrides(hosts: readonly LocalHost[], overrides: Readonly<Record<string, unknown>>): string | undefined {
  const known = new Set(hosts.flatMap((h) => Object.keys(h.spec.nixosArgs)));
  const unknown = Object.keys(overrides).filter((name) => !known.has(name));
  if (unknown.length === 0) return undefined;
  return `--arg ${unknown.join(", ")}: no module argument of ${hosts.map((h) => h.name).join(", ")} has that name ` +
    `(they have: ${[...known].sort().join(", ") || "none"})`;
}

/** Takes the hosts' sensitive module arguments (as resolved for this machine) out of Nix's messages. */
export function localRedactor(resolved: ReadonlyArray<{ readonly host: LocalHost; readonly args: LocalArgs }>): Redact {
  const values: Record<string, unknown> = {};
  for (const { host, args } of resolved) {
    for (const name of host.spec.sensitiveArgs) values[`nixosArgs.${name}`] ??= args.args[name];
  }
  return redactor(values);
}
