import { KeyPair } from "@cdktf/provider-aws/lib/key-pair";
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing, TerraformStack } from "cdktf";
import { describe, expect, it, onTestFinished } from "vitest";
import { NixosKeyPair } from "../../src";
import { missing } from "../harness/requirements";

const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0Gk5m5ZpVz8c3fY4Ok7Rr8m0Yq0k7d0p2n6Qv5m4c3 ops@laptop";

function stack(): TerraformStack {
  return new TerraformStack(Testing.app(), "test");
}

describe("NixosKeyPair", () => {
  it("imports public key text and files", () => {
    const s = stack();
    const dir = mkdtempSync(join(tmpdir(), "kp-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "id.pub"), `${KEY}\n`);
    NixosKeyPair.fromPublicKey(s, "a", KEY, { keyName: "ops" });
    NixosKeyPair.fromPublicKeyFile(s, "b", join(dir, "id.pub"));
    const out = Testing.synth(s);
    expect(out).toHaveResourceWithProperties(KeyPair, { key_name: "ops", public_key: KEY });
    expect(out).toHaveResourceWithProperties(KeyPair, { key_name_prefix: "b-", public_key: KEY });
  });

  it("says which directory a generated key cannot go to, and why", () => {
    const dir = mkdtempSync(join(tmpdir(), "kp-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    writeFileSync(join(dir, "keys"), "a file, not a directory");
    expect(() => NixosKeyPair.generate(stack(), "fleet", { privateKeyFile: join(dir, "keys", "fleet") })).toThrow(
      `test/fleet (NixosKeyPair.generate): cannot create the directory ${join(dir, "keys")} for the generated private key (a part of the path is a file); ` +
        "choose a privateKeyFile in a directory you can write",
    );
  });

  it("names an existing key pair without creating one", () => {
    const stack = new TerraformStack(Testing.app(), "t");
    expect(NixosKeyPair.fromKeyPairName(stack, "Ops", "ops").keyName).toBe("ops");
    expect(() => NixosKeyPair.fromKeyPairName(stack, "Blank", " ")).toThrow("t/Blank (NixosKeyPair.fromKeyPairName): the key pair name is empty");
    expect(Testing.synth(stack)).not.toContain("aws_key_pair");
  });

  it("refuses what is not one public key line, and says when it is a private key", () => {
    expect(() => NixosKeyPair.fromPublicKey(stack(), "x", "hello")).toThrow(`test/x (NixosKeyPair): not one OpenSSH public key line ("ssh-ed25519 AAAA... comment"): "hello"`);
    expect(() => NixosKeyPair.fromPublicKey(stack(), "x", "-----BEGIN OPENSSH PRIVATE KEY-----\nabc")).toThrow("that is a private key; pass the .pub file");
    expect(() => NixosKeyPair.fromPublicKeyFile(stack(), "x", "/nonexistent/id.pub")).toThrow(`cannot read public key file "/nonexistent/id.pub"`);
  });

  it.skipIf(missing("sshd"))("generates an ed25519 key at synth, 0600, never overwriting, and keeps the private key out of the stack", () => {
    const dir = mkdtempSync(join(tmpdir(), "kp-"));
    onTestFinished(() => rmSync(dir, { recursive: true, force: true }));
    const file = join(dir, "keys", "ops");
    const s = stack();
    const generated = NixosKeyPair.generate(s, "ops", { privateKeyFile: file });
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const privateKey = readFileSync(file, "utf8");
    expect(generated.privateKeyFile).toBe(file);
    const out = Testing.synth(s);
    expect(out).toHaveResourceWithProperties(KeyPair, { public_key: readFileSync(`${file}.pub`, "utf8").trim() });
    expect(out).not.toContain("PRIVATE KEY");

    NixosKeyPair.generate(stack(), "ops", { privateKeyFile: file });
    expect(readFileSync(file, "utf8")).toBe(privateKey);
  });
});
