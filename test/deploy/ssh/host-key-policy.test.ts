import { describe, expect, it } from "vitest";
import { decideHostKey, type HostKeyContext, type HostKeyDecision } from "../../../src/deploy/ssh/host-key-policy";
import type { HostKeyVerdict, KnownHostEntry } from "../../../src/deploy/ssh/known-hosts";

const entry = (comment?: string): KnownHostEntry => ({
  line: 3, hosts: "[203.0.113.10]:22", keyType: "ssh-ed25519", key: Buffer.from("old"), comment,
} as KnownHostEntry);
const OFFERED = "SHA256:new";
const context = (c: Partial<HostKeyContext> = {}): HostKeyContext => ({ offered: OFFERED, acceptNewHostKey: false, ...c });
const ec2 = (vouched?: string[]) => ({ ec2Console: { instanceId: "i-0new00000000000000", vouched } });

const mine = entry("cdktf-nixos-instance=i-0new00000000000000");
const other = entry("cdktf-nixos-instance=i-0old00000000000000");
const hand = entry(undefined);

describe("decideHostKey: the host key trust policy", () => {
  it.each<[string, HostKeyVerdict, Partial<HostKeyContext>, HostKeyDecision]>([
    ["a key known_hosts lists", { kind: "known", entry: hand }, {}, { kind: "trust" }],
    ["a known key, with a console", { kind: "known", entry: mine }, ec2(), { kind: "trust" }],
    ["an unreadable entry", { kind: "unreadable", entries: [hand] }, { acceptNewHostKey: true }, { kind: "refuse", why: "unreadable" }],
    ["a revoked key", { kind: "revoked", entry: hand }, ec2([OFFERED]), { kind: "refuse", why: "revoked" }],
    ["a new host, nothing to vouch", { kind: "unknown" }, {}, { kind: "refuse", why: "unknown" }],
    ["a new host, trust on first use", { kind: "unknown" }, { acceptNewHostKey: true }, { kind: "trust-and-record" }],
    ["a new host, the console not read yet", { kind: "unknown" }, ec2(), { kind: "read-console" }],
    ["a new host the console vouches for", { kind: "unknown" }, ec2(["SHA256:x", OFFERED]), { kind: "trust-and-record", comment: "cdktf-nixos-instance=i-0new00000000000000" }],
    ["a new host the console does not vouch for (accept-new does not override it)", { kind: "unknown" }, { ...ec2(["SHA256:x"]), acceptNewHostKey: true }, { kind: "refuse", why: "not-vouched" }],
    ["a changed key, no console", { kind: "mismatch", expected: [other] }, { acceptNewHostKey: true }, { kind: "refuse", why: "mismatch" }],
    ["a changed key recorded by hand", { kind: "mismatch", expected: [hand] }, ec2([OFFERED]), { kind: "refuse", why: "mismatch" }],
    ["a changed key recorded for this very instance", { kind: "mismatch", expected: [mine] }, ec2([OFFERED]), { kind: "refuse", why: "mismatch" }],
    ["a changed key, one entry by hand and one of another instance", { kind: "mismatch", expected: [other, hand] }, ec2([OFFERED]), { kind: "refuse", why: "mismatch" }],
    ["another instance's key, the console not read yet", { kind: "mismatch", expected: [other] }, ec2(), { kind: "read-console" }],
    ["another instance's key, the new one vouched for: replaced", { kind: "mismatch", expected: [other] }, ec2([OFFERED]),
      { kind: "replace", remove: [other], comment: "cdktf-nixos-instance=i-0new00000000000000" }],
    ["another instance's key, the new one not vouched for", { kind: "mismatch", expected: [other] }, ec2(["SHA256:x"]), { kind: "refuse", why: "not-vouched" }],
  ])("%s", (_name, verdict, extra, decision) => {
    expect(decideHostKey(verdict, context(extra))).toEqual(decision);
  });
});
