import { globRegExp } from "../../glob";
import { createHash, createHmac, randomBytes } from "node:crypto";
import { appendFile, mkdir, readFile, rename, writeFile } from "node:fs/promises";
import { statSync } from "node:fs";
import { dirname, join } from "node:path";
import { lock } from "proper-lockfile";

/** One key line of an OpenSSH known_hosts file (sshd(8), SSH_KNOWN_HOSTS FILE FORMAT). */
export interface KnownHostEntry {
  readonly line: number;
  readonly marker?: "@cert-authority" | "@revoked";
  /** Comma-separated patterns, or a single hashed `|1|salt|hash` name. */
  readonly hosts: string;
  readonly keyType: string;
  readonly key: Buffer;
  /** What follows the key; we record `cdktf-nixos-instance=i-…` there for keys an EC2 console vouched for. */
  readonly comment?: string;
  /** The key field is valid base64 of a whole SSH public key of `keyType` (a damaged line's is not). */
  readonly readable: boolean;
}

const INSTANCE_COMMENT = "cdktf-nixos-instance=";

/**
 * What makes `file` unusable as a known_hosts file: a directory (it need not exist yet, the first key recorded creates
 * it; /dev/null is ssh's "none").
 */
export function knownHostsFileProblem(file: string): string | undefined {
  try {
    const stat = statSync(file);
    if (stat.isDirectory()) return `the known_hosts file ${file} is a directory; give the file in it (e.g. ${join(file, "known_hosts")})`;
  } catch {
    // not there yet
  }
  return undefined;
}

/** The comment that ties a known_hosts entry to the EC2 instance whose console vouched for its key. */
export function instanceComment(instanceId: string): string {
  return `${INSTANCE_COMMENT}${instanceId}`;
}

/** The instance an entry was recorded for, if it was recorded that way. */
export function instanceOf(entry: KnownHostEntry): string | undefined {
  const word = entry.comment?.split(/\s+/).find((w) => w.startsWith(INSTANCE_COMMENT));
  return word?.slice(INSTANCE_COMMENT.length);
}

export function parseKnownHosts(text: string): KnownHostEntry[] {
  const entries: KnownHostEntry[] = [];
  text.split("\n").forEach((raw, index) => {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) return;
    const fields = line.split(/\s+/);
    let marker: KnownHostEntry["marker"];
    if (fields[0] === "@cert-authority" || fields[0] === "@revoked") marker = fields.shift() as KnownHostEntry["marker"];
    if (fields.length < 3) return;
    const [hosts, keyType, key, ...comment] = fields;
    const blob = Buffer.from(key, "base64");
    entries.push({
      line: index + 1, marker, hosts, keyType, key: blob,
      ...(comment.length > 0 ? { comment: comment.join(" ") } : {}),
      readable: /^[A-Za-z0-9+/]+={0,2}$/.test(key) && blob.toString("base64") === key && isWholeKey(blob, keyType),
    });
  });
  return entries;
}

/** The name OpenSSH looks a host up by: `host`, or `[host]:port` for other ports. */
export function knownHostsName(host: string, port: number): string {
  return port === 22 ? host : `[${host}]:${port}`;
}

/** Whether a host field of a known_hosts line covers `name` (hashed names, patterns with * and ?, negation). */
export function hostFieldMatches(field: string, name: string): boolean {
  if (field.startsWith("|1|")) {
    const [, , salt, hash] = field.split("|");
    if (salt === undefined || hash === undefined) return false;
    const digest = createHmac("sha1", Buffer.from(salt, "base64")).update(name).digest("base64");
    return digest === hash;
  }
  let matched = false;
  for (const pattern of field.split(",")) {
    const negated = pattern.startsWith("!");
    if (globMatches(negated ? pattern.slice(1) : pattern, name.toLowerCase())) {
      if (negated) return false;
      matched = true;
    }
  }
  return matched;
}

function globMatches(pattern: string, name: string): boolean {
  return globRegExp(pattern, { ignoreCase: true }).test(name);
}

/** The key type named inside an SSH public key blob (its first string). */
export function keyTypeOf(blob: Buffer): string {
  if (blob.length < 4) return "unknown";
  const length = blob.readUInt32BE(0);
  return blob.subarray(4, 4 + length).toString("ascii");
}

/** OpenSSH's SHA256 fingerprint of a key blob, as `ssh-keygen -l` prints it. */
export function fingerprint(blob: Buffer): string {
  return `SHA256:${createHash("sha256").update(blob).digest("base64").replace(/=+$/, "")}`;
}

export type HostKeyVerdict =
  | { readonly kind: "known"; readonly entry: KnownHostEntry }
  | { readonly kind: "unknown" }
  | { readonly kind: "mismatch"; readonly expected: readonly KnownHostEntry[] }
  | { readonly kind: "revoked"; readonly entry: KnownHostEntry }
  /** Entries for the host whose key cannot be decoded (a damaged line): nothing can be checked against them. */
  | { readonly kind: "unreadable"; readonly entries: readonly KnownHostEntry[] };

