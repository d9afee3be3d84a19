import { isIP } from "node:net";
import { UserInputError } from "../errors";

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
  /**
   * How long to keep retrying while the host does not answer (it may still be booting).
   * @default 10 (DEFAULT_SETTINGS.connectTimeoutSeconds)
   */
  readonly connectTimeoutSeconds?: number;
  /** zlib on the whole SSH connection (ssh -C): slow, at most ~25 MiB/s; --compress zstd is the fast way. */
  readonly sshCompression?: boolean;
  /**
   * Verify the host key of a host known_hosts does not list yet against the fingerprints this EC2 instance printed
   * on its console, instead of trusting it on first use; a matching key is recorded.
   */
  readonly hostKeyFromEc2Console?: {
    readonly instanceId: string;
    readonly region?: string;
    readonly endpoint?: string;
    /** How long to wait for the console to show the fingerprints. @default 600 */
    readonly timeoutSeconds?: number;
  };
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
  const written = at >= 0 ? value.slice(at + 1) : value;
  // an IPv6 address may come in brackets, as in ssh's root@[2001:db8::1]
  const host = /^\[[0-9A-Fa-f:.%a-z]+\]$/.test(written) && isIP(written.slice(1, -1)) === 6 ? written.slice(1, -1) : written;
  const withPort = /^([^:]+):(\d+)$/.exec(host) ?? /^\[(.+)\]:(\d+)$/.exec(host);
  if (withPort !== null) {
    throw new UserInputError(`--target-host '${value}' includes a port: pass --target-host ${user === undefined ? "" : `${user}@`}${withPort[1]} --target-port ${withPort[2]}`);
  }
  if (at === 0 || !isHostName(host) || (user !== undefined && !/^[A-Za-z0-9_][A-Za-z0-9_.-]*$/.test(user))) {
    throw new UserInputError(`--target-host '${value}' is not [user@]host (for example root@203.0.113.10, or root@2001:db8::1 for IPv6)`);
  }
  return user === undefined ? { host } : { user, host };
}

/** Parses `[user@]host[:port]`, like ssh -J. */
export function parseJumpHost(value: string, flag = "--jump-host"): JumpHost {
  const match = /^(?:([A-Za-z0-9_][A-Za-z0-9_.-]*)@)?([^:@\s/]+)(?::(\d+))?$/.exec(value);
  const port = match?.[3] === undefined ? 22 : Number(match[3]);
  if (!match || !isPort(port) || !isHostName(match[2])) {
    throw new UserInputError(`${flag} '${value}' is not [user@]host[:port] (for example admin@${flag === "--jump-host" ? "bastion" : "builder"}.example.com:22)`);
  }
  return match[1] === undefined ? { host: match[2], port } : { user: match[1], host: match[2], port };
}

/** An IPv4 or IPv6 address or a DNS name (labels of letters, digits, - and _), as a host can be named. */
export function isHostName(value: string): boolean {
  if (isIP(value) !== 0) return true;
  const label = "[A-Za-z0-9_](?:[A-Za-z0-9_-]{0,61}[A-Za-z0-9_])?";
  return value.length <= 253 && new RegExp(`^${label}(?:\\.${label})*\\.?$`).test(value);
}

/** A TCP port number. */
export function isPort(value: number): boolean {
  return Number.isInteger(value) && value >= 1 && value <= 65535;
}
