import type { ConsoleHostKeyQuery } from "../aws/console-host-keys";
import { buildSystem, instantiateSystem, type NixOptions } from "../nix/build";
import { LocalStore } from "../nix/local-store";
import { ConnectError } from "../errors";
import type { DeployDependencies } from "./deploy";
import type { TargetSpec } from "../spec/target";
import { DEFAULT_SETTINGS } from "../spec/settings";
import { HostKeyMismatchError, loginProblem, type SshOptions } from "./ssh/connection";
import { KnownHostsFile, fingerprint, instanceComment, instanceOf, knownHostsName, knownKeyTypes } from "./ssh/known-hosts";
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
 * Connects with the host key checks of `target`. With an EC2 instance id:
 * - a host known_hosts already pins is checked against that entry alone: the console is not read (on a
 *   long-running instance the boot-time fingerprint block may be gone from it);
 * - a host it does not know is trusted only with a key its console vouches for, recorded with the instance id;
 * - a pinned key that mismatches is replaced only when every mismatching entry was recorded for another instance
 *   (this one replaced it at the same address) and this instance's console vouches for the new key. Never otherwise.
 */
async function connectChecked(target: TargetSpec, onNotice: (message: string) => void): Promise<SshHost> {
  const port = target.port ?? 22;
  const ssh: SshOptions = {
    host: target.host,
    port,
    user: target.user ?? "root",
    privateKeyFile: target.privateKeyFile,
    knownHostsFile: target.knownHostsFile,
    acceptNewHostKey: target.acceptNewHostKey,
    jumpHost: target.jumpHost === undefined
      ? undefined
      : { host: target.jumpHost.host, port: target.jumpHost.port, user: target.jumpHost.user ?? target.user ?? "root" },
    sshCompression: target.sshCompression,
    retryForMs: (target.connectTimeoutSeconds ?? DEFAULT_SETTINGS.connectTimeoutSeconds) * 1000,
  };
  const ec2Console = target.hostKeyFromEc2Console;
  if (ec2Console === undefined) return SshHost.connect(ssh);

  const name = knownHostsName(target.host, port);
  const knownHosts = await KnownHostsFile.load(target.knownHostsFile);
  if (knownKeyTypes(knownHosts.entries, [name]).length === 0) {
    const host = await SshHost.connect({
      ...ssh,
      expectedFingerprints: await consoleFingerprints(ec2Console),
      recordComment: instanceComment(ec2Console.instanceId),
    });
    // a key recorded without a word would hide that the known_hosts file changed (after forget-host-keys, too)
    onNotice(`${name} was not in ${target.knownHostsFile}: recorded the host key it offered, which the console of ${ec2Console.instanceId} vouches for`);
    return host;
  }
  try {
    return await SshHost.connect(ssh);
  } catch (err) {
    if (!(err instanceof HostKeyMismatchError)) throw err;
    const owners = err.expected.map(instanceOf);
    if (owners.some((owner) => owner === undefined || owner === ec2Console.instanceId)) throw err;
    const vouched = await consoleFingerprints(ec2Console);
    const offered = fingerprint(err.offered);
    if (!vouched.includes(offered)) {
      throw new ConnectError(`${err.message}; the console of ${ec2Console.instanceId} does not vouch for it either (it lists ${vouched.join(", ")})`, {
        hint: "someone may be intercepting the connection; nothing was run on the host",
      });
    }
    await knownHosts.rewrite((entry) => err.expected.some((e) => e.hosts === entry.hosts && e.key.equals(entry.key)), {
      name: err.knownHostsName, key: err.offered, comment: instanceComment(ec2Console.instanceId),
    });
    onNotice(
      `${name} now answers with ${offered}, which the console of ${ec2Console.instanceId} vouches for; replaced the key ` +
        `recorded for ${[...new Set(owners)].join(", ")} (an instance no longer at that address) in ${target.knownHostsFile}`,
    );
    return SshHost.connect(ssh);
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
