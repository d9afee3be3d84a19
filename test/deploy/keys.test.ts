import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { deploy, type DeployRequest } from "../../src/deploy/deploy";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import { keyRecordFile, keysPreflightCommand, loadKeys, uploadKeyCommand, type LoadedKey } from "../../src/deploy/keys";
import { KeySpecError, keySpecsProblems, parseKeyArgument } from "../../src/spec/key-spec";
import { DeployError, EXIT_CODES, KeysError, exitCodeOf } from "../../src/errors";
import { SAFE_DIR_FUNCTION } from "../../src/deploy/safe-dir";
import { missing } from "../harness/requirements";
import { ARRIVED, FakeHost, NEW, READ_STATE, START, activationState, fakeDependencies, healthyHost, inspection } from "./fake-host";

const sha256 = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;
const key = (name: string, content: string, overrides: Partial<LoadedKey> = {}): LoadedKey => ({
  name, path: `/run/keys/${name}`, user: "root", group: "root", permissions: "0400", uploadAt: "before-activation", replaceExisting: false,
  content: Buffer.from(content), sha256: sha256(content), ...overrides,
});

const GETENT = /^sh -c 'safe_dir\(\)[\s\S]*command -v getent/;
const UPLOAD = /^sh -c 'set -eu\n/;

describe("key commands", () => {
  const quoted = (text: string) => text.replace(/'/g, `'\\''`);
  const db = { name: "db", path: "/run/keys/db", user: "postgres", group: "keys", permissions: "0440", sha256: sha256("s3cret"), replaceExisting: false };
  const sum = sha256("s3cret").slice("sha256:".length);
  const record = keyRecordFile("/run/keys/db");

  it("writes a key from stdin into a private temporary file in a root-only directory, checks size and hash, sets owner and mode, then renames it", () => {
    expect(record).toBe(`/run/cdktf-nixos/keys/${createHash("sha256").update("/run/keys/db").digest("hex")}`);
    expect(keyRecordFile("/var/lib/app/db")).toMatch(/^\/var\/lib\/cdktf-nixos\/keys\/[0-9a-f]{64}$/);
    expect(uploadKeyCommand(db, 6, false)).toBe(
      `sh -c 'set -eu\numask 077\n${quoted(SAFE_DIR_FUNCTION)}\ndir=/run/keys\n` +
        `getent passwd postgres >/dev/null || { echo "no user postgres" >&2; exit 65; }\n` +
        `getent group keys >/dev/null || { echo "no group keys" >&2; exit 65; }\n` +
        `safe_dir "$dir" 0750 || exit 69\n` +
        `safe_dir /run/cdktf-nixos/keys 0700 || exit 69\n` +
        `if [ -L /run/keys/db ]; then echo "/run/keys/db is a symbolic link" >&2; exit 67; fi\n` +
        `if [ -e /run/keys/db ] && [ ! -f /run/keys/db ]; then echo "/run/keys/db is a directory or not a regular file" >&2; exit 67; fi\n` +
        `if [ -f /run/keys/db ]; then\n` +
        `  [ "$(stat -c %s -- /run/keys/db)" -le 16777216 ] && have=$(sha256sum < /run/keys/db | cut -c1-64) || have=\n` +
        `  recorded=$(head -c 64 ${record} 2>/dev/null || true)\n` +
        `  if [ "$have" != ${sum} ] && { [ -z "$have" ] || [ "$have" != "$recorded" ]; }; then echo "/run/keys/db was not written by a key upload" >&2; exit 68; fi\n` +
        `fi\n` +
        `find "$dir" -maxdepth 1 -type f -name '\\''.db.????????'\\'' -mmin +60 -exec rm -f -- {} + 2>/dev/null || true\n` +
        `tmp=$(mktemp -p "$dir" .db.XXXXXXXX)\n` +
        `trap '\\''rm -f -- "$tmp"'\\'' EXIT\n` +
        `trap '\\''exit 1'\\'' HUP INT TERM PIPE\n` +
        `cat > "$tmp"\n` +
        `[ "$(wc -c < "$tmp")" -eq 6 ] || { echo "received $(wc -c < "$tmp") of 6 bytes" >&2; exit 66; }\n` +
        `[ "$(sha256sum < "$tmp" | cut -c1-64)" = ${sum} ] || { echo "received other content than was sent" >&2; exit 66; }\n` +
        `chown -- postgres:keys "$tmp"\nchmod -- 0440 "$tmp"\nmv -fT -- "$tmp" /run/keys/db\ntrap - EXIT\n` +
        `echo ${sum} > ${record}.new && mv -fT -- ${record}.new ${record}'`,
    );
    // replaceExisting: no check of what is there (but still never a link or a directory)
    const replacing = uploadKeyCommand({ ...db, replaceExisting: true }, 6, false);
    expect(replacing).not.toContain("was not written by a key upload");
    expect(replacing).toContain("exit 67");
  });

  it("goes through sudo -n for a login user other than root, and checks directories and accounts in one command", () => {
    expect(uploadKeyCommand({ ...db, user: "root", group: "root", permissions: "0400" }, 1, true)).toMatch(/^sudo -n -- sh -c 'set -eu\n/);
    const empty = quoted("''");
    expect(keysPreflightCommand([{ user: "postgres", group: "postgres", path: "/run/keys/db" }, { user: "root", group: "postgres", path: "/var/lib/app/tls" }], false)).toBe(
      `sh -c '${quoted(SAFE_DIR_FUNCTION)}\n` +
        `safe_dir /run/keys ${empty} 2>&1\nsafe_dir /run/cdktf-nixos/keys ${empty} 2>&1\n` +
        `safe_dir /var/lib/app ${empty} 2>&1\nsafe_dir /var/lib/cdktf-nixos/keys ${empty} 2>&1\n` +
        "command -v getent >/dev/null 2>&1 || { echo missing-tool getent; exit 0; }\n" +
        "getent passwd postgres >/dev/null || echo user postgres\ngetent passwd root >/dev/null || echo user root\n" +
        "getent group postgres >/dev/null || echo group postgres\ntrue'",
    );
  });
});

