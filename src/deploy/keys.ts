import { spawn } from "node:child_process";
import { createHash } from "node:crypto";
import { constants } from "node:fs";
import { open } from "node:fs/promises";
import { posix } from "node:path";
import { DEFAULT_KEY_COMMAND_TIMEOUT_SECONDS, DEFAULT_KEY_DIR, KeySpecError, MAX_KEY_BYTES, checkKeySpecs, keyFilePath, type KeySpec, type KeyUploadAt } from "../spec/key-spec";
import { KeysError } from "../errors";
import { shellQuote } from "../shell";
import type { Host } from "./host";
import { SAFE_DIR_FUNCTION, unsafeDirReasons } from "./safe-dir";

/** A key with its content, read on the deploying machine before anything is built or contacted. */
export interface LoadedKey {
  readonly name: string;
  readonly path: string;
  readonly user: string;
  readonly group: string;
  readonly permissions: string;
  readonly uploadAt: KeyUploadAt;
  /** Replace a file at the path that no key upload wrote. */
  readonly replaceExisting: boolean;
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

/**
 * Reads every key's content on this machine: regular files, and commands run with our environment, each bounded in
 * size (MAX_KEY_BYTES) and a command in time. Sources shared by several keys (or hosts, in a push) are read once.
 * Throws a KeySpecError naming the key when one cannot be read or is empty.
 */
export async function loadKeys(specs: readonly KeySpec[], cache = new Map<string, Promise<Buffer>>()): Promise<LoadedKey[]> {
  checkKeySpecs(specs);
  return Promise.all(specs.map(async (spec): Promise<LoadedKey> => {
    const source = JSON.stringify(spec.file ?? spec.command);
    let content = cache.get(source);
    if (content === undefined) {
      content = spec.file !== undefined
        ? readKeyFile(spec.name, spec.file)
        : runKeyCommand(spec.name, spec.command!, (spec.commandTimeoutSeconds ?? DEFAULT_KEY_COMMAND_TIMEOUT_SECONDS) * 1000);
      cache.set(source, content);
    }
    const bytes = await content;
    return {
      name: spec.name,
      path: posix.join(spec.destDir ?? DEFAULT_KEY_DIR, spec.name),
      user: spec.user ?? "root",
      group: spec.group ?? "root",
      permissions: String(spec.permissions ?? "0400"),
      uploadAt: spec.uploadAt ?? "before-activation",
      replaceExisting: spec.replaceExisting === true,
      content: bytes,
      sha256: `sha256:${createHash("sha256").update(bytes).digest("hex")}`,
    };
  }));
}

/** A size in words, for messages. */
function bytes(size: number): string {
  return size >= 1024 * 1024 ? `${(size / 1024 / 1024).toFixed(0)} MiB` : size >= 1024 ? `${(size / 1024).toFixed(0)} KiB` : `${size} bytes`;
}

/**
 * Reads a key file: a regular file (or a link to one) of at most MAX_KEY_BYTES, opened without blocking (a FIFO nobody
 * writes would wait forever), read no further than the limit (a file growing meanwhile cannot fill memory).
 */
async function readKeyFile(name: string, file: string): Promise<Buffer> {
  const path = keyFilePath(file);
  const shown = path === file ? file : `${file} (${path})`;
  const fail = (why: string) => new KeySpecError(`key "${name}": file ${shown} ${why}`);
  let handle;
  try {
    handle = await open(path, constants.O_RDONLY | constants.O_NONBLOCK | constants.O_NOCTTY);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw fail(code === "ENOENT" ? "does not exist" : code === "EACCES" ? "is not readable by this user" : code === "EISDIR" ? "is a directory" : (err as Error).message);
  }
  try {
    const stat = await handle.stat();
    if (stat.isDirectory()) throw fail("is a directory");
    if (!stat.isFile()) throw fail(`is not a regular file (${stat.isFIFO() ? "a FIFO" : stat.isCharacterDevice() || stat.isBlockDevice() ? "a device" : stat.isSocket() ? "a socket" : "not a file"}): give the file that holds the key, or a command that prints it`);
    if (stat.size > MAX_KEY_BYTES) throw fail(`is ${bytes(stat.size)}, more than a key may be (${bytes(MAX_KEY_BYTES)}): is it the right file?`);
    const buffer = Buffer.alloc(Math.min(stat.size, MAX_KEY_BYTES) + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, length, buffer.length - length, length);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length === buffer.length) throw fail(`grew while it was read, past ${bytes(buffer.length - 1)}`);
    }
    if (length === 0) throw fail("is empty: a key must have content (is it the right file?)");
    return buffer.subarray(0, length);
  } finally {
    await handle.close();
  }
}

