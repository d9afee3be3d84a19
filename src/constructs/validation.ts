import { ValidationError } from "./validation-error";
import { isIPv4, isIPv6 } from "node:net";
import { Token } from "./core";
import { isPort } from "../spec/target";

/** Throws unless `cidr` is an IPv4 or IPv6 CIDR block; tokens (values known at apply) pass. */
export function validateCidr(cidr: string, what: string): "ipv4" | "ipv6" | "token" {
  if (Token.isUnresolved(cidr)) return "token";
  const [address, prefix, ...rest] = cidr.split("/");
  const bits = Number(prefix);
  if (rest.length === 0 && prefix !== undefined && /^\d+$/.test(prefix)) {
    const kind = isIPv4(address) && bits <= 32 ? "ipv4" : isIPv6(address) && bits <= 128 ? "ipv6" : undefined;
    if (kind !== undefined) {
      const value = kind === "ipv4" ? ipv4Value(address) : ipv6Value(address);
      const width = kind === "ipv4" ? 32n : 128n;
      const hostBits = (1n << (width - BigInt(bits))) - 1n;
      if ((value & hostBits) !== 0n) {
        // EC2 refuses such a block only when the rule is created, after the instance exists
        throw new ValidationError(`"${cidr}" has host bits set; the block is "${format(kind, value & ~hostBits)}/${bits}" ` +
          `(or "${address}/${width}" for that one address)`, what);
      }
      return kind;
    }
  }
  throw new ValidationError(`"${cidr}" is not a CIDR block (e.g. "203.0.113.0/24" or "2001:db8::/32")`, what);
}

function ipv4Value(address: string): bigint {
  return address.split(".").reduce((sum, octet) => (sum << 8n) + BigInt(Number(octet)), 0n);
}

/** An IPv6 address as a 128-bit number (`::` expanded; an embedded IPv4 tail counts as two groups). */
function ipv6Value(address: string): bigint {
  let text = address;
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4 !== null) {
    const n = ipv4Value(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${(n >> 16n).toString(16)}:${(n & 0xffffn).toString(16)}`;
  }
  const [head, tail] = text.split("::");
  const groups = (part: string | undefined) => (part === undefined || part === "" ? [] : part.split(":"));
  const missing = 8 - groups(head).length - groups(tail).length;
  const all = tail === undefined ? groups(head) : [...groups(head), ...Array<string>(missing).fill("0"), ...groups(tail)];
  return all.reduce((sum, group) => (sum << 16n) + BigInt(parseInt(group, 16)), 0n);
}

function format(kind: "ipv4" | "ipv6", value: bigint): string {
  if (kind === "ipv4") return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join(".");
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => ((value >> shift) & 0xffffn).toString(16));
  // the longest run of zero groups becomes "::", as addresses are usually written
  let best = { start: -1, length: 0 };
  for (let i = 0; i < 8;) {
    if (groups[i] !== "0") { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === "0") j++;
    if (j - i > best.length && j - i > 1) best = { start: i, length: j - i };
    i = j;
  }
  if (best.start < 0) return groups.join(":");
  return `${groups.slice(0, best.start).join(":")}::${groups.slice(best.start + best.length).join(":")}`;
}

export function validatePort(port: number, what: string): void {
  if (!isPort(port)) {
    throw new ValidationError(`${port} is not a port number (1-65535)`, what);
  }
}
