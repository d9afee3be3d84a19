import type { ConsoleHostKeyQuery } from "../aws/console-host-keys";
import { buildSystem, instantiateSystem, type NixOptions } from "../nix/build";
import { LocalStore } from "../nix/local-store";
import { ConnectError } from "../errors";
import type { DeployDependencies } from "./deploy";
import type { TargetSpec } from "../spec/target";
import { DEFAULT_SETTINGS } from "../spec/settings";
import { ConsoleNeededError, loginProblem, type SshOptions } from "./ssh/connection";
import { SshHost } from "./ssh/ssh-host";

/** The Nix options of the local builds; how each host is connected to is its TargetSpec's. */
export type DefaultDependencyOptions = NixOptions;

/** The real world: the local Nix for building and reading the store, ssh2 for the target. */
export function defaultDependencies(options: DefaultDependencyOptions = {}): DeployDependencies {
  return {
    build: (source) => buildSystem(source, options),
    instantiate: (source) => instantiateSystem(source, options),
    openStore: () => LocalStore.open(),
    connect: (target, onNotice) => connectChecked(target, onNotice ?? (() => undefined)),
    checkLogin: (target) => loginProblem(target.privateKeyFile),
  };
}

/**
 * Connects with the host key checks of `target`, as the host key policy decides them (ssh/host-key-policy.ts). The
 * instance's console is read only when the policy needs it — a host known_hosts does not list yet, or one whose
 * recorded key belongs to an instance no longer at that address — then the connection is made again with what the
 * console vouches for. (On a long-running instance the boot-time fingerprint block may be gone from the console: a
 * host known_hosts pins is checked against that entry alone.)
 */
async function connectChecked(target: TargetSpec, onNotice: (message: string) => void): Promise<SshHost> {
  const ec2Console = target.hostKeyFromEc2Console;
  const ssh: SshOptions = {
    host: target.host,
    port: target.port ?? DEFAULT_SETTINGS.port,
    user: target.user ?? DEFAULT_SETTINGS.user,
    privateKeyFile: target.privateKeyFile,
    knownHostsFile: target.knownHostsFile,
    acceptNewHostKey: target.acceptNewHostKey,
    jumpHost: target.jumpHost === undefined
      ? undefined
      : { host: target.jumpHost.host, port: target.jumpHost.port, user: target.jumpHost.user ?? target.user ?? DEFAULT_SETTINGS.user },
    sshCompression: target.sshCompression,
    retryForMs: (target.connectTimeoutSeconds ?? DEFAULT_SETTINGS.connectTimeoutSeconds) * 1000,
    ec2Console: ec2Console === undefined ? undefined : { instanceId: ec2Console.instanceId },
    onKnownHostsChanged: onNotice,
  };
  try {
    return await SshHost.connect(ssh);
  } catch (err) {
    if (!(err instanceof ConsoleNeededError) || ec2Console === undefined) throw err;
    return SshHost.connect({ ...ssh, ec2Console: { instanceId: ec2Console.instanceId, vouched: await consoleFingerprints(ec2Console) } });
  }
}

async function consoleFingerprints(source: NonNullable<TargetSpec["hostKeyFromEc2Console"]>): Promise<string[]> {
  const timeoutMs = (source.timeoutSeconds ?? DEFAULT_SETTINGS.consoleTimeoutSeconds) * 1000;
  try {
    // the AWS SDK takes a fifth of a second to load: only deploys that read a console pay for it
    const { waitForConsoleHostKeys } = await import("../aws/console-host-keys.js");
    return await waitForConsoleHostKeys({ instanceId: source.instanceId, region: source.region, endpoint: source.endpoint, timeoutMs } satisfies ConsoleHostKeyQuery);
  } catch (err) {
    throw new ConnectError(`cannot read the host key fingerprints of ${source.instanceId}: ${(err as Error).message}`, {
      hint: "the deploy needs ec2:GetConsoleOutput on the instance; without the fingerprints no host key is trusted",
    });
  }
}
