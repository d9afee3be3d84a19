/**
 * Nix's hash texts: its own base32 (not RFC 4648: another alphabet, read from the last byte), hex and SRI base64. A
 * narinfo and a signature's fingerprint hold `sha256:` + base32, whatever form the store reported.
 */
const ALPHABET = "0123456789abcdfghijklmnpqrsvwxyz";
const SHA256_BYTES = 32;

export function toNixBase32(bytes: Buffer): string {
  const length = Math.floor((bytes.length * 8 - 1) / 5) + 1;
  let out = "";
  for (let n = length - 1; n >= 0; n--) {
    const bit = n * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    const low = bytes[i]! >> j;
    const high = i + 1 < bytes.length ? bytes[i + 1]! << (8 - j) : 0;
    out += ALPHABET[(low | high) & 0x1f];
  }
  return out;
}

export function fromNixBase32(text: string, size: number): Buffer {
  const out = Buffer.alloc(size);
  for (let n = 0; n < text.length; n++) {
    const digit = ALPHABET.indexOf(text[text.length - n - 1]!);
    if (digit < 0) throw new Error(`'${text}' is not Nix base32`);
    const bit = n * 5;
    const i = Math.floor(bit / 8);
    const j = bit % 8;
    out[i]! |= (digit << j) & 0xff;
    const carry = digit >> (8 - j);
    if (i + 1 < size) out[i + 1]! |= carry;
    else if (carry !== 0) throw new Error(`'${text}' is not a ${size}-byte Nix base32 hash`);
  }
  return out;
}

/** The digest of a `sha256:…` (base32 or hex) or `sha256-…` (SRI) text. */
export function sha256Digest(text: string): Buffer {
  const sri = /^sha256-([A-Za-z0-9+/]{43}=)$/.exec(text);
  if (sri) return Buffer.from(sri[1]!, "base64");
  const typed = /^sha256:([0-9a-z]+)$/.exec(text);
  if (typed && typed[1]!.length === 64 && /^[0-9a-f]+$/.test(typed[1]!)) return Buffer.from(typed[1]!, "hex");
  if (typed && typed[1]!.length === 52) return fromNixBase32(typed[1]!, SHA256_BYTES);
  throw new Error(`'${text}' is not a SHA-256 hash Nix writes (sha256:BASE32, sha256:HEX or sha256-BASE64)`);
}

/** `sha256:` + Nix base32: how narinfos and fingerprints write a hash. */
export function nixSha256(digest: Buffer): string {
  return `sha256:${toNixBase32(digest)}`;
}