/**
 * Runs a key command; its stdout is the key. Its stderr is not shown: it may echo what it read. It runs in its own
 * process group, stopped whole when it outlives `timeoutMs` (a `pass`/`gpg` waiting for a pinentry) or prints more
 * than MAX_KEY_BYTES.
 */
function runKeyCommand(name: string, command: readonly string[], timeoutMs: number): Promise<Buffer> {
  return new Promise((resolvePromise, reject) => {
    const shown = command.map(shellQuote).join(" ");
    const child = spawn(command[0], command.slice(1), { stdio: ["ignore", "pipe", "ignore"], detached: true });
    const out: Buffer[] = [];
    let size = 0;
    let stopped: string | undefined;
    const stop = (why: string) => {
      if (stopped !== undefined) return;
      stopped = why;
      try {
        process.kill(-child.pid!, "SIGTERM");
        setTimeout(() => {
          try {
            process.kill(-child.pid!, "SIGKILL");
          } catch {
            // already gone
          }
        }, 2000).unref();
      } catch {
        // already gone
      }
    };
    const timer = setTimeout(() => stop(`did not finish within ${timeoutMs / 1000} s (is it waiting for a passphrase or a pinentry?); ` +
      "run it yourself first, or give the key more time with commandTimeoutSeconds"), timeoutMs);
    timer.unref();
    child.stdout.on("data", (c: Buffer) => {
      size += c.length;
      if (size > MAX_KEY_BYTES) stop(`printed more than ${bytes(MAX_KEY_BYTES)}, more than a key may be`);
      else out.push(c);
    });
    child.on("error", (err) => {
      clearTimeout(timer);
      reject(new KeySpecError(`key "${name}": cannot run ${command[0]}: ${err.message}`));
    });
    child.on("close", (code, signal) => {
      clearTimeout(timer);
      if (stopped !== undefined) reject(new KeySpecError(`key "${name}": command ${shown} ${stopped}`));
      else if (code !== 0) reject(new KeySpecError(`key "${name}": command ${shown} failed (${signal ?? `exit code ${code}`}); run it yourself to see why`));
      else if (size === 0) reject(new KeySpecError(`key "${name}": command ${shown} printed nothing: a key must have content (run it yourself to see why)`));
      else resolvePromise(Buffer.concat(out));
    });
  });
}

/** Exit codes of the upload script that name a cause. */
const MISSING_ACCOUNT = 65;
const SHORT_WRITE = 66;
const NOT_A_FILE = 67;
const NOT_OURS = 68;
const UNSAFE_DIRECTORY = 69;
/** What the preflight prints when the host has no getent. */
const MISSING_GETENT = "missing-tool getent";

/**
 * Where the target records what each key upload wrote (the content's sha256 per key path), so a later upload
 * replaces only its own files: beside the key's lifetime — in /run for keys in /run (both gone after a reboot), on
 * disk otherwise.
 */
export function keyRecordFile(path: string): string {
  const dir = path.startsWith("/run/") ? "/run/cdktf-nixos/keys" : "/var/lib/cdktf-nixos/keys";
  return `${dir}/${createHash("sha256").update(path).digest("hex")}`;
}

/**
 * One command, run before any key of a batch is written, that prints a line per problem: `user NAME` / `group NAME`
 * for an account the host lacks (getent: any NSS source counts), `unsafe PATH: why` for a key directory (or the
 * directory of the upload records) that another user could redirect.
 */
export function keysPreflightCommand(keys: readonly Pick<LoadedKey, "user" | "group" | "path">[], sudo: boolean): string {
  const users = [...new Set(keys.map((k) => k.user))];
  const groups = [...new Set(keys.map((k) => k.group))];
  const dirs = [...new Set(keys.flatMap((k) => [posix.dirname(k.path), posix.dirname(keyRecordFile(k.path))]))];
  const script = [
    SAFE_DIR_FUNCTION,
    ...dirs.map((d) => `safe_dir ${shellQuote(d)} '' 2>&1`),
    // without getent every user would look missing: say which tool is
    `command -v getent >/dev/null 2>&1 || { echo ${MISSING_GETENT}; exit 0; }`,
    ...users.map((u) => `getent passwd ${shellQuote(u)} >/dev/null || echo user ${shellQuote(u)}`),
    ...groups.map((g) => `getent group ${shellQuote(g)} >/dev/null || echo group ${shellQuote(g)}`),
    "true",
  ].join("\n");
  return privileged(script, sudo);
}

