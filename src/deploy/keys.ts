import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { readFile } from "node:fs/promises";
import { posix } from "node:path";
import { KeysError } from "../errors";
import { shellQuote } from "../shell";
import type { Host } from "./host";

/** When a key is uploaded, like colmena's `uploadAt`. */
export const KEY_UPLOAD_TIMES = ["before-activation", "after-activation"] as const;
export type KeyUploadAt = (typeof KEY_UPLOAD_TIMES)[number];

/**
 * A file put on the host outside the Nix store (colmena's `deployment.keys`). The spec holds no secret: the content
 * is read on the deploying machine at deploy time, from `file` or from the output of `command`.
 */
export interface KeySpec {
  /** File name in `destDir`. */
  readonly name: string;
  /** A file on the deploying machine (absolute, or relative to where the deploy runs). */
  readonly file?: string;
  /** A command run on the deploying machine (argv, no shell); its stdout is the content. */
  readonly command?: readonly string[];
  /** @default "/run/keys" (a tmpfs on NixOS: gone on reboot, never on disk) */
  readonly destDir?: string;
  /** @default "root" */
  readonly user?: string;
  /** @default "root" */
  readonly group?: string;
  /** Octal mode. @default "0400" */
  readonly permissions?: string;
  /** @default "before-activation" */
  readonly uploadAt?: KeyUploadAt;
}

const DEFAULT_KEY_DIR = "/run/keys";

/** A key with its content, read on the deploying machine before anything is built or contacted. */
export interface LoadedKey {
  readonly name: string;
  readonly path: string;
  readonly user: string;
  readonly group: string;
  readonly permissions: string;
  readonly uploadAt: KeyUploadAt;
  readonly content: Buffer;
  /** `sha256:HEX` of the content: what reports show instead of it. */
  readonly sha256: string;
}

/** What a report says about an uploaded key: never its content. */
export interface KeyReport {
  readonly name: string;
  readonly path: string;
  readonly sha256: string;
  readonly uploadAt: KeyUploadAt;
}

/** A key spec that cannot be used, or a key whose content cannot be read; found before anything changes. */
export class KeySpecError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "KeySpecError";
  }
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$/;
const ACCOUNT = /^[a-z_][a-z0-9_.-]*\$?$/i;

/** Every reason `spec` cannot be used, as sentences naming the key; empty when it is fine. */
function keySpecProblems(spec: KeySpec): string[] {
  const problems: string[] = [];
  const key = `key "${spec.name}"`;
  if (typeof spec.name !== "string" || !NAME.test(spec.name)) {
    problems.push(`key name "${spec.name}" is not a file name (letters, digits, _ . @ + -; no "/")`);
  }
  if ((spec.file === undefined) === (spec.command === undefined)) problems.push(`${key}: give exactly one of file and command`);
  if (spec.command !== undefined && (!Array.isArray(spec.command) || spec.command.length === 0 || spec.command.some((w) => typeof w !== "string"))) {
    problems.push(`${key}: command must be a non-empty list of words (argv, no shell), e.g. ["pass", "show", "db"]`);
  }
  const dir = spec.destDir ?? DEFAULT_KEY_DIR;
  if (!posix.isAbsolute(dir) || posix.normalize(dir) !== dir.replace(/\/$/, "") || dir.startsWith("/nix/")) {
    problems.push(`${key}: destDir "${dir}" is not an absolute, normalized directory outside /nix`);
  }
  for (const [what, value] of [["user", spec.user], ["group", spec.group]] as const) {
    if (value !== undefined && !ACCOUNT.test(value)) problems.push(`${key}: ${what} "${value}" is not a user or group name`);
  }
  if (spec.permissions !== undefined && !/^0?[0-7]{3}$/.test(spec.permissions)) {
    problems.push(`${key}: permissions "${spec.permissions}" is not an octal mode such as "0400" or "0440"`);
  }
  if (spec.uploadAt !== undefined && !KEY_UPLOAD_TIMES.includes(spec.uploadAt)) {
    problems.push(`${key}: uploadAt "${spec.uploadAt}" is not one of ${KEY_UPLOAD_TIMES.join(", ")}`);
  }
  return problems;
}