// chown to another user needs root
describe.skipIf(missing("root"))("safe_dir: the key directory check, run by a real sh", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  const safeDir = (path: string, mode = "") => {
    try {
      execFileSync("sh", ["-c", `${SAFE_DIR_FUNCTION}\nsafe_dir "$1" "$2"`, "sh", path, mode], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"] });
      return "safe";
    } catch (err) {
      return String((err as { stderr: string }).stderr).trim();
    }
  };

  it("passes root's private directories (through a sticky /tmp), refuses links, others' and writable directories, creates missing ones", () => {
    dir = mkdtempSync(join(tmpdir(), "safe-dir-"));
    execFileSync("sh", ["-c", [
      "mkdir -m 0755 ok", "mkdir -m 0775 groupw", "mkdir -m 0777 worldw", "mkdir -m 1777 sticky", "mkdir -m 0755 sticky/inner",
      "mkdir -m 0755 theirs", "chown 65534 theirs", "ln -s ok link", "touch file",
    ].join(" && ")], { cwd: dir });
    expect(safeDir(`${dir}/ok`)).toBe("safe");
    expect(safeDir(`${dir}/sticky/inner`)).toBe("safe");
    expect(safeDir(`${dir}/sticky`)).toBe(`unsafe ${dir}/sticky: it is writable by everyone (mode 1777)`);
    expect(safeDir(`${dir}/groupw/x`)).toBe(`unsafe ${dir}/groupw: it is writable by its group root (mode 775)`);
    expect(safeDir(`${dir}/worldw`)).toBe(`unsafe ${dir}/worldw: it is writable by everyone (mode 777)`);
    expect(safeDir(`${dir}/theirs`)).toBe(`unsafe ${dir}/theirs: it is owned by nobody, not root`);
    expect(safeDir(`${dir}/link/x`)).toBe(`unsafe ${dir}/link: it is a symbolic link (to ok); give the real path`);
    expect(safeDir(`${dir}/file/x`)).toBe(`unsafe ${dir}/file: it is not a directory`);
    // without a mode a missing directory is fine (root will create it); with one it is created, its parents 0755
    expect(safeDir(`${dir}/ok/new/keys`)).toBe("safe");
    expect(safeDir(`${dir}/ok/new/keys`, "0750")).toBe("safe");
    expect(execFileSync("stat", ["-c", "%a %U", `${dir}/ok/new`, `${dir}/ok/new/keys`], { encoding: "utf8" })).toBe("755 root\n750 root\n");
  });
});

