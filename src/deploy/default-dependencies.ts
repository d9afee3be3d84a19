import { waitForConsoleHostKeys } from "../aws/console-host-keys";
import { buildSystem, instantiateSystem, type NixOptions } from "../nix/build";
import { LocalStore } from "../nix/local-store";
import { ConnectError } from "../errors";
import type { DeployDependencies } from "./deploy";
import type { TargetSpec } from "./target-spec";
import { SshHost } from "./ssh/ssh-host";

export interface DefaultDependencyOptions extends NixOptions {
  /**
   * How long to keep retrying the SSH connection while the host is unreachable (it may still be booting).
   * @default 10000
   */
  readonly connectRetryMs?: number;
  /**
   * How long to wait for an instance's console output to show its host key fingerprints.
   * @default 600000
   */
  readonly consoleTimeoutMs?: number;
}

/** The real world: the local Nix for building and reading the store, ssh2 for the target. */
export function defaultDependencies(options: DefaultDependencyOptions = {}): DeployDependencies {
  return {
    build: (source) => buildSystem(source, options),
    instantiate: (source) => instantiateSystem(source, options),
    openStore: () => LocalStore.open(),
    connect: async (target: TargetSpec) =>
      SshHost.connect({
        expectedFingerprints: target.hostKeyFromEc2Console === undefined
          ? undefined
          : await consoleFingerprints(target.hostKeyFromEc2Console, options.consoleTimeoutMs),
        host: target.host,
        port: target.port ?? 22,
        user: target.user ?? "root",
        privateKeyFile: target.privateKeyFile,
        knownHostsFile: target.knownHostsFile,
        acceptNewHostKey: target.acceptNewHostKey,
        jumpHost: target.jumpHost === undefined
          ? undefined
          : { host: target.jumpHost.host, port: target.jumpHost.port, user: target.jumpHost.user ?? target.user ?? "root" },
        compress: target.compress,
        retryForMs: options.connectRetryMs ?? 10_000,
      }),
  };
}

async function consoleFingerprints(
  source: NonNullable<TargetSpec["hostKeyFromEc2Console"]>,
  timeoutMs: number | undefined,
): Promise<string[]> {
  try {
    return await waitForConsoleHostKeys({ ...source, timeoutMs });
  } catch (err) {
    throw new ConnectError(`cannot read the host key fingerprints of ${source.instanceId}: ${(err as Error).message}`, {
      hint: "the deploy needs ec2:GetConsoleOutput on the instance; without the fingerprints no host key is trusted",
    });
  }
}
