import { homedir } from "node:os";
import { posix, resolve } from "node:path";
import { UserInputError } from "../errors";

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
  /** How long `command` may run before it is stopped and the deployment refused. @default 60 */
  readonly commandTimeoutSeconds?: number;
  /**
   * Replace a file at the key's path that no key upload wrote (the host's own, or one changed since the last upload).
   * @default false - such a file is left alone and the deployment refused, naming it
   */
  readonly replaceExisting?: boolean;
}

export const DEFAULT_KEY_DIR = "/run/keys";
/** The fields a key spec may have: anything else is a typo (`premissions`) or another tool's (`text`). */
const KEY_FIELDS = new Set(["name", "file", "command", "destDir", "user", "group", "permissions", "uploadAt", "commandTimeoutSeconds", "replaceExisting"]);
/** A key larger than this is not a secret but a mistake (a wrong path, /dev/zero): refused before it fills memory. */
export const MAX_KEY_BYTES = 16 * 1024 * 1024;
export const DEFAULT_KEY_COMMAND_TIMEOUT_SECONDS = 60;
const MAX_KEY_COMMAND_TIMEOUT_SECONDS = 3600;

/**
 * Places a key must never be written to: the Nix store and what the system profile links into it, kernel and device
 * file systems, and SSH's login keys (replacing them locks the deployer out).
 */
function keyDestinationProblem(dir: string, name: string): string | undefined {
  const path = posix.join(dir, name);
  const under = (root: string) => path === root || path.startsWith(`${root}/`);
  if (["/nix", "/proc", "/sys", "/dev"].some(under)) return `${path} is in ${["/nix", "/proc", "/sys", "/dev"].find(under)}, where no key belongs`;
  const managed = ["/run/current-system", "/run/booted-system", "/run/wrappers", "/etc/static"].find(under);
  if (managed !== undefined) return `${path} is in ${managed}, which NixOS manages (it links into the Nix store)`;
  if (/^authorized_keys2?$/.test(name) && posix.basename(dir) === ".ssh") {
    return `${path} would replace that user's SSH login keys (and can lock the deployer out): declare them in users.users.<name>.openssh.authorizedKeys instead`;
  }
  return undefined;
}

/** A key spec that cannot be used, or a key whose content cannot be read; found before anything changes. */
export class KeySpecError extends UserInputError {
  constructor(message: string) {
    super(message);
    this.name = "KeySpecError";
  }
}

const NAME = /^[A-Za-z0-9_][A-Za-z0-9_.@+-]*$/;
const ACCOUNT = /^[a-z_][a-z0-9_.-]*\$?$/i;