describe("key specs", () => {
  it.each([
    [{ name: "a/b", file: "x" }, `key name "a/b" is not a file name (letters, digits, _ . @ + -; no "/")`],
    [{ name: "db" }, `key "db": give exactly one of file and command`],
    [{ name: "db", file: "x", command: ["y"] }, `key "db": give exactly one of file and command`],
    [{ name: "db", command: [] }, `key "db": command must be a non-empty list of words (argv, no shell), e.g. ["pass", "show", "db"]`],
    [{ name: "db", file: "x", destDir: "keys" }, `key "db": destDir "keys" is not an absolute, normalized directory (e.g. "/run/keys")`],
    [{ name: "db", file: "x", destDir: "/run/keys/../../etc" }, `key "db": destDir "/run/keys/../../etc" is not an absolute, normalized directory (e.g. "/run/keys")`],
    [{ name: "db", file: "x", destDir: "/run/keys/" }, undefined],
    [{ name: "db", file: "x", destDir: "/nix/store/keys" }, `key "db": /nix/store/keys/db is in /nix, where no key belongs`],
    [{ name: "db", file: "x", destDir: "/proc/self" }, `key "db": /proc/self/db is in /proc, where no key belongs`],
    [{ name: "current-system", file: "x", destDir: "/run" }, `key "current-system": /run/current-system is in /run/current-system, which NixOS manages (it links into the Nix store)`],
    [{ name: "x", file: "x", destDir: "/run/booted-system/etc" }, `key "x": /run/booted-system/etc/x is in /run/booted-system, which NixOS manages (it links into the Nix store)`],
    [{ name: "authorized_keys", file: "x", destDir: "/root/.ssh" }, `key "authorized_keys": /root/.ssh/authorized_keys would replace that user's SSH login keys (and can lock the deployer out): declare them in users.users.<name>.openssh.authorizedKeys instead`],
    [{ name: "ssh_host_ed25519_key", file: "x", destDir: "/etc/ssh" }, undefined],
    [{ name: "db", file: "x", text: "s3cret" }, `key "db": text is not supported: a literal key would be in the synthesized stack, Terraform state and the command line; give file or command`],
    [{ name: "db", file: "x", premissions: "0440" }, `key "db": unknown field "premissions" (a key has name, file, command, destDir, user, group, permissions, uploadAt, commandTimeoutSeconds, replaceExisting)`],
    [{ name: "db", file: "x", commandTimeoutSeconds: 5 }, `key "db": commandTimeoutSeconds applies to a command, and this key is read from a file`],
    [{ name: "db", command: ["pass"], commandTimeoutSeconds: 0 }, `key "db": commandTimeoutSeconds 0 is not a number of seconds above 0 (at most 3600)`],
    [{ name: "db", command: ["pass"], commandTimeoutSeconds: "30" }, `key "db": commandTimeoutSeconds "30" is not a number of seconds above 0 (at most 3600)`],
    [{ name: "db", file: "" }, `key "db": file must be a path, got ""`],
    [{ name: "db", file: "x", permissions: 400 }, undefined],
    [{ name: 5, file: "x" }, `key name 5 is not a file name (letters, digits, _ . @ + -; no "/")`],
    ["db", `a key must be an object such as {"name": "db", "file": "./db.pw"}, got "db"`],
    [{ name: "db", file: "x", user: "post gres" }, `key "db": user "post gres" is not a user or group name`],
    [{ name: "db", file: "x", permissions: "440" }, undefined],
    [{ name: "db", file: "x", permissions: "rw-r-----" }, `key "db": permissions "rw-r-----" is not an octal mode such as "0400" or "0440"`],
    [{ name: "db", command: ["pass"], commandTimeoutSeconds: 120 }, undefined],
    [{ name: "db", file: "x", uploadAt: "later" }, `key "db": uploadAt "later" is not one of before-activation, after-activation`],
  ])("%j: %s", (spec, message) => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    expect(keySpecsProblems([spec as any])).toEqual(message === undefined ? [] : [message]);
  });

  it("refuses keys that are not a list (a jsii user's single object)", () => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    expect(keySpecsProblems({ name: "db", file: "x" } as any)).toEqual([`keys must be a list of keys, e.g. [{"name": "db", "file": "./db.pw"}], got {"name":"db","file":"x"}`]);
  });

  it("refuses two keys at one path, and --key that is not NAME=FILE", () => {
    expect(keySpecsProblems([{ name: "db", file: "a" }, { name: "db", command: ["b"] }])).toEqual(["two keys would be written to /run/keys/db"]);
    expect(() => parseKeyArgument("db")).toThrow("--key 'db' is not NAME=FILE (e.g. --key db-password=./secrets/db)");
    expect(parseKeyArgument("db=./a=b")).toEqual({ name: "db", file: "./a=b" });
  });
});

