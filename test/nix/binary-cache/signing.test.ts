import { describe, expect, it } from "vitest";
import { fromNixBase32, nixSha256, sha256Digest, toNixBase32 } from "../../../src/nix/binary-cache/hash";
import { fingerprint, narKey, narinfoKey, parseNarinfo, renderNarinfo } from "../../../src/nix/binary-cache/narinfo";
import { SigningKeyError, parsePublicKey, parseSigningKey, verifySignature } from "../../../src/nix/binary-cache/signing-key";
import type { PathInfo } from "../../../src/nix/store-source";
import { PUBLIC, SECRET } from "./test-key";


describe("Nix's hash texts", () => {
  // nix-hash --type sha256 --to-base32 $(printf abc | sha256sum)
  const ABC = Buffer.from("ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad", "hex");
  it("writes and reads Nix's base32 as nix-hash does", () => {
    expect(toNixBase32(ABC)).toBe("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
    expect(fromNixBase32("1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", 32)).toEqual(ABC);
  });
  it("reads a SHA-256 in each form Nix writes it, and refuses others", () => {
    for (const text of [`sha256:${ABC.toString("hex")}`, "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s", `sha256-${ABC.toString("base64")}`]) {
      expect(sha256Digest(text)).toEqual(ABC);
    }
    expect(nixSha256(ABC)).toBe("sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s");
    expect(() => sha256Digest("md5:abc")).toThrow(/not a SHA-256 hash Nix writes/);
    expect(() => fromNixBase32("eeee", 32)).toThrow(/not Nix base32/);
  });
});

describe("binary cache signing keys", () => {
  it("derives the public key Nix printed from the secret key, and signs what it verifies", () => {
    const key = parseSigningKey(SECRET, "secret");
    expect(key.publicKey).toBe(PUBLIC);
    const signature = key.sign("1;/nix/store/x;sha256:y;1;");
    expect(signature.startsWith("unit-test-1:")).toBe(true);
    expect(verifySignature(PUBLIC, "1;/nix/store/x;sha256:y;1;", signature)).toBe(true);
    expect(verifySignature(PUBLIC, "1;/nix/store/x;sha256:y;2;", signature)).toBe(false);
    expect(verifySignature("other-1:" + PUBLIC.split(":")[1], "1;/nix/store/x;sha256:y;1;", signature)).toBe(false);
  });
  it.each([
    ["not a key", /is not a Nix binary cache secret key \(NAME:BASE64\); make one with nix-store --generate-binary-cache-key/],
    [PUBLIC, /holds 32 key bytes, not the 64 of a secret key \(is it the public key\?\)/],
    [`unit-test-1:${Buffer.alloc(64, 1).toString("base64")}`, /its public half does not belong to its secret half/],
  ])("refuses %s as a secret key", (text, message) => {
    expect(() => parseSigningKey(text, "key.secret")).toThrow(SigningKeyError);
    expect(() => parseSigningKey(text, "key.secret")).toThrow(message);
  });
  it("refuses a public key that is not NAME:BASE64 of 32 bytes", () => {
    expect(() => parsePublicKey("cache-1:AAAA")).toThrow(/is not a Nix binary cache public key/);
    expect(parsePublicKey(PUBLIC).name).toBe("unit-test-1");
  });
});

describe("narinfo", () => {
  const info: PathInfo = {
    path: "/nix/store/7dlgxz57s50dzmgmjpazf9639k1gx417-hello-2.12",
    deriver: "/nix/store/0k0b5mvz2i9zmzkvp2d6f4wkkb8wmbxk-hello-2.12.drv",
    narHash: "sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
    narSize: 226552,
    references: ["/nix/store/7dlgxz57s50dzmgmjpazf9639k1gx417-hello-2.12", "/nix/store/3n58xw4373jp0ljirf06d8077j15pc4j-glibc-2.37-8"],
    registrationTime: 0,
    ultimate: false,
    sigs: [],
  };
  it("signs the fingerprint Nix checks: 1;path;narHash in base32;narSize;sorted references", () => {
    expect(fingerprint(info)).toBe("1;/nix/store/7dlgxz57s50dzmgmjpazf9639k1gx417-hello-2.12;sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s;226552;" +
      "/nix/store/3n58xw4373jp0ljirf06d8077j15pc4j-glibc-2.37-8,/nix/store/7dlgxz57s50dzmgmjpazf9639k1gx417-hello-2.12");
  });
  it("is written as Nix's binary cache writes it, and named by the path's hash part", () => {
    const fileHash = Buffer.alloc(32, 1);
    const key = narKey(fileHash, "zstd");
    expect(key).toBe(`nar/${toNixBase32(fileHash)}.nar.zst`);
    const text = renderNarinfo(info, { key, compression: "zstd", fileHash, fileSize: 1000 }, ["unit-test-1:c2ln"]);
    expect(text).toBe([
      "StorePath: /nix/store/7dlgxz57s50dzmgmjpazf9639k1gx417-hello-2.12",
      `URL: ${key}`,
      "Compression: zstd",
      `FileHash: sha256:${toNixBase32(fileHash)}`,
      "FileSize: 1000",
      "NarHash: sha256:1b8m03r63zqhnjf7l5wnldhh7c134ap5vpj0850ymkq1iyzicy5s",
      "NarSize: 226552",
      "References: 3n58xw4373jp0ljirf06d8077j15pc4j-glibc-2.37-8 7dlgxz57s50dzmgmjpazf9639k1gx417-hello-2.12",
      "Deriver: 0k0b5mvz2i9zmzkvp2d6f4wkkb8wmbxk-hello-2.12.drv",
      "Sig: unit-test-1:c2ln",
      "",
    ].join("\n"));
    expect(narinfoKey(info.path)).toBe("7dlgxz57s50dzmgmjpazf9639k1gx417.narinfo");
    expect(parseNarinfo(text).sigs).toEqual(["unit-test-1:c2ln"]);
    expect(parseNarinfo(text).fields.get("NarSize")).toBe("226552");
  });
});