/** Checks a deployment's keys: each valid, and no two at the same path. */
export function keySpecsProblems(specs: readonly KeySpec[]): string[] {
  const problems = specs.flatMap(keySpecProblems);
  const paths = specs.map((s) => posix.join(s.destDir ?? DEFAULT_KEY_DIR, s.name));
  const twice = paths.filter((p, i) => paths.indexOf(p) !== i);
  if (twice.length > 0) problems.push(`two keys would be written to ${[...new Set(twice)].join(", ")}`);
  return problems;
}

/** `--key NAME=FILE`: a key with every default. */
export function parseKeyArgument(value: string): KeySpec {
  const match = /^([^=]+)=(.+)$/.exec(value);
  if (match === null) throw new KeySpecError(`--key '${value}' is not NAME=FILE (e.g. --key db-password=./secrets/db)`);
  return { name: match[1], file: match[2] };
}

/**
 * Reads every key's content on this machine: files, and commands run with our environment. Sources shared by several
 * keys (or hosts, in a push) are read once. Throws a KeySpecError naming the key when one cannot be read.
 */
export async function loadKeys(specs: readonly KeySpec[], cache = new Map<string, Promise<Buffer>>()): Promise<LoadedKey[]> {
  const problems = keySpecsProblems(specs);
  if (problems.length > 0) throw new KeySpecError(problems.join("; "));
  return Promise.all(specs.map(async (spec): Promise<LoadedKey> => {
    const source = JSON.stringify(spec.file ?? spec.command);
    let content = cache.get(source);
    if (content === undefined) {
      content = spec.file !== undefined ? readKeyFile(spec.name, spec.file) : runKeyCommand(spec.name, spec.command!);
      cache.set(source, content);
    }
    const bytes = await content;
    return {
      name: spec.name,
      path: posix.join(spec.destDir ?? DEFAULT_KEY_DIR, spec.name),
      user: spec.user ?? "root",
      group: spec.group ?? "root",
      permissions: spec.permissions ?? "0400",
      uploadAt: spec.uploadAt ?? "before-activation",
      content: bytes,
      sha256: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    };
  }));
}

async function readKeyFile(name: string, file: string): Promise<Buffer> {
  try {
    return await readFile(file);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this user" : code === "EISDIR" ? "is a directory" : (err as Error).message;
    throw new KeySpecError(`key "${name}": file ${file} ${why}`);
  }
}

/** Runs a key command; its stdout is the key. Its stderr is not shown: it may echo what it read. */
function runKeyCommand(name: string, command: readonly string[]): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "pipe", "ignore"] });
    const out: Buffer[] = [];
    child.stdout.on("data", (c: Buffer) => out.push(c));
    child.on("error", (err) => reject(new KeySpecError(`key "${name}": cannot run ${command[0]}: ${err.message}`)));
    child.on("close", (code, signal) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new KeySpecError(`key "${name}": command ${command.map(shellQuote).join(" ")} failed (${signal ?? `exit code ${code}`}); run it yourself to see why`));
    });
  });
}

/** Exit codes of the upload script that name a cause. */
const MISSING_ACCOUNT = 65;
const SHORT_WRITE = 66;

/**
 * One command that says which of the keys' users and groups the host lacks, one `user NAME` / `group NAME` line each
 * (getent: users and groups from any NSS source count).
 */
export function missingAccountsCommand(keys: readonly Pick<LoadedKey, "user" | "group">[], sudo: boolean): string {
  const users = [...new Set(keys.map((k) => k.user))];
  const groups = [...new Set(keys.map((k) => k.group))];
  const script = [
    ...users.map((u) => `getent passwd ${shellQuote(u)} >/dev/null || echo user ${shellQuote(u)}`),
    ...groups.map((g) => `getent group ${shellQuote(g)} >/dev/null || echo group ${shellQuote(g)}`),
    "true",
  ].join("; ");
  return privileged(script, sudo);
}

/**
 * The command that writes one key from its stdin: into a private temporary file in the destination directory, size
 * checked (a cut connection never replaces a key with part of one), owner and mode set, then renamed over the key
 * (atomic: a service reads the old key or the new one). The directory is made 0750 when missing, as NixOS makes
 * /run/keys. The content is never in the command.
 */
