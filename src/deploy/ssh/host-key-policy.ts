import { instanceComment, instanceOf, type HostKeyVerdict, type KnownHostEntry } from "./known-hosts";

/** What decides whether an offered host key is trusted, besides the known_hosts file's verdict on it. */
export interface HostKeyContext {
  /** The offered key's SHA256 fingerprint. */
  readonly offered: string;
  /** Trust on first use (OpenSSH's accept-new): a host known_hosts does not list yet. */
  readonly acceptNewHostKey: boolean;
  /**
   * The EC2 instance whose console vouches for host keys, with the fingerprints its console listed once read
   * (undefined: not read yet).
   */
  readonly ec2Console?: { readonly instanceId: string; readonly vouched?: readonly string[] };
}

/** What to do with an offered host key. */
export type HostKeyDecision =
  | { readonly kind: "trust" }
  /** Trust it and add it to known_hosts (with this comment: the instance that vouched for it). */
  | { readonly kind: "trust-and-record"; readonly comment?: string }
  /**
   * The instance at this address was replaced: remove these entries (all recorded for other instances) and record the
   * key its console vouches for.
   */
  | { readonly kind: "replace"; readonly remove: readonly KnownHostEntry[]; readonly comment: string }
  /** Undecidable without the instance's console: read it and ask again. */
  | { readonly kind: "read-console" }
  | { readonly kind: "refuse"; readonly why: "unreadable" | "revoked" | "mismatch" | "unknown" | "not-vouched" };

/**
 * The host key trust policy, pure (the SSH connection and the EC2 console adapters only ask it):
 * - a key known_hosts lists for the host is trusted; a revoked or unreadable entry refuses;
 * - a host it does not list is trusted only with a key the instance's console vouches for (recorded with the
 *   instance id), or on first use when asked (accept-new), never otherwise;
 * - a key that mismatches is replaced only when every mismatching entry was recorded for another instance (this one
 *   replaced it at the same address) and this instance's console vouches for the new key. Never otherwise.
 */
export function decideHostKey(verdict: HostKeyVerdict, context: HostKeyContext): HostKeyDecision {
  const ec2 = context.ec2Console;
  switch (verdict.kind) {
    case "known":
      return { kind: "trust" };
    case "unreadable":
      return { kind: "refuse", why: "unreadable" };
    case "revoked":
      return { kind: "refuse", why: "revoked" };
    case "unknown":
      if (ec2 !== undefined) {
        if (ec2.vouched === undefined) return { kind: "read-console" };
        return ec2.vouched.includes(context.offered)
          ? { kind: "trust-and-record", comment: instanceComment(ec2.instanceId) }
          : { kind: "refuse", why: "not-vouched" };
      }
      return context.acceptNewHostKey ? { kind: "trust-and-record" } : { kind: "refuse", why: "unknown" };
    case "mismatch": {
      const owners = verdict.expected.map(instanceOf);
      if (ec2 === undefined || owners.some((owner) => owner === undefined || owner === ec2.instanceId)) return { kind: "refuse", why: "mismatch" };
      if (ec2.vouched === undefined) return { kind: "read-console" };
      return ec2.vouched.includes(context.offered)
        ? { kind: "replace", remove: verdict.expected, comment: instanceComment(ec2.instanceId) }
        : { kind: "refuse", why: "not-vouched" };
    }
  }
}
