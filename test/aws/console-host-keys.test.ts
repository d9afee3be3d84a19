import { describe, expect, it } from "vitest";
import { parseConsoleHostKeys } from "../../src/aws/console-host-keys";

const block = (lines: string[]) =>
  ["-----BEGIN SSH HOST KEY FINGERPRINTS-----", ...lines, "-----END SSH HOST KEY FINGERPRINTS-----"].join("\r\n");

describe("parseConsoleHostKeys", () => {
  it("reads ssh-keygen -l lines between the markers, among boot noise and console timestamps", () => {
    const console = [
      "[    0.000000] Linux version 6.12.30 (nixbld@localhost)",
      "<<< Welcome to NixOS 25.05.802216.55d1f923c480 (x86_64) - ttyS0 >>>",
      block([
        "[   12.345678] 256 SHA256:Ab3dEf+gh/IJ0klmNOPqrsTUVwxYZ0123456789abcdEF root@ip-172-31-5-9 (ED25519)",
        "3072 SHA256:Zz9yXw8vUt7sRq6pOn5mLk4jIh3gFe2dCb1a0ZYXWVUTS root@ip-172-31-5-9 (RSA)",
      ]),
      "ip-172-31-5-9 login:",
    ].join("\r\n");
    expect(parseConsoleHostKeys(console)).toEqual([
      { bits: 256, fingerprint: "SHA256:Ab3dEf+gh/IJ0klmNOPqrsTUVwxYZ0123456789abcdEF", type: "ED25519" },
      { bits: 3072, fingerprint: "SHA256:Zz9yXw8vUt7sRq6pOn5mLk4jIh3gFe2dCb1a0ZYXWVUTS", type: "RSA" },
    ]);
  });

  it("takes the latest boot's block", () => {
    const first = block(["256 SHA256:old root@a (ED25519)"]);
    const second = block(["256 SHA256:new root@a (ED25519)"]);
    expect(parseConsoleHostKeys(`${first}\nreboot\n${second}`)?.map((k) => k.fingerprint)).toEqual(["SHA256:new"]);
  });

  it("says nothing until the block is complete", () => {
    expect(parseConsoleHostKeys("booting...")).toBeUndefined();
    expect(parseConsoleHostKeys("-----BEGIN SSH HOST KEY FINGERPRINTS-----\n256 SHA256:x root@a (ED25519)")).toBeUndefined();
  });
});
