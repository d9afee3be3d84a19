import { buildSystem, instantiateSystem, type NixOptions } from "../nix/build";
import { LocalStore } from "../nix/local-store";
import type { DeployDependencies } from "./deploy";
import type { TargetSpec } from "./plan";
import { SshHost } from "./ssh/ssh-host";

export interface DefaultDependencyOptions extends NixOptions {
  /**
   * How long to keep retrying the SSH connection while the host is unreachable (it may still be booting).
   * @default 10000
   */
  readonly connectRetryMs?: number;
}

/** The real world: the local Nix for building and reading the store, ssh2 for the target. */
export function defaultDependencies(options: DefaultDependencyOptions = {}): DeployDependencies {
  return {
    build: (source) => buildSystem(source, options),
    instantiate: (source) => instantiateSystem(source, options),
    openStore: () => LocalStore.open(),
    connect: (target: TargetSpec) =>
      SshHost.connect({
        host: target.host,
        port: target.port ?? 22,
        user: target.user ?? "root",
        privateKeyFile: target.privateKeyFile,
        knownHostsFile: target.knownHostsFile,
        acceptNewHostKey: target.acceptNewHostKey,
        jumpHost: target.jumpHost === undefined ? undefined : parseJumpHost(target.jumpHost, target.user ?? "root"),
        compress: target.compress,
        retryForMs: options.connectRetryMs ?? 10_000,
      }),
  };
}

/** `[user@]host[:port]`, like ssh -J. */
export function parseJumpHost(value: string, defaultUser: string): { host: string; port: number; user: string } {
  const match = /^(?:([^@]+)@)?([^:@]+)(?::(\d+))?$/.exec(value);
  if (!match) throw new Error(`--jump-host '${value}' is not [user@]host[:port]`);
  return { user: match[1] ?? defaultUser, host: match[2], port: match[3] ? Number(match[3]) : 22 };
}
