import { basename, join } from "node:path";
import type { ExpressionBuild } from "../nix/build";
import { configurationVmExpression, flakeVmExpression, moduleArgsExpression } from "../nix/system";
import type { Redact } from "../redact";
import { LocalArgsError, localRedactor, resolveLocalArgs, unknownOverrides, type LocalArgs, type LocalHost } from "./local-args";

/**
 * `cdktf-nixos vm`: one host of the stack as a local QEMU VM (`config.system.build.vm`), built from the deployment's
 * own source and module arguments, so the VM runs what `cdktf deploy` would put on the host.
 */
export interface VmPlan {
  readonly host: string;
  readonly build: ExpressionBuild;
  readonly args: LocalArgs;
  /** Takes the host's sensitive module arguments out of Nix's messages. */
  readonly redact: Redact;
}

/** The host of that name; an unknown name is refused with the names there are. */
export function findHost(hosts: readonly LocalHost[], name: string): LocalHost {
  const host = hosts.find((h) => h.name === name);
  if (host === undefined) throw new LocalArgsError(`the stack has no host '${name}' (hosts: ${hosts.map((h) => h.name).join(", ") || "none"})`);
  return host;
}

export function planVm(host: LocalHost, overrides: Readonly<Record<string, unknown>>, stateProblem?: string): VmPlan {
  const unknown = unknownOverrides([host], overrides);
  if (unknown !== undefined) throw new LocalArgsError(unknown);
  const args = resolveLocalArgs(host, overrides, { stateProblem });
  const redact = localRedactor([{ host, args }]);
  const source = host.spec.source;
  const what = `the VM of ${host.name}`;
  if (source.flake !== undefined) {
    return { host: host.name, args, redact, build: { expression: flakeVmExpression(source.flake), includes: [], flakes: true, what } };
  }
  const configuration = source.configuration!;
  return {
    host: host.name,
    args,
    redact,
    build: {
      // the module arguments are in the expression, which reaches Nix on stdin
      expression: configurationVmExpression(configuration, moduleArgsExpression(args.args)),
      includes: [...Object.entries(source.nixPath ?? {}).map(([k, v]) => `${k}=${v}`), `nixos-config=${configuration}`],
      what,
    },
  };
}

/**
 * Where the VM started by `run-NAME-vm` keeps its disk: NIX_DISK_IMAGE, else `NAME.qcow2` in the current directory
 * (nixpkgs' virtualisation.diskImage default).
 */
export function vmDiskImage(runScript: string, cwd: string, env: NodeJS.ProcessEnv): string {
  if (env.NIX_DISK_IMAGE !== undefined && env.NIX_DISK_IMAGE !== "") return env.NIX_DISK_IMAGE;
  const name = /^run-(.+)-vm$/.exec(basename(runScript))?.[1] ?? "nixos";
  return join(cwd, `${name}.qcow2`);
}