describe("loadKeys", () => {
  let dir: string;
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("reads files and runs commands on this machine, once per source, and reports only hashes", async () => {
    dir = mkdtempSync(join(tmpdir(), "keys-"));
    writeFileSync(join(dir, "db"), "s3cret\n");
    const counter = join(dir, "runs");
    const command = ["sh", "-c", `echo run >> ${counter}; printf token`];
    const cache = new Map<string, Promise<Buffer>>();
    const keys = await loadKeys([
      { name: "db", file: join(dir, "db"), user: "postgres", group: "postgres", permissions: "0440", uploadAt: "after-activation" },
      { name: "api", command },
    ], cache);
    await loadKeys([{ name: "api-again", command, destDir: "/var/lib/app" }], cache);
    expect(keys).toEqual([
      key("db", "s3cret\n", { user: "postgres", group: "postgres", permissions: "0440", uploadAt: "after-activation" }),
      key("api", "token"),
    ]);
    expect(readFileSync(counter, "utf8")).toBe("run\n");
  });

  it("names the key and the cause when a source cannot be read, without the command's output", async () => {
    dir = mkdtempSync(join(tmpdir(), "keys-"));
    writeFileSync(join(dir, "locked"), "x");
    chmodSync(join(dir, "locked"), 0o000);
    await expect(loadKeys([{ name: "db", file: join(dir, "missing") }])).rejects.toThrow(new KeySpecError(`key "db": file ${join(dir, "missing")} does not exist`));
    await expect(loadKeys([{ name: "db", file: dir }])).rejects.toThrow(`key "db": file ${dir} is a directory`);
    await expect(loadKeys([{ name: "db", command: ["sh", "-c", "echo leaked-secret; echo oops >&2; exit 3"] }]))
      .rejects.toThrow(`key "db": command sh -c 'echo leaked-secret; echo oops >&2; exit 3' failed (exit code 3); run it yourself to see why`);
    await expect(loadKeys([{ name: "db", command: ["/nonexistent/pass"] }])).rejects.toThrow(`key "db": cannot run /nonexistent/pass: spawn /nonexistent/pass ENOENT`);
  });

  it("reads only regular files, bounded: a FIFO nobody writes, a device, an empty or an oversized file are refused at once", async () => {
    dir = mkdtempSync(join(tmpdir(), "keys-"));
    execFileSync("mkfifo", [join(dir, "fifo")]);
    writeFileSync(join(dir, "empty"), "");
    execFileSync("truncate", ["-s", "20M", join(dir, "huge")]);
    await expect(loadKeys([{ name: "db", file: join(dir, "fifo") }])).rejects.toThrow(new KeySpecError(
      `key "db": file ${join(dir, "fifo")} is not a regular file (a FIFO): give the file that holds the key, or a command that prints it`));
    await expect(loadKeys([{ name: "db", file: "/dev/zero" }])).rejects.toThrow(new KeySpecError(
      `key "db": file /dev/zero is not a regular file (a device): give the file that holds the key, or a command that prints it`));
    await expect(loadKeys([{ name: "db", file: join(dir, "empty") }])).rejects.toThrow(new KeySpecError(
      `key "db": file ${join(dir, "empty")} is empty: a key must have content (is it the right file?)`));
    await expect(loadKeys([{ name: "db", file: join(dir, "huge") }])).rejects.toThrow(new KeySpecError(
      `key "db": file ${join(dir, "huge")} is 20 MiB, more than a key may be (16 MiB): is it the right file?`));
  });

  it("shows where a relative key file was looked for, and expands ~/", async () => {
    dir = mkdtempSync(join(tmpdir(), "keys-"));
    writeFileSync(join(dir, "good.key"), "s3cret");
    const home = process.env.HOME;
    process.env.HOME = dir;
    try {
      expect((await loadKeys([{ name: "db", file: "~/good.key" }]))[0].content.toString()).toBe("s3cret");
    } finally {
      process.env.HOME = home;
    }
    await expect(loadKeys([{ name: "db", file: "secrets/nosuch-db" }])).rejects.toThrow(new KeySpecError(
      `key "db": file secrets/nosuch-db (${join(process.cwd(), "secrets/nosuch-db")}) does not exist`));
  });

  it("stops a key command that hangs (its whole process group) or prints too much, and refuses one that prints nothing", async () => {
    const marker = `sleep 31.${process.pid}`;
    await expect(loadKeys([{ name: "tok", command: ["sh", "-c", `${marker} & wait`], commandTimeoutSeconds: 0.2 }])).rejects.toThrow(new KeySpecError(
      `key "tok": command sh -c '${marker} & wait' did not finish within 0.2 s (is it waiting for a passphrase or a pinentry?); ` +
      "run it yourself first, or give the key more time with commandTimeoutSeconds"));
    // one that ignores SIGTERM is killed
    await expect(loadKeys([{ name: "tok", command: ["sh", "-c", "trap '' TERM; sleep 30"], commandTimeoutSeconds: 0.2 }])).rejects.toThrow(/did not finish within 0.2 s/);
    expect(execFileSync("sh", ["-c", `pgrep -f '[${marker[0]}]${marker.slice(1)}' || true`], { encoding: "utf8" })).toBe("");
    await expect(loadKeys([{ name: "tok", command: ["head", "-c", "20000000", "/dev/zero"] }])).rejects.toThrow(new KeySpecError(
      `key "tok": command head -c 20000000 /dev/zero printed more than 16 MiB, more than a key may be`));
    await expect(loadKeys([{ name: "tok", command: ["true"] }])).rejects.toThrow(new KeySpecError(
      `key "tok": command true printed nothing: a key must have content (run it yourself to see why)`));
  });
});

