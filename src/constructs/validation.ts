import { isIPv4, isIPv6 } from "node:net";
import { Token } from "cdktf";
import { isPort } from "../deploy/target-spec";

/** Throws unless `cidr` is an IPv4 or IPv6 CIDR block; tokens (values known at apply) pass. */
export function validateCidr(cidr: string, what: string): "ipv4" | "ipv6" | "token" {
  if (Token.isUnresolved(cidr)) return "token";
  const [address, prefix, ...rest] = cidr.split("/");
  const bits = Number(prefix);
  if (rest.length === 0 && prefix !== undefined && /^\d+$/.test(prefix)) {
    if (isIPv4(address) && bits <= 32) return "ipv4";
    if (isIPv6(address) && bits <= 128) return "ipv6";
  }
  throw new Error(`${what}: "${cidr}" is not a CIDR block (e.g. "203.0.113.0/24" or "2001:db8::/32")`);
}

export function validatePort(port: number, what: string): void {
  if (!isPort(port)) {
    throw new Error(`${what}: ${port} is not a port number (1-65535)`);
  }
}