/** Every reason `spec` cannot be used, as sentences naming the key; empty when it is fine. */
function keySpecProblems(spec: KeySpec): string[] {
  if (typeof spec !== "object" || spec === null || Array.isArray(spec)) return [`a key must be an object such as {"name": "db", "file": "./db.pw"}, got ${JSON.stringify(spec)}`];
  const problems: string[] = [];
  const key = `key "${String(spec.name)}"`;
  if (typeof spec.name !== "string" || !NAME.test(spec.name)) {
    problems.push(`key name ${JSON.stringify(spec.name ?? null)} is not a file name (letters, digits, _ . @ + -; no "/")`);
  }
  const unknown = Object.keys(spec).filter((field) => !KEY_FIELDS.has(field));
  for (const field of unknown) {
    problems.push(field === "text"
      ? `${key}: text is not supported: a literal key would be in the synthesized stack, Terraform state and the command line; give file or command`
      : `${key}: unknown field "${field}" (a key has ${[...KEY_FIELDS].join(", ")})`);
  }
  if ((spec.file === undefined) === (spec.command === undefined)) problems.push(`${key}: give exactly one of file and command`);
  if (spec.file !== undefined && (typeof spec.file !== "string" || spec.file === "")) problems.push(`${key}: file must be a path, got ${JSON.stringify(spec.file)}`);
  if (spec.command !== undefined && (!Array.isArray(spec.command) || spec.command.length === 0 || spec.command.some((w) => typeof w !== "string"))) {
    problems.push(`${key}: command must be a non-empty list of words (argv, no shell), e.g. ["pass", "show", "db"]`);
  }
  const dir = spec.destDir ?? DEFAULT_KEY_DIR;
  const trimmed = typeof dir === "string" && dir !== "/" ? dir.replace(/\/$/, "") : dir;
  if (typeof trimmed !== "string" || !posix.isAbsolute(trimmed) || posix.normalize(trimmed) !== trimmed) {
    problems.push(`${key}: destDir ${JSON.stringify(dir)} is not an absolute, normalized directory (e.g. "/run/keys")`);
  } else if (typeof spec.name === "string" && NAME.test(spec.name)) {
    const destination = keyDestinationProblem(trimmed, spec.name);
    if (destination !== undefined) problems.push(`${key}: ${destination}`);
  }
  for (const [what, value] of [["user", spec.user], ["group", spec.group]] as const) {
    if (value !== undefined && (typeof value !== "string" || !ACCOUNT.test(value))) problems.push(`${key}: ${what} ${JSON.stringify(value)} is not a user or group name`);
  }
  // a JSON number such as 400 is read as the same digits
  if (spec.permissions !== undefined && (!["string", "number"].includes(typeof spec.permissions) || !/^0?[0-7]{3}$/.test(String(spec.permissions)))) {
    problems.push(`${key}: permissions ${JSON.stringify(spec.permissions)} is not an octal mode such as "0400" or "0440"`);
  }
  if (spec.replaceExisting !== undefined && typeof spec.replaceExisting !== "boolean") {
    problems.push(`${key}: replaceExisting ${JSON.stringify(spec.replaceExisting)} is not true or false`);
  }
  if (spec.uploadAt !== undefined && !KEY_UPLOAD_TIMES.includes(spec.uploadAt)) {
    problems.push(`${key}: uploadAt ${JSON.stringify(spec.uploadAt)} is not one of ${KEY_UPLOAD_TIMES.join(", ")}`);
  }
  const timeout = spec.commandTimeoutSeconds;
  if (timeout !== undefined && !(typeof timeout === "number" && timeout > 0 && timeout <= MAX_KEY_COMMAND_TIMEOUT_SECONDS)) {
    problems.push(`${key}: commandTimeoutSeconds ${JSON.stringify(timeout)} is not a number of seconds above 0 (at most ${MAX_KEY_COMMAND_TIMEOUT_SECONDS})`);
  } else if (timeout !== undefined && spec.command === undefined) {
    problems.push(`${key}: commandTimeoutSeconds applies to a command, and this key is read from a file`);
  }
  return problems;
}

/** Checks a deployment's keys: each valid, and no two at the same path. */
export function keySpecsProblems(specs: readonly KeySpec[]): string[] {
  if (!Array.isArray(specs)) return [`keys must be a list of keys, e.g. [{"name": "db", "file": "./db.pw"}], got ${JSON.stringify(specs)}`];
  const problems = specs.flatMap(keySpecProblems);
  const paths = specs.map((s) => posix.join(s?.destDir ?? DEFAULT_KEY_DIR, String(s?.name)));
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

/** Checks every key spec; throws a KeySpecError with every problem. What a run that reads no key still checks. */
export function checkKeySpecs(specs: readonly KeySpec[]): void {
  const problems = keySpecsProblems(specs);
  if (problems.length > 0) throw new KeySpecError(problems.join("; "));
}

/**
 * A key file's path as it is read (a key's source, an SSH key pair's file): `~/` is the home directory, a relative
 * path is from the current directory.
 */
export function keyFilePath(file: string): string {
  return resolve(file.startsWith("~/") ? `${homedir()}${file.slice(1)}` : file);
}

