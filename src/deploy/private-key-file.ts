import { closeSync, constants, fstatSync, openSync, readSync } from "node:fs";

/** More than any private key (an 16384-bit RSA key is ~13 KiB): a larger file is the wrong file. */
const MAX_PRIVATE_KEY_BYTES = 64 * 1024;

/**
 * What is wrong with a private key file as such, read with bounds and without following it into a FIFO or a device:
 * not there, not a regular file, a public key, no private key at all, or readable by others (OpenSSH refuses to use
 * such a key: "UNPROTECTED PRIVATE KEY FILE"). Undefined when it looks like a private key. Synchronous and free of
 * ssh2, so `cdktf synth` can call it.
 */
export function privateKeyFileProblem(file: string): string | undefined {
  let fd: number;
  try {
    fd = openSync(file, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this user" : `cannot be read (${code ?? String(err)})`;
  }
  try {
    const stat = fstatSync(fd);
    if (stat.isDirectory()) return "is a directory; give the private key file in it (e.g. id_ed25519)";
    if (!stat.isFile()) return "is not a regular file";
    if (stat.size > MAX_PRIVATE_KEY_BYTES) return `is ${Math.round(stat.size / 1024)} KiB, too large for a private key`;
    const head = Buffer.alloc(Math.min(stat.size, MAX_PRIVATE_KEY_BYTES));
    const length = readSync(fd, head, 0, head.length, 0);
    const text = head.subarray(0, length).toString("latin1");
    if (/^(ssh-(ed25519|rsa|dss)|ecdsa-sha2-\S+|sk-\S+) AAAA/.test(text.trimStart())) {
      return `is a public key; give the private key${file.endsWith(".pub") ? ` (${file.slice(0, -4)})` : ""}`;
    }
    if (!/-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----|^PuTTY-User-Key-File/.test(text)) return "is not a private key (no \"-----BEGIN ... PRIVATE KEY-----\" in it)";
    if (typeof process.getuid === "function" && stat.uid === process.getuid() && (stat.mode & 0o077) !== 0) {
      return `is readable by others (mode ${(stat.mode & 0o777).toString(8).padStart(4, "0")}), and OpenSSH refuses such a key: chmod 600 ${file}`;
    }
    return undefined;
  } finally {
    closeSync(fd);
  }
}
