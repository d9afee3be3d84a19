import { resolve } from "node:path";

/** Where the NixOS system to deploy comes from. A closed union: the CLI accepts exactly one. */
export type SystemSource =
  | { readonly kind: "toplevel"; readonly path: string }
  | { readonly kind: "config"; readonly configuration: string; readonly includes: readonly string[] }
  | { readonly kind: "flake"; readonly ref: string };

/** A system built (or, with buildOnTarget, only instantiated) on this machine. */
export interface LocalSystem {
  readonly drvPath?: string;
  /** The toplevel store path; for buildOnTarget it is the output the target will build. */
  readonly outPath: string;
  /** Nix system double the toplevel is for, e.g. "x86_64-linux". */
  readonly system: string;
}

/** `REF#NAME` of a NixOS flake configuration, split; undefined when it is not of that form. */
export function parseFlakeRef(value: string): { readonly ref: string; readonly name: string } | undefined {
  const match = /^([^#]+)#([^#]+)$/.exec(value);
  return match ? { ref: match[1], name: match[2] } : undefined;
}

/** A Nix string literal. */
export function nixString(value: string): string {
  return `"${value.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\$\{/g, "\\${")}"`;
}

/** A Nix attribute name, quoted only when it must be. */
export function nixAttrName(name: string): string {
  return /^[A-Za-z_][A-Za-z0-9_'-]*$/.test(name) ? name : nixString(name);
}

/**
 * Module arguments as a Nix expression. Expressions that hold them go to Nix on its stdin (`nix-instantiate -`), so
 * the values never appear on a command line, in the environment or in a file that a killed run could leave behind.
 */
export function moduleArgsExpression(args: unknown): string {
  return `builtins.fromJSON ${nixString(JSON.stringify(args))}`;
}

/**
 * The NixOS system of `configuration` with module arguments, evaluated through `<nixpkgs/nixos>`. The one expression
 * both the synth-time fleet evaluation and the deploy-time build use: if they differed, the trigger Terraform
 * compares would not be the system that gets deployed.
 */
export function configurationSystemExpression(configuration: string, moduleArgs: string): string {
  return nixosAttribute(configuration, moduleArgs, "system");
}

/** `(import <nixpkgs/nixos> { configuration; }).ATTRIBUTE` of a configuration file with module arguments. */
function nixosAttribute(configuration: string, moduleArgs: string, attribute: "system" | "vm"): string {
  return `(import <nixpkgs/nixos> { configuration = { imports = [ ${nixString(configuration)} ]; ` +
    `_module.args = ${moduleArgs}; }; }).${attribute}`;
}

/**
 * A flake reference builtins.getFlake takes: a relative one (`./infra#web`, `.#web`) becomes `path:/abs/infra#web`,
 * from `cwd`; one with a scheme (`path:`, `git+file:`, `github:`) stays as it is.
 */
export function absoluteFlakeRef(flake: string, cwd: string = process.cwd()): string {
  const parsed = parseFlakeRef(flake);
  if (parsed === undefined) throw new Error(`flake '${flake}' is not REF#NAME`);
  return /^[a-z+]+:/.test(parsed.ref) ? flake : `path:${resolve(cwd, parsed.ref)}#${parsed.name}`;
}

/**
 * The toplevel of a flake's nixosConfigurations.NAME (`flake` absolute: absoluteFlakeRef). The one expression the
 * synth-time evaluation, push's build and `deploy --flake` use.
 */
export function flakeSystemExpression(flake: string): string {
  return `${flakeConfigurationExpression(flake)}.config.system.build.toplevel`;
}

/** A flake's nixosConfigurations.NAME (the result of nixosSystem). */
export function flakeConfigurationExpression(flake: string): string {
  const parsed = parseFlakeRef(flake);
  if (parsed === undefined) throw new Error(`flake '${flake}' is not REF#NAME`);
  return `(builtins.getFlake ${nixString(parsed.ref)}).nixosConfigurations.${nixAttrName(parsed.name)}`;
}

/**
 * The QEMU VM of a configuration (`nix-build '<nixpkgs/nixos>' -A vm`, `result/bin/run-<host>-vm`): the same
 * configuration and module arguments as configurationSystemExpression, so the VM runs what would be deployed.
 */
export function configurationVmExpression(configuration: string, moduleArgs: string): string {
  return nixosAttribute(configuration, moduleArgs, "vm");
}

/** The QEMU VM of a flake's nixosConfigurations.NAME. */
export function flakeVmExpression(flake: string): string {
  return `${flakeConfigurationExpression(flake)}.config.system.build.vm`;
}

/** A JSON value as a Nix value, readable in a file meant for a repository. */
export function nixValue(value: unknown, indent = ""): string {
  if (value === null || value === undefined) return "null";
  if (typeof value === "string") return nixString(value);
  if (typeof value === "number") {
    if (!Number.isFinite(value)) throw new Error(`${value} has no Nix form`);
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  const inner = `${indent}  `;
  if (Array.isArray(value)) {
    return value.length === 0 ? "[ ]" : `[\n${value.map((v) => `${inner}${nixValue(v, inner)}`).join("\n")}\n${indent}]`;
  }
  const entries = Object.entries(value as Record<string, unknown>);
  return entries.length === 0 ? "{ }"
    : `{\n${entries.map(([k, v]) => `${inner}${nixAttrName(k)} = ${nixValue(v, inner)};`).join("\n")}\n${indent}}`;
}

/**
 * Module argument names the NixOS module system itself passes (or eval-config's specialArgs): a module argument of
 * one of these names would silently replace it.
 */
const RESERVED_MODULE_ARGS: readonly string[] = ["config", "options", "lib", "pkgs", "modulesPath", "specialArgs", "utils", "baseModules", "extraModules", "modules"];

/** The sentence that refuses module arguments named like the module system's own; undefined when none is. */
export function reservedModuleArgsProblem(names: readonly string[]): string | undefined {
  const shadowing = names.filter((name) => RESERVED_MODULE_ARGS.includes(name));
  if (shadowing.length === 0) return undefined;
  const plural = shadowing.length > 1;
  return `nixosArgs ${shadowing.map((n) => `"${n}"`).join(", ")} would replace the module system's own argument${plural ? "s" : ""}; ` +
    `rename ${plural ? "them" : "it"} (e.g. appConfig)`;
}

/** How deep module arguments may nest: far beyond any configuration, well within what the expression builders recurse. */
export const MAX_VALUE_DEPTH = 64;

/** Why a JSON value nests too deeply to become a Nix expression, or undefined. Iterative: it never overflows itself. */
export function tooDeep(value: unknown, max = MAX_VALUE_DEPTH): string | undefined {
  const pending: Array<[unknown, number]> = [[value, 0]];
  while (pending.length > 0) {
    const [item, depth] = pending.pop()!;
    if (typeof item !== "object" || item === null) continue;
    if (depth >= max) return `a value is nested more than ${max} levels deep`;
    for (const child of Object.values(item)) pending.push([child, depth + 1]);
  }
  return undefined;
}
