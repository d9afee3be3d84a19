/** How to reach a target. */
export interface TargetSpec {
  readonly host: string;
  /** @default 22 */
  readonly port?: number;
  /** @default "root" */
  readonly user?: string;
  readonly privateKeyFile?: string;
  /** OpenSSH known_hosts file the host key is checked against. */
  readonly knownHostsFile: string;
  /** Accept and record a host key the known_hosts file does not have yet (OpenSSH's accept-new). */
  readonly acceptNewHostKey?: boolean;
  /** A bastion to connect through (ssh -J). */
  readonly jumpHost?: JumpHost;
  readonly compress?: boolean;
  /**
   * Verify the host key of a host known_hosts does not list yet against the fingerprints this EC2 instance printed
   * on its console, instead of trusting it on first use; a matching key is recorded.
   */
  readonly hostKeyFromEc2Console?: { readonly instanceId: string; readonly region?: string; readonly endpoint?: string };
}

export interface JumpHost {
  readonly host: string;
  readonly port: number;
  /** @default - the target's user */
  readonly user?: string;
}

/** Parses `[user@]host`, the form of nixos-rebuild's --target-host. */
export function parseTargetHost(value: string): { user?: string; host: string } {
  const at = value.lastIndexOf("@");
  const user = at > 0 ? value.slice(0, at) : undefined;
  const host = at >= 0 ? value.slice(at + 1) : value;
  if (host === "" || /[\s/]/.test(host) || (at === 0)) {
    throw new Error(`--target-host '${value}' is not [user@]host (for example root@203.0.113.10)`);
  }
  return user === undefined ? { host } : { user, host };
}

/** Parses `[user@]host[:port]`, like ssh -J. */
export function parseJumpHost(value: string): JumpHost {
  const match = /^(?:([^@]+)@)?([^:@\s/]+)(?::(\d+))?$/.exec(value);
  const port = match?.[3] === undefined ? 22 : Number(match[3]);
  if (!match || !isPort(port)) throw new Error(`--jump-host '${value}' is not [user@]host[:port] (for example admin@bastion.example.com:22)`);
  return match[1] === undefined ? { host: match[2], port } : { user: match[1], host: match[2], port };
}

/** A TCP port number. */
export function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535;
}
