import { createPrivateKey, createPublicKey, generateKeyPairSync, sign, verify, type KeyObject } from "node:crypto";
import { closeSync, fstatSync, openSync, readSync, writeSync } from "node:fs";
import { open } from "node:fs/promises";
import { UserInputError } from "../../errors";
import { parsePublicKeyText } from "../../spec/cache-url";

/**
 * A binary cache signing key in `nix-store --generate-binary-cache-key`'s format: `NAME:BASE64` of libsodium's 64-byte
 * ed25519 secret key (the 32-byte seed, then the public key). Its public half, `NAME:BASE64(32 bytes)`, is what hosts
 * list in trusted-public-keys. The secret is read from its file when a push signs, held in memory only.
 */
export interface SigningKey {
  readonly name: string;
  /** `NAME:BASE64`, as trusted-public-keys lists it. */
  readonly publicKey: string;
  /** `NAME:BASE64(signature)` of a narinfo's fingerprint. */
  sign(fingerprint: string): string;
}

/** A key file is one line of well under 1 KiB; more is not a key. */
const MAX_KEY_FILE_BYTES = 4096;
// DER prefixes that turn raw ed25519 key bytes into the PKCS#8 / SPKI Node's crypto takes
const PKCS8_ED25519 = Buffer.from("302e020100300506032b657004220420", "hex");
const SPKI_ED25519 = Buffer.from("302a300506032b6570032100", "hex");

export class SigningKeyError extends UserInputError {}

export function parseSigningKey(text: string, origin: string): SigningKey {
  const match = /^([^:\s]+):([A-Za-z0-9+/]+={0,2})$/.exec(text.trim());
  if (!match) {
    throw new SigningKeyError(`${origin} is not a Nix binary cache secret key (NAME:BASE64); make one with ` +
      "nix-store --generate-binary-cache-key NAME secret.key public.key");
  }
  const bytes = Buffer.from(match[2]!, "base64");
  if (bytes.length !== 64) {
    throw new SigningKeyError(`${origin} holds ${bytes.length} key bytes, not the 64 of a secret key` +
      (bytes.length === 32 ? " (is it the public key?)" : ""));
  }
  const name = match[1]!;
  const privateKey = createPrivateKey({ key: Buffer.concat([PKCS8_ED25519, bytes.subarray(0, 32)]), format: "der", type: "pkcs8" });
  const derived = createPublicKey(privateKey).export({ format: "der", type: "spki" }).subarray(SPKI_ED25519.length);
  if (!derived.equals(bytes.subarray(32))) throw new SigningKeyError(`${origin}: its public half does not belong to its secret half`);
  return {
    name,
    publicKey: `${name}:${derived.toString("base64")}`,
    sign: (fingerprint) => `${name}:${sign(null, Buffer.from(fingerprint, "utf8"), privateKey).toString("base64")}`,
  };
}

/** Reads a secret key file (bounded), e.g. `--cache-signing-key`. */
export async function readSigningKey(file: string): Promise<SigningKey> {
  let handle;
  try {
    handle = await open(file, "r");
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new SigningKeyError(code === "ENOENT"
      ? `the cache signing key ${file} does not exist (make one with nix-store --generate-binary-cache-key NAME ${file} ${file}.pub)`
      : `cannot read the cache signing key ${file}: ${code ?? (err as Error).message}`);
  }
  try {
    if (!(await handle.stat()).isFile()) throw new SigningKeyError(`the cache signing key ${file} is not a file`);
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_KEY_FILE_BYTES) throw new SigningKeyError(`${file} is larger than a cache signing key (over ${MAX_KEY_FILE_BYTES} bytes)`);
    return parseSigningKey(buffer.subarray(0, bytesRead).toString("utf8"), file);
  } finally {
    await handle.close();
  }
}

/** A `NAME:BASE64` public key of 32 bytes, as trusted-public-keys takes it. */
export function parsePublicKey(text: string): { readonly name: string; readonly key: KeyObject } {
  const { name, bytes } = parsePublicKeyText(text);
  return { name, key: createPublicKey({ key: Buffer.concat([SPKI_ED25519, bytes]), format: "der", type: "spki" }) };
}

/** Whether `signature` (NAME:BASE64) is `publicKey`'s over `fingerprint`. */
export function verifySignature(publicKey: string, fingerprint: string, signature: string): boolean {
  const key = parsePublicKey(publicKey);
  const colon = signature.indexOf(":");
  if (colon < 0 || signature.slice(0, colon) !== key.name) return false;
  return verify(null, Buffer.from(fingerprint, "utf8"), key.key, Buffer.from(signature.slice(colon + 1), "base64"));
}

/**
 * A new key in `nix-store --generate-binary-cache-key`'s format, written to `file` (created, never replaced: `wx`)
 * readable by its owner only; returns it.
 */
export function generateSigningKeyFile(file: string, name: string): SigningKey {
  const { privateKey, publicKey } = generateKeyPairSync("ed25519");
  const seed = privateKey.export({ format: "der", type: "pkcs8" }).subarray(PKCS8_ED25519.length);
  const pub = publicKey.export({ format: "der", type: "spki" }).subarray(SPKI_ED25519.length);
  const text = `${name}:${Buffer.concat([seed, pub]).toString("base64")}`;
  const fd = openSync(file, "wx", 0o600);
  try {
    writeSync(fd, text);
  } finally {
    closeSync(fd);
  }
  return parseSigningKey(text, file);
}

/** Reads a secret key file at synth (bounded). */
export function readSigningKeySync(file: string): SigningKey {
  const fd = openSync(file, "r");
  try {
    const stat = fstatSync(fd);
    if (!stat.isFile()) throw new SigningKeyError(`the cache signing key ${file} is not a file`);
    const buffer = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    const bytesRead = readSync(fd, buffer, 0, buffer.length, 0);
    if (bytesRead > MAX_KEY_FILE_BYTES) throw new SigningKeyError(`${file} is larger than a cache signing key (over ${MAX_KEY_FILE_BYTES} bytes)`);
    return parseSigningKey(buffer.subarray(0, bytesRead).toString("utf8"), file);
  } finally {
    closeSync(fd);
  }
}
