import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import {
  KnownHostsFile,
  checkHostKey,
  fingerprint,
  hostFieldMatches,
  instanceComment,
  instanceOf,
  keyTypeOf,
  knownHostsName,
  knownKeyTypes,
  parseKnownHosts,
} from "../../../src/deploy/ssh/known-hosts";
import { missing } from "../../harness/requirements";

function newKey(dir: string, name: string): { line: string; blob: Buffer; fingerprint: string } {
  const file = join(dir, name);
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", file]);
  const [type, b64] = readFileSync(`${file}.pub`, "utf8").trim().split(" ");
  const fp = execFileSync("ssh-keygen", ["-l", "-f", `${file}.pub`], { encoding: "utf8" }).split(" ")[1];
  return { line: `${type} ${b64}`, blob: Buffer.from(b64, "base64"), fingerprint: fp };
}

describe("known_hosts names", () => {
  it("uses [host]:port for ports other than 22", () => {
    expect(knownHostsName("10.0.0.1", 22)).toBe("10.0.0.1");
    expect(knownHostsName("10.0.0.1", 2222)).toBe("[10.0.0.1]:2222");
  });

  it("matches comma lists, wildcards and negations", () => {
    expect(hostFieldMatches("web,10.0.0.1", "10.0.0.1")).toBe(true);
    expect(hostFieldMatches("*.example.com", "a.example.com")).toBe(true);
    expect(hostFieldMatches("web?", "web1")).toBe(true);
    expect(hostFieldMatches("*.example.com,!bad.example.com", "bad.example.com")).toBe(false);
    expect(hostFieldMatches("WEB", "web")).toBe(true);
    expect(hostFieldMatches("web", "web2")).toBe(false);
  });
});

describe.skipIf(missing("sshd"))("host keys (keys and hashes from ssh-keygen)", () => {
  const dir = mkdtempSync(join(tmpdir(), "kh-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const a = newKey(dir, "a");
  const b = newKey(dir, "b");

  it("computes OpenSSH's fingerprint and key type", () => {
    expect(fingerprint(a.blob)).toBe(a.fingerprint);
    expect(keyTypeOf(a.blob)).toBe("ssh-ed25519");
  });

  it("matches hashed entries written by ssh-keygen -H", () => {
    const file = join(dir, "hashed");
    writeFileSync(file, `web.example.com ${a.line}\n[10.0.0.9]:2222 ${b.line}\n`);
    execFileSync("ssh-keygen", ["-H", "-f", file], { stdio: "ignore" });
    const entries = parseKnownHosts(readFileSync(file, "utf8"));
    expect(entries.every((e) => e.hosts.startsWith("|1|"))).toBe(true);
    expect(checkHostKey(entries, ["web.example.com"], a.blob).kind).toBe("known");
    expect(checkHostKey(entries, ["[10.0.0.9]:2222"], b.blob).kind).toBe("known");
    expect(checkHostKey(entries, ["10.0.0.9"], b.blob).kind).toBe("unknown");
  });

  it("tells a changed key from an unknown host, and honours @revoked", () => {
    const entries = parseKnownHosts(`# fleet\nweb ${a.line}\n@revoked * ${b.line}\n`);
    expect(checkHostKey(entries, ["web"], a.blob)).toMatchObject({ kind: "known", entry: { line: 2 } });
    expect(checkHostKey(entries, ["db"], a.blob)).toEqual({ kind: "unknown" });
    const revoked = newKey(dir, "c");
    const mismatch = checkHostKey(entries, ["web"], revoked.blob);
    expect(mismatch.kind).toBe("mismatch");
    expect(checkHostKey(entries, ["web"], b.blob).kind).toBe("revoked");
    expect(knownKeyTypes(entries, ["web"])).toEqual(["ssh-ed25519"]);
  });

  it("calls a damaged line unreadable, not a changed key", () => {
    const [type, key] = a.line.split(" ");
    const damaged = parseKnownHosts(`web ${type} ${key.slice(0, 20)}!!${key.slice(22)}\ndb ${type} AAAA\n`);
    expect(checkHostKey(damaged, ["web"], a.blob)).toMatchObject({ kind: "unreadable", entries: [{ line: 1 }] });
    expect(checkHostKey(damaged, ["db"], a.blob)).toMatchObject({ kind: "unreadable", entries: [{ line: 2 }] });
  });

  it("records a new host hashed, in a file ssh-keygen -F can find it in", async () => {
    const file = join(dir, "sub", "known_hosts");
    const known = await KnownHostsFile.load(file);
    expect(known.entries).toEqual([]);
    await known.add("[10.1.2.3]:2200", a.blob);
    const found = execFileSync("ssh-keygen", ["-F", "[10.1.2.3]:2200", "-f", file], { encoding: "utf8" });
    expect(found).toContain(a.line);
    expect(checkHostKey((await KnownHostsFile.load(file)).entries, ["[10.1.2.3]:2200"], a.blob).kind).toBe("known");
  });

  it("loses no entry when deployments and destroy provisioners change the file at the same time", async () => {
    const file = join(dir, "concurrent", "known_hosts");
    const keys = ["k1", "k2", "k3", "k4", "k5", "k6"].map((n) => newKey(dir, n));
    const seed = await KnownHostsFile.load(file);
    for (const [i, key] of keys.slice(0, 4).entries()) await seed.add(`10.0.0.${i}`, key.blob, i < 3 ? instanceComment(`i-0000000${i}aaaaaaaa`) : undefined);
    // three instances destroyed (Terraform runs their provisioners in parallel) while two new hosts are recorded
    const removed = await Promise.all([
      ...[0, 1, 2].map(async (i) => (await KnownHostsFile.load(file)).removeInstance(`i-0000000${i}aaaaaaaa`)),
      ...[4, 5].map(async (i) => (await KnownHostsFile.load(file)).add(`10.0.0.${i}`, keys[i].blob).then(() => 0)),
    ]);
    expect(removed).toEqual([1, 1, 1, 0, 0]);
    const left = (await KnownHostsFile.load(file)).entries;
    expect(left.map((e) => e.key.toString("base64")).sort()).toEqual([keys[3], keys[4], keys[5]].map((k) => k.blob.toString("base64")).sort());
    expect(left.every((e) => instanceOf(e) === undefined)).toBe(true);
    expect(readFileSync(file, "utf8").endsWith("\n")).toBe(true);
  });
});