export function uploadKeyCommand(key: Omit<LoadedKey, "content" | "sha256" | "uploadAt">, size: number, sudo: boolean): string {
  const dir = posix.dirname(key.path);
  const script = [
    "set -eu",
    "umask 077",
    `dir=${shellQuote(dir)}`,
    `getent passwd ${shellQuote(key.user)} >/dev/null || { echo "no user ${key.user}" >&2; exit ${MISSING_ACCOUNT}; }`,
    `getent group ${shellQuote(key.group)} >/dev/null || { echo "no group ${key.group}" >&2; exit ${MISSING_ACCOUNT}; }`,
    `[ -d "$dir" ] || mkdir -p -m 0750 -- "$dir"`,
    // what an upload killed outright (SIGKILL, a reboot of /var) left; an hour old, so never one still running
    `find "$dir" -maxdepth 1 -name ${shellQuote(`.${key.name}.????????`)} -mmin +60 -exec rm -f -- {} + 2>/dev/null || true`,
    `tmp=$(mktemp -p "$dir" ${shellQuote(`.${key.name}.XXXXXXXX`)})`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `trap 'exit 1' HUP INT TERM PIPE`,
    `cat > "$tmp"`,
    `[ "$(wc -c < "$tmp")" -eq ${size} ] || { echo "received $(wc -c < "$tmp") of ${size} bytes" >&2; exit ${SHORT_WRITE}; }`,
    `chown -- ${shellQuote(`${key.user}:${key.group}`)} "$tmp"`,
    `chmod -- ${shellQuote(key.permissions)} "$tmp"`,
    `mv -f -- "$tmp" ${shellQuote(key.path)}`,
    "trap - EXIT",
  ].join("\n");
  return privileged(script, sudo);
}

function privileged(script: string, sudo: boolean): string {
  return [...(sudo ? ["sudo", "-n", "--"] : []), "sh", "-c", script].map(shellQuote).join(" ");
}

/**
 * Uploads `keys` (those of one `uploadAt`) to `host`, each through the stdin of its own remote process. First checks,
 * in one command, that every user and group exists, so a missing one fails before any key of the batch is written.
 */
export async function uploadKeys(host: Host, keys: readonly LoadedKey[], options: { sudo: boolean; when: string }): Promise<KeyReport[]> {
  if (keys.length === 0) return [];
  const check = missingAccountsCommand(keys, options.sudo);
  const checked = await host.run(check);
  if (checked.exitCode !== 0) {
    throw new KeysError(`could not check the keys' users and groups on ${host.name}`, { command: "getent passwd/group", stderr: checked.stderr, exitCode: checked.exitCode });
  }
  const missing = checked.stdout.split("\n").filter((l) => /^(user|group) /.test(l));
  if (missing.length > 0) {
    const needing = (line: string) => {
      const [kind, name] = line.split(" ");
      return keys.filter((k) => (kind === "user" ? k.user : k.group) === name).map((k) => k.name).join(", ");
    };
    const before = keys.every((k) => k.uploadAt === "before-activation");
    throw new KeysError(`${host.name} has no ${missing.map((l) => `${l} (for key ${needing(l)})`).join(", no ")} ${options.when}; ` +
      `no key was written${before ? "" : " (the host runs the new system)"}`, {
      hint: before
        ? "a user or group the new configuration creates exists only after activation: upload such keys with uploadAt \"after-activation\""
        : "the new configuration does not create that user or group: add it, or change the key's user and group",
    });
  }
  const reports: KeyReport[] = [];
  for (const key of keys) {
    const command = uploadKeyCommand(key, key.content.length, options.sudo);
    const result = await host.run(command, { stdin: key.content });
    if (result.exitCode !== 0) {
      const full = /No space left on device/.test(result.stderr);
      throw new KeysError(
        full
          ? `${host.name} has no space left in ${posix.dirname(key.path)} for key "${key.name}"; it was not written`
          : `uploading key "${key.name}" to ${key.path} on ${host.name} failed; the key there (if any) is unchanged`,
        {
          command: `upload of key "${key.name}" to ${key.path}`,
          stderr: result.stderr,
          exitCode: result.exitCode,
          hint: full ? `free space on ${host.name} (df ${posix.dirname(key.path)})` : undefined,
        },
      );
    }
    reports.push({ name: key.name, path: key.path, sha256: key.sha256, uploadAt: key.uploadAt });
  }
  return reports;
}