/**
 * The command that writes one key from its stdin, as root, so that no other user of the host can make it write
 * anywhere else (a key's directory may belong to no one but root; see SAFE_DIR_FUNCTION):
 * - every directory up to the key's is root's and writable by no one else (created 0750 when missing, as NixOS
 *   makes /run/keys), so nothing in that chain can be swapped for a link while the upload runs;
 * - the key's path is a regular file or nothing: never a link or a directory (`mv -T` would not move into one);
 * - a file there is replaced only when a key upload wrote it (its content's sha256 is what the host's record says),
 *   it already holds the new content, or the key says `replaceExisting`;
 * - the content goes into a private temporary file beside the key (in that root-only directory), is checked against
 *   the size and sha256 the deployer sent (a cut connection never replaces a key with part of one), gets its owner
 *   and mode, and is renamed over the key (atomic: a service reads the old key or the new one).
 * The content is never in the command.
 */
export function uploadKeyCommand(key: Omit<LoadedKey, "content" | "uploadAt">, size: number, sudo: boolean): string {
  const dir = posix.dirname(key.path);
  const record = keyRecordFile(key.path);
  const sum = key.sha256.replace(/^sha256:/, "");
  const path = shellQuote(key.path);
  const script = [
    "set -eu",
    "umask 077",
    SAFE_DIR_FUNCTION,
    `dir=${shellQuote(dir)}`,
    `getent passwd ${shellQuote(key.user)} >/dev/null || { echo "no user ${key.user}" >&2; exit ${MISSING_ACCOUNT}; }`,
    `getent group ${shellQuote(key.group)} >/dev/null || { echo "no group ${key.group}" >&2; exit ${MISSING_ACCOUNT}; }`,
    `safe_dir "$dir" 0750 || exit ${UNSAFE_DIRECTORY}`,
    `safe_dir ${shellQuote(posix.dirname(record))} 0700 || exit ${UNSAFE_DIRECTORY}`,
    `if [ -L ${path} ]; then echo "${key.path} is a symbolic link" >&2; exit ${NOT_A_FILE}; fi`,
    `if [ -e ${path} ] && [ ! -f ${path} ]; then echo "${key.path} is a directory or not a regular file" >&2; exit ${NOT_A_FILE}; fi`,
    ...(key.replaceExisting ? [] : [
      `if [ -f ${path} ]; then`,
      // a file larger than any key was never written by an upload: not read at all
      `  [ "$(stat -c %s -- ${path})" -le ${MAX_KEY_BYTES} ] && have=$(sha256sum < ${path} | cut -c1-64) || have=`,
      `  recorded=$(head -c 64 ${shellQuote(record)} 2>/dev/null || true)`,
      `  if [ "$have" != ${sum} ] && { [ -z "$have" ] || [ "$have" != "$recorded" ]; }; then echo "${key.path} was not written by a key upload" >&2; exit ${NOT_OURS}; fi`,
      "fi",
    ]),
    // what an upload killed outright (SIGKILL, a reboot of /var) left; an hour old, so never one still running
    `find "$dir" -maxdepth 1 -type f -name ${shellQuote(`.${key.name}.????????`)} -mmin +60 -exec rm -f -- {} + 2>/dev/null || true`,
    `tmp=$(mktemp -p "$dir" ${shellQuote(`.${key.name}.XXXXXXXX`)})`,
    `trap 'rm -f -- "$tmp"' EXIT`,
    `trap 'exit 1' HUP INT TERM PIPE`,
    `cat > "$tmp"`,
    `[ "$(wc -c < "$tmp")" -eq ${size} ] || { echo "received $(wc -c < "$tmp") of ${size} bytes" >&2; exit ${SHORT_WRITE}; }`,
    `[ "$(sha256sum < "$tmp" | cut -c1-64)" = ${sum} ] || { echo "received other content than was sent" >&2; exit ${SHORT_WRITE}; }`,
    `chown -- ${shellQuote(`${key.user}:${key.group}`)} "$tmp"`,
    `chmod -- ${shellQuote(key.permissions)} "$tmp"`,
    `mv -fT -- "$tmp" ${path}`,
    "trap - EXIT",
    `echo ${sum} > ${shellQuote(`${record}.new`)} && mv -fT -- ${shellQuote(`${record}.new`)} ${shellQuote(record)}`,
  ].join("\n");
  return privileged(script, sudo);
}

function privileged(script: string, sudo: boolean): string {
  return [...(sudo ? ["sudo", "-n", "--"] : []), "sh", "-c", script].map(shellQuote).join(" ");
}

