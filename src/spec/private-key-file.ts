import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from "node:fs";

/** More than any SSH key, private or public (an 16384-bit RSA key is ~13 KiB): a larger file is the wrong file. */
export const MAX_KEY_FILE_BYTES = 64 * 1024;

/** A small file read whole, or why it was not: never followed into a FIFO or a device, never past `maxBytes`. */
export type SmallFile =
  | { readonly kind: "read"; readonly bytes: Buffer; readonly stat: Stats }
  | { readonly kind: "unopened"; readonly code?: string; readonly message: string }
  | { readonly kind: "directory" }
  | { readonly kind: "not-a-file" }
  | { readonly kind: "too-large"; readonly size: number };

/** Reads a small regular file synchronously (so `cdktf synth` can), opened without blocking. */
export function readSmallFileSync(file: string, maxBytes = MAX_KEY_FILE_BYTES): SmallFile {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    return { kind: "unopened", code: (err as NodeJS.ErrnoException).code, message: (err as Error).message };
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return { kind: "directory" };
    if (!stat.isFile()) return { kind: "not-a-file" };
    if (stat.size > maxBytes) return { kind: "too-large", size: stat.size };
    const bytes = Buffer.alloc(stat.size);
    return { kind: "read", bytes: bytes.subarray(0, readSync(fd, bytes, 0, stat.size, 0)), stat };
  } finally {
    closeSync(fd);
  }
}

/**
 * What is wrong with a private key file as such, read with bounds: not there, not a regular file, a public key, no
 * private key at all, or readable by others (OpenSSH refuses to use such a key: "UNPROTECTED PRIVATE KEY FILE").
 * Undefined when it looks like a private key. Synchronous and free of ssh2, so `cdktf synth` can call it.
 */
export function privateKeyFileProblem(file: string): string | undefined {
  const read = readSmallFileSync(file);
  switch (read.kind) {
    case "unopened":
      return read.code === "ENOENT" ? "does not exist" : read.code === "EACCES" ? "is not readable by this user" : `cannot be read (${read.code ?? read.message})`;
    case "directory":
      return "is a directory; give the private key file in it (e.g. id_ed25519)";
    case "not-a-file":
      return "is not a regular file";
    case "too-large":
      return `is ${Math.round(read.size / 1024)} KiB, too large for a private key`;
  }
  const text = read.bytes.toString("latin1");
  if (/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-\S+|sk-\S+) AAAA/.test(text.trimStart())) {
    return `is a public key; give the private key${file.endsWith(".pub") ? ` (${file.slice(0, -4)})` : ""}`;
  }
  if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File/.test(text)) return "is not a private key (no \"-----BEGIN ... PRIVATE KEY-----\" in it)";
  if (typeof process.getuid === "function" && read.stat.uid === process.getuid() && (read.stat.mode & 0o077) !== 0) {
    return `is readable by others (mode ${(read.stat.mode & 0o777).toString(8).padStart(4, "0")}), and OpenSSH refuses such a key: chmod 600 ${file}`;
  }
  return undefined;
}
