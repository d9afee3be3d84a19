import { createHash } from "node:crypto";
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { deploy, type DeployRequest } from "../../src/deploy/deploy";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import {
  KeySpecError, keySpecsProblems, loadKeys, missingAccountsCommand, parseKeyArgument, uploadKeyCommand, type LoadedKey,
} from "../../src/deploy/keys";
import { DeployError, EXIT_CODES, KeysError, exitCodeOf } from "../../src/errors";
import { FakeHost, NEW, READ_STATE, START, activationState, fakeDependencies, healthyHost, inspection } from "./fake-host";

const sha256 = (text: string) => `sha256:${createHash("sha256").update(text).digest("hex")}`;
const key = (name: string, content: string, overrides: Partial<LoadedKey> = {}): LoadedKey => ({
  name, path: `/run/keys/${name}`, user: "root", group: "root", permissions: "0400", uploadAt: "before-activation",
  content: Buffer.from(content), sha256: sha256(content), ...overrides,
});

const GETENT = /^sh -c 'getent passwd/;
const UPLOAD = /^sh -c 'set -eu\n/;

describe("key commands", () => {
  it("writes a key from stdin into a private temporary file, checks its size, sets owner and mode, then renames it", () => {
    expect(uploadKeyCommand({ name: "db", path: "/run/keys/db", user: "postgres", group: "keys", permissions: "0440" }, 6, false)).toBe(
      "sh -c 'set -eu\numask 077\ndir=/run/keys\n" +
        `getent passwd postgres >/dev/null || { echo "no user postgres" >&2; exit 65; }\n` +
        `getent group keys >/dev/null || { echo "no group keys" >&2; exit 65; }\n` +
        `[ -d "$dir" ] || mkdir -p -m 0750 -- "$dir"\n` +
        `find "$dir" -maxdepth 1 -name '\\''.db.????????'\\'' -mmin +60 -exec rm -f -- {} + 2>/dev/null || true\n` +
        `tmp=$(mktemp -p "$dir" .db.XXXXXXXX)\n` +
        `trap '\\''rm -f -- "$tmp"'\\'' EXIT\n` +
        `trap '\\''exit 1'\\'' HUP INT TERM PIPE\n` +
        `cat > "$tmp"\n` +
        `[ "$(wc -c < "$tmp")" -eq 6 ] || { echo "received $(wc -c < "$tmp") of 6 bytes" >&2; exit 66; }\n` +
        `chown -- postgres:keys "$tmp"\nchmod -- 0440 "$tmp"\nmv -f -- "$tmp" /run/keys/db\ntrap - EXIT'`,
    );
  });

  it("goes through sudo -n for a login user other than root, and checks accounts in one command", () => {
    expect(uploadKeyCommand({ name: "db", path: "/run/keys/db", user: "root", group: "root", permissions: "0400" }, 1, true)).toMatch(/^sudo -n -- sh -c 'set -eu\n/);
    expect(missingAccountsCommand([{ user: "postgres", group: "postgres" }, { user: "root", group: "postgres" }], false)).toBe(
      "sh -c 'getent passwd postgres >/dev/null || echo user postgres; getent passwd root >/dev/null || echo user root; " +
        "getent group postgres >/dev/null || echo group postgres; true'",
    );
  });
});

describe("key specs", () => {
  it.each([
    [{ name: "a/b", file: "x" }, `key name "a/b" is not a file name (letters, digits, _ . @ + -; no "/")`],
    [{ name: "db" }, `key "db": give exactly one of file and command`],
    [{ name: "db", file: "x", command: ["y"] }, `key "db": give exactly one of file and command`],
    [{ name: "db", command: [] }, `key "db": command must be a non-empty list of words (argv, no shell), e.g. ["pass", "show", "db"]`],
    [{ name: "db", file: "x", destDir: "keys" }, `key "db": destDir "keys" is not an absolute, normalized directory outside /nix`],
    [{ name: "db", file: "x", destDir: "/nix/store/keys" }, `key "db": destDir "/nix/store/keys" is not an absolute, normalized directory outside /nix`],
    [{ name: "db", file: "x", user: "post gres" }, `key "db": user "post gres" is not a user or group name`],
    [{ name: "db", file: "x", permissions: "440" }, undefined],
    [{ name: "db", file: "x", permissions: "rw-r-----" }, `key "db": permissions "rw-r-----" is not an octal mode such as "0400" or "0440"`],
    [{ name: "db", file: "x", uploadAt: "later" }, `key "db": uploadAt "later" is not one of before-activation, after-activation`],
  ])("%j: %s", (spec, message) => {
    // eslint-disable-next-line @typescript-eslint/no-explicit-any
    expect(keySpecsProblems([spec as any])).toEqual(message === undefined ? [] : [message]);
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
});

describe("deploying with keys over the Host seam", () => {
  const request: DeployRequest = {
    source: { kind: "toplevel", path: NEW },
    target: { host: "198.51.100.7", user: "root", knownHostsFile: "/dev/null" },
    keys: [key("db", "s3cret"), key("tls", "cert", { uploadAt: "after-activation", user: "nginx", group: "nginx" })],
  };
  const shape = (log: readonly string[]) => log.map((c) => (START.test(c) ? "START" : READ_STATE.test(c) ? "READ_STATE" : GETENT.test(c) ? "GETENT" : UPLOAD.test(c) ? `UPLOAD ${/mv -f -- "\$tmp" (\S+)/.exec(c)![1]}` : c));

  it("uploads before-activation keys after the copy, after-activation keys once activation succeeded, content only on stdin", async () => {
    const world = fakeDependencies(healthyHost());
    const events: string[] = [];
    const result = await deploy({ ...request, onEvent: (e) => events.push(e.type === "phase" ? `phase ${e.phase}` : e.type) }, world.deps);
    expect(shape(world.host.log).slice(0, 9)).toEqual([
      INSPECT_COMMAND, `copy ${NEW}`, "GETENT", "UPLOAD /run/keys/db", "START", "READ_STATE", INSPECT_COMMAND, expect.stringMatching(/^cat /), "GETENT",
    ]);
    expect(shape(world.host.log)[9]).toBe("UPLOAD /run/keys/tls");
    expect(world.host.stdin.get(3)?.toString()).toBe("s3cret");
    expect(world.host.stdin.get(9)?.toString()).toBe("cert");
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
    expect(shape(world.host.log)).toEqual([INSPECT_COMMAND, `copy ${NEW}`, "GETENT"]);
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
