/** Where the NixOS system to deploy comes from. A closed union: the CLI accepts exactly one. */
export type SystemSource =
  | { readonly kind: "toplevel"; readonly path: string }
  | { readonly kind: "config"; readonly configuration: string; readonly includes: readonly string[] }
  | { readonly kind: "flake"; readonly ref: string };

/** How to reach the target. */
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
  /** `[user@]host[:port]` of a bastion to connect through. */
  readonly jumpHost?: string;
  readonly compress?: boolean;
  /**
   * Verify the host key of a host known_hosts does not list yet against the fingerprints this EC2 instance printed
   * on its console, instead of trusting it on first use; a matching key is recorded.
   */
  readonly hostKeyFromEc2Console?: { readonly instanceId: string; readonly region?: string; readonly endpoint?: string };
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