/** What a directory problem means, and how to fix it. */
const UNSAFE_HINT = "keys go only into directories that no one but root can change (else a user who can change one " +
  "could point the key at any file root may write); choose a destDir owned by root, such as /run/keys — the key's " +
  "user, group and permissions decide who reads it — or fix the directory's owner and mode";

/**
 * Uploads `keys` (those of one `uploadAt`) to `host`, each through the stdin of its own remote process. First checks,
 * in one command, that every user and group exists and every directory is safe, so such a problem fails before any
 * key of the batch is written.
 */
export async function uploadKeys(
  host: Host,
  keys: readonly LoadedKey[],
  options: { sudo: boolean; when: string; timeoutMs?: number; onUploaded?: (key: KeyReport) => void },
): Promise<KeyReport[]> {
  if (keys.length === 0) return [];
  const before = keys.every((k) => k.uploadAt === "before-activation");
  const untouched = `no key was written${before ? "" : " (the host runs the new system)"}`;
  const check = keysPreflightCommand(keys, options.sudo);
  const checked = await host.run(check, { timeoutMs: options.timeoutMs });
  if (checked.exitCode !== 0) {
    throw new KeysError(`could not check the keys' directories, users and groups on ${host.name}`, { command: "key preflight", stderr: checked.stderr, exitCode: checked.exitCode });
  }
  const lines = checked.stdout.split("\n");
  const unsafe = unsafeDirReasons(checked.stdout);
  if (unsafe.length > 0) {
    throw new KeysError(`${unsafe.join("; ")} (on ${host.name}); ${untouched}`, { hint: UNSAFE_HINT });
  }
  if (lines.includes(MISSING_GETENT)) {
    throw new KeysError(`${host.name} has no getent command, which the key upload needs to check users and groups ${options.when}; no key was written`, {
      hint: `install getent on ${host.name} (glibc's; NixOS has it in the system path)`,
    });
  }
  const missing = lines.filter((l) => /^(user|group) /.test(l));
  if (missing.length > 0) {
    const needing = (line: string) => {
      const [kind, name] = line.split(" ");
      return keys.filter((k) => (kind === "user" ? k.user : k.group) === name).map((k) => k.name).join(", ");
    };
    throw new KeysError(`${host.name} has no ${missing.map((l) => `${l} (for key ${needing(l)})`).join(", no ")} ${options.when}; ${untouched}`, {
      hint: before
        ? "a user or group the new configuration creates exists only after activation: upload such keys with uploadAt \"after-activation\""
        : "the new configuration does not create that user or group: add it, or change the key's user and group",
    });
  }
  const reports: KeyReport[] = [];
  for (const key of keys) {
    const command = uploadKeyCommand(key, key.content.length, options.sudo);
    const result = await host.run(command, { stdin: key.content, timeoutMs: options.timeoutMs });
    if (result.exitCode !== 0) {
      const written = reports.length === 0 ? "" : ` (written before it: ${reports.map((r) => r.name).join(", ")})`;
      const failure = { command: `upload of key "${key.name}" to ${key.path}`, stderr: result.stderr, exitCode: result.exitCode };
      if (result.exitCode === NOT_A_FILE) {
        throw new KeysError(`${key.path} on ${host.name} is a symbolic link or a directory, not a key file: key "${key.name}" was not written there${written}`, {
          ...failure,
          hint: "choose another destDir or name for the key, or remove what is at that path on the host",
        });
      }
      if (result.exitCode === NOT_OURS) {
        throw new KeysError(`${key.path} on ${host.name} exists and was not written by a key upload (or was changed since): key "${key.name}" was not written there${written}`, {
          ...failure,
          hint: `if the key should replace it, set replaceExisting: true on key "${key.name}"; otherwise choose another name or destDir`,
        });
      }
      if (result.exitCode === UNSAFE_DIRECTORY) {
        const why = unsafeDirReasons(result.stderr)[0] ?? posix.dirname(key.path);
        throw new KeysError(`${why} (on ${host.name}): key "${key.name}" was not written${written}`, { ...failure, hint: UNSAFE_HINT });
      }
      const full = /No space left on device/.test(result.stderr);
      throw new KeysError(
        full
          ? `${host.name} has no space left in ${posix.dirname(key.path)} for key "${key.name}"; it was not written${written}`
          : `uploading key "${key.name}" to ${key.path} on ${host.name} failed; the key there (if any) is unchanged${written}`,
        { ...failure, hint: full ? `free space on ${host.name} (df ${posix.dirname(key.path)})` : undefined },
      );
    }
    const report = { name: key.name, path: key.path, sha256: key.sha256, uploadAt: key.uploadAt };
    reports.push(report);
    options.onUploaded?.(report);
  }
  return reports;
}