/** An SSH wire-format public key of `keyType`: length-prefixed fields that use up the blob exactly. */
function isWholeKey(blob: Buffer, keyType: string): boolean {
  if (keyTypeOf(blob) !== keyType) return false;
  let offset = 0;
  while (offset < blob.length) {
    if (offset + 4 > blob.length) return false;
    offset += 4 + blob.readUInt32BE(offset);
  }
  return offset === blob.length;
}

/**
 * What the known_hosts entries say about the key a host offered. Any entry for the host with another key means
 * mismatch, whatever its type: we ask the server for the key types we know (see knownKeyTypes), so a host that
 * still has its recorded key offers it.
 */
export function checkHostKey(entries: readonly KnownHostEntry[], names: readonly string[], offered: Buffer): HostKeyVerdict {
  const forHost = entries.filter((e) => e.marker !== "@cert-authority" && names.some((n) => hostFieldMatches(e.hosts, n)));
  const revoked = entries.find((e) => e.marker === "@revoked" && e.key.equals(offered));
  if (revoked) return { kind: "revoked", entry: revoked };
  const known = forHost.find((e) => e.marker === undefined && e.key.equals(offered));
  if (known) return { kind: "known", entry: known };
  const others = forHost.filter((e) => e.marker === undefined);
  const unreadable = others.filter((e) => !e.readable);
  if (unreadable.length > 0) return { kind: "unreadable", entries: unreadable };
  return others.length > 0 ? { kind: "mismatch", expected: others } : { kind: "unknown" };
}

/** The key types recorded for a host, so the SSH negotiation can prefer them (as OpenSSH does). */
export function knownKeyTypes(entries: readonly KnownHostEntry[], names: readonly string[]): string[] {
  return [...new Set(entries
    .filter((e) => e.marker === undefined && names.some((n) => hostFieldMatches(e.hosts, n)))
    .map((e) => e.keyType))];
}

export class KnownHostsFile {
  private constructor(readonly path: string, readonly entries: readonly KnownHostEntry[]) {}

  static async load(path: string): Promise<KnownHostsFile> {
    let text = "";
    try {
      text = await readFile(path, "utf8");
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
    }
    return new KnownHostsFile(path, parseKnownHosts(text));
  }

  /** Records a host's key, hashed like OpenSSH's HashKnownHosts so the file does not list the fleet in clear text. */
  async add(name: string, blob: Buffer, comment?: string): Promise<void> {
    await this.locked(async () => {
      let prefix = "";
      try {
        const existing = await readFile(this.path, "utf8");
        if (existing !== "" && !existing.endsWith("\n")) prefix = "\n";
      } catch {
        // a new file
      }
      await appendFile(this.path, `${prefix}${entryLine(name, blob, comment)}\n`, { mode: 0o600 });
    });
  }

  /**
   * Rewrites the file without the entries `remove` picks and, when `add` is given, with that entry appended; through a
   * temporary file and a rename, so a crash leaves the old file or the new one. The file is read again under the
   * lock, so concurrent deployments (parallel pushes, Terraform's parallel destroy provisioners) lose no entry.
   * Returns how many entries went.
   */
  async rewrite(remove: (entry: KnownHostEntry) => boolean, add?: { name: string; key: Buffer; comment?: string }): Promise<number> {
    return this.locked(async () => {
      let text = "";
      try {
        text = await readFile(this.path, "utf8");
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      }
      const removeLines = new Set(parseKnownHosts(text).filter(remove).map((e) => e.line));
      if (removeLines.size === 0 && add === undefined) return 0;
      const lines = text.split("\n");
      if (lines.at(-1) === "") lines.pop();
      const kept = lines.filter((_, index) => !removeLines.has(index + 1));
      if (add !== undefined) kept.push(entryLine(add.name, add.key, add.comment));
      const temporary = `${this.path}.${process.pid}.tmp`;
      await writeFile(temporary, kept.length > 0 ? `${kept.join("\n")}\n` : "", { mode: 0o600 });
      await rename(temporary, this.path);
      return removeLines.size;
    });
  }

  /** Removes every entry recorded for an EC2 instance (it was destroyed). Returns how many went. */
  removeInstance(instanceId: string): Promise<number> {
    return this.rewrite((entry) => instanceOf(entry) === instanceId);
  }

  /** Runs `change` holding the file's lock (`<file>.lock`, a directory: atomic across processes, stale after 10 s). */
  private async locked<T>(change: () => Promise<T>): Promise<T> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const release = await lock(this.path, { realpath: false, stale: 10_000, retries: { retries: 100, minTimeout: 10, maxTimeout: 200 } });
    try {
      return await change();
    } finally {
      await release();
    }
  }
}

function entryLine(name: string, blob: Buffer, comment?: string): string {
  return `${hashHostName(name)} ${keyTypeOf(blob)} ${blob.toString("base64")}${comment === undefined ? "" : ` ${comment}`}`;
}

export function hashHostName(name: string, salt: Buffer = randomBytes(20)): string {
  const hash = createHmac("sha1", salt).update(name).digest("base64");
  return `|1|${salt.toString("base64")}|${hash}`;
}