describe("deploying with keys over the Host seam", () => {
  const request: DeployRequest = {
    source: { kind: "toplevel", path: NEW },
    target: { host: "198.51.100.7", user: "root", knownHostsFile: "/dev/null" },
    keys: [key("db", "s3cret"), key("tls", "cert", { uploadAt: "after-activation", user: "nginx", group: "nginx" })],
  };
  const shape = (log: readonly string[]) => log.map((c) => (START.test(c) ? "START" : READ_STATE.test(c) ? "READ_STATE" : GETENT.test(c) ? "GETENT" : UPLOAD.test(c) ? `UPLOAD ${/mv -fT -- "\$tmp" (\S+)/.exec(c)![1]}` : c));

  it("uploads before-activation keys after the copy, after-activation keys once activation succeeded, content only on stdin", async () => {
    const world = fakeDependencies(healthyHost());
    const events: string[] = [];
    const result = await deploy({ ...request, onEvent: (e) => events.push(e.type === "phase" ? `phase ${e.phase}` : e.type) }, world.deps);
    expect(shape(world.host.log).slice(0, 10)).toEqual([
      INSPECT_COMMAND, `copy ${NEW}`, ARRIVED, "GETENT", "UPLOAD /run/keys/db", "START", "READ_STATE", INSPECT_COMMAND, expect.stringMatching(/^tail -c /), "GETENT",
    ]);
    expect(shape(world.host.log)[10]).toBe("UPLOAD /run/keys/tls");
    expect(world.host.stdin.get(4)?.toString()).toBe("s3cret");
    expect(world.host.stdin.get(10)?.toString()).toBe("cert");
    expect(world.host.log.join("\n")).not.toMatch(/s3cret|cert\b/);
    expect(result.keys).toEqual([
      { name: "db", path: "/run/keys/db", sha256: sha256("s3cret"), uploadAt: "before-activation" },
      { name: "tls", path: "/run/keys/tls", sha256: sha256("cert"), uploadAt: "after-activation" },
    ]);
    expect(JSON.stringify(result)).not.toMatch(/s3cret/);
    expect(events.filter((e) => e === "keys-uploaded")).toHaveLength(2);
  });

  it("exit 11 before activation: a missing user is named with its key and nothing is written or activated", async () => {
    const world = fakeDependencies(healthyHost([[GETENT, { stdout: "user nginx\n" }]]));
    const err = await deploy({ ...request, keys: [key("tls", "cert", { user: "nginx" })] }, world.deps).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KeysError);
    expect((err as DeployError).message).toBe("root@198.51.100.7:22 has no user nginx (for key tls) before activation; no key was written");
    expect(exitCodeOf(err)).toBe(EXIT_CODES.keys);
    expect(shape(world.host.log)).toEqual([INSPECT_COMMAND, `copy ${NEW}`, ARRIVED, "GETENT"]);
  });

  it("exit 11: a host without getent is named as such, not as missing the key's users; nothing is written", async () => {
    const world = fakeDependencies(healthyHost([[GETENT, { stdout: "missing-tool getent\n" }]]));
    const err = await deploy({ ...request, keys: [key("db", "s3cret")] }, world.deps).catch((e: unknown) => e);
    expect((err as DeployError).message).toBe("root@198.51.100.7:22 has no getent command, which the key upload needs to check users and groups before activation; no key was written");
    expect(exitCodeOf(err)).toBe(EXIT_CODES.keys);
    expect(shape(world.host.log)).toEqual([INSPECT_COMMAND, `copy ${NEW}`, ARRIVED, "GETENT"]);
  });

  it("exit 11: a key path that is a directory or a symbolic link on the host is refused by the upload, not written into", async () => {
    const world = fakeDependencies(healthyHost([[UPLOAD, { exitCode: 67, stderr: "/run/keys/db is a symbolic link or a directory\n" }]]));
    const err = await deploy({ ...request, keys: [key("db", "s3cret")] }, world.deps).catch((e: unknown) => e);
    expect((err as DeployError).message).toBe(`/run/keys/db on root@198.51.100.7:22 is a symbolic link or a directory, not a key file: key "db" was not written there`);
    expect(exitCodeOf(err)).toBe(EXIT_CODES.keys);
    expect(world.host.log.some((c) => START.test(c))).toBe(false);
  });

  it("exit 11 after activation: says the host runs the new system; a full disk is named", async () => {
    const world = fakeDependencies(healthyHost([[UPLOAD, { exitCode: 1, stderr: "cat: write error: No space left on device\n" }]]));
    const err = await deploy({ ...request, keys: [key("tls", "cert", { uploadAt: "after-activation" })] }, world.deps).catch((e: unknown) => e);
    expect((err as DeployError).message).toBe(`root@198.51.100.7:22 has no space left in /run/keys for key "tls"; it was not written`);
    expect((err as DeployError).hint).toBe("free space on root@198.51.100.7:22 (df /run/keys)");
    expect(world.host.log.some((c) => START.test(c))).toBe(true);
  });

  it("uploads every key to a host that is up to date (a key may have changed), none for dry-activate", async () => {
    const current = fakeDependencies(new FakeHost([[INSPECT_COMMAND, { stdout: inspection({ currentSystem: NEW, profileSystem: NEW }) }]]));
    const result = await deploy(request, current.deps);
    expect(result.upToDate).toBe(true);
    expect(shape(current.host.log)).toEqual([INSPECT_COMMAND, "GETENT", "UPLOAD /run/keys/db", "GETENT", "UPLOAD /run/keys/tls"]);

    const dry = fakeDependencies(healthyHost([[READ_STATE, { stdout: activationState({ status: "0", done: true }) }]]));
    const preview = await deploy({ ...request, action: "dry-activate" }, dry.deps);
    expect(preview.keys).toEqual([]);
    expect(dry.host.log.some((c) => UPLOAD.test(c) || GETENT.test(c))).toBe(false);
  });
});
