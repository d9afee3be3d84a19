import { execFileSync, spawn, spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, beforeEach, describe, expect, it } from "vitest";
import { missing } from "../../harness/requirements";
import {
  CONSUMED_MARK,
  dataChannelCommand,
  importerCommand,
  parseProbe,
  probeCommand,
  removeSpoolCommand,
  spoolPath,
} from "../../../src/nix/serve/spool-commands";

const ID = "0123456789abcdef0123456789abcdef";

describe("spool commands (exact strings)", () => {
  it("names the spool in the login user's TMPDIR and refuses ids that could escape it", () => {
    expect(spoolPath(ID)).toBe(`"\${TMPDIR:-/tmp}/cdktf-nixos-spool.${ID}"`);
    expect(() => spoolPath("../../etc")).toThrow("spool id must be 16-64 lowercase letters or digits, got '../../etc'");
    expect(() => spoolPath("short")).toThrow();
  });

  it("builds the importer, the data channel, the removal and the probe", () => {
    const S = `S="\${TMPDIR:-/tmp}/cdktf-nixos-spool.${ID}"`;
    expect(importerCommand(ID, 1234)).toBe(
      `${S}; mkdir -m 700 "$S" || exit 97; echo "$$ $(readlink /proc/$$/ns/pid 2>/dev/null)" > "$S/pid"; trap 'rm -rf "$S"' EXIT; trap 'exit 129' HUP INT TERM; ` +
        `{ head -c 1234 && while read -r n k; do case "$k" in z) zstd -qdc -- "$S/$n" ;; r) cat -- "$S/$n" ;; *) break ;; esac || exit 98; ` +
        `rm -f -- "$S/$n"; echo "@cdktf-nixos consumed $n" >&2; done; } | nix-store --serve --write`,
    );
    expect(dataChannelCommand(ID)).toBe(
      `${S}; while read -r n size; do { [ -d "$S" ] && [ ! -L "$S" ] && [ -O "$S" ]; } || { echo "the spool $S is gone" >&2; exit 97; }; { head -c "$size" > "$S/.$n" && [ "$(wc -c < "$S/.$n")" -eq "$size" ] && mv -- "$S/.$n" "$S/$n" && echo "$n"; } ` +
        `|| { rm -f -- "$S/.$n"; echo "segment $n did not arrive whole" >&2; exit 98; }; done`,
    );
    expect(removeSpoolCommand(ID)).toBe(`rm -rf -- "\${TMPDIR:-/tmp}/cdktf-nixos-spool.${ID}"`);
    expect(probeCommand()).toBe(
      `read -r a && echo "$a"; read -r b && echo "$b"; command -v zstd >/dev/null 2>&1 && echo zstd; ` +
        `[ "$(printf abcdef | { head -c 2 >/dev/null; cat; })" = cdef ] && echo exact-framing; ` +
        `for d in "\${TMPDIR:-/tmp}"/cdktf-nixos-spool.*; do { [ -d "$d" ] && [ ! -L "$d" ] && [ -O "$d" ]; } || continue; ` +
        `p=; n=; read -r p n < "$d/pid" 2>/dev/null; if [ -n "$p" ] && [ "$n" = "$(readlink /proc/$$/ns/pid 2>/dev/null)" ]; then kill -0 "$p" 2>/dev/null && continue; ` +
        `else [ -n "$(find "$d" -maxdepth 0 -mmin +10)" ] || continue; fi; rm -rf -- "$d"; done; true`,
    );
    expect(() => importerCommand(ID, 0)).toThrow("preamble length must be a positive integer, got 0");
  });

  it("reads the probe's answer", () => {
    expect(parseProbe("zstd\nexact-framing\n")).toEqual({ zstd: true, exactFraming: true });
    expect(parseProbe("exact-framing\n")).toEqual({ zstd: false, exactFraming: true });
    expect(parseProbe("")).toEqual({ zstd: false, exactFraming: false });
  });
});

/** The same commands run by this machine's sh and coreutils, with a stand-in for nix-store that records its input. */
describe.skipIf(missing("zstd"))("spool commands in a real shell", () => {
  let dir: string;
  let env: NodeJS.ProcessEnv;
  const sh = (command: string, input: Buffer | string = "") =>
    spawnSync("sh", ["-c", command], { input, env, maxBuffer: 64 * 1024 * 1024 });

  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), "spool-sh-"));
    mkdirSync(join(dir, "tmp"));
    mkdirSync(join(dir, "bin"));
    // nix-store stands in as a recorder of exactly what the importer feeds it
    writeFileSync(join(dir, "bin", "nix-store"), `#!/bin/sh\ncat > "${join(dir, "fed")}"\n`);
    chmodSync(join(dir, "bin", "nix-store"), 0o755);
    env = { ...process.env, TMPDIR: join(dir, "tmp"), PATH: `${join(dir, "bin")}:${process.env.PATH}` };
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it("the probe echoes twice and finds exact framing and zstd here", () => {
    const out = sh(probeCommand(), "1\n2\n").stdout.toString();
    expect(out.split("\n").slice(0, 2)).toEqual(["1", "2"]);
    expect(parseProbe(out)).toEqual({ exactFraming: true, zstd: true });
  });

  it("the probe removes spools of importers that are gone, and nothing else", () => {
    const spool = (name: string) => join(dir, "tmp", `cdktf-nixos-spool.${name}`);
    const live = spawn("sleep", ["30"]);
    try {
      const dead = spawnSync("true").pid!;
      const ns = readlinkSync("/proc/self/ns/pid");
      for (const name of ["deadpid", "livepid", "nopidfresh", "nopidold", "otherns", "othernsold"]) mkdirSync(spool(name), { mode: 0o700 });
      writeFileSync(join(spool("deadpid"), "pid"), `${dead} ${ns}\n`);
      writeFileSync(join(spool("livepid"), "pid"), `${live.pid} ${ns}\n`);
      // a pid of another PID namespace (a container sharing /tmp) cannot be checked from here
      writeFileSync(join(spool("otherns"), "pid"), `${dead} pid:[1]\n`);
      writeFileSync(join(spool("othernsold"), "pid"), `${dead} pid:[1]\n`);
      const old = new Date(Date.now() - 20 * 60_000);
      for (const name of ["nopidold", "othernsold"]) utimesSync(spool(name), old, old);
      mkdirSync(join(dir, "tmp", "unrelated"));
      sh(probeCommand(), "1\n2\n");
      expect(readdirSync(join(dir, "tmp")).sort()).toEqual([
        "cdktf-nixos-spool.livepid", "cdktf-nixos-spool.nopidfresh", "cdktf-nixos-spool.otherns", "unrelated",
      ]);
    } finally {
      live.kill();
    }
  });

  it("data channels store whole segments under their names and say so; a short one is removed, not renamed", () => {
    const S = join(dir, "tmp", `cdktf-nixos-spool.${ID}`);
    expect(sh(dataChannelCommand(ID), "0 5\nhello").stderr.toString()).toContain(`the spool ${S} is gone`);
    // a channel that is never sent a segment does not care (nor make anything)
    expect(sh(dataChannelCommand(ID)).status).toBe(0);
    expect(existsSync(S)).toBe(false);
    mkdirSync(S, { mode: 0o700 });
    const ok = sh(dataChannelCommand(ID), Buffer.concat([Buffer.from("0 5\nhello3 4\n\n\x00\x01\n")]));
    expect(ok.status).toBe(0);
    expect(ok.stdout.toString()).toBe("0\n3\n");
    expect(readFileSync(join(S, "0"), "utf8")).toBe("hello");
    expect(readFileSync(join(S, "3"))).toEqual(Buffer.from("\n\x00\x01\n"));
    const short = sh(dataChannelCommand(ID), "7 100\nonly a little");
    expect(short.status).toBe(98);
    expect(short.stderr.toString()).toContain("segment 7 did not arrive whole");
    expect(readdirSync(S).sort()).toEqual(["0", "3"]);
  });

  it("the importer feeds nix-store the preamble, then the named segments in order (raw or zstd), and removes the spool", () => {
    const preamble = Buffer.from("PREAMBLE-bytes\n0 r\n");
    const S = join(dir, "tmp", `cdktf-nixos-spool.${ID}`);
    // the segments are there before the importer is told about them, as the client guarantees
    const importer = spawn("sh", ["-c", importerCommand(ID, preamble.length)], { env });
    let stderr = "";
    importer.stderr.on("data", (c) => (stderr += c));
    importer.stdin.write(preamble);
    return new Promise<void>((resolve, reject) => {
      const waitForSpool = setInterval(() => {
        if (!existsSync(join(S, "pid"))) return;
        clearInterval(waitForSpool);
        writeFileSync(join(S, "0"), "first|");
        writeFileSync(join(S, "1"), execFileSync("zstd", ["-q", "-c"], { input: "second|" }));
        writeFileSync(join(S, "2"), "third");
        importer.stdin.end("0 r\n1 z\n2 r\nend\n");
      }, 10);
      importer.on("close", (code) => {
        try {
          expect(code).toBe(0);
          // "0 r" inside the preamble is data, not a command: head -c took exactly the preamble
          expect(readFileSync(join(dir, "fed"), "utf8")).toBe("PREAMBLE-bytes\n0 r\nfirst|second|third");
          expect(stderr).toBe(`${CONSUMED_MARK}0\n${CONSUMED_MARK}1\n${CONSUMED_MARK}2\n`);
          expect(existsSync(S)).toBe(false);
          resolve();
        } catch (err) {
          reject(err);
        }
      });
    });
  });

  it("the importer refuses a spool that already exists (a planted directory or symlink)", () => {
    mkdirSync(join(dir, "tmp", `cdktf-nixos-spool.${ID}`));
    const run = sh(importerCommand(ID, 4), "abcd");
    expect(run.status).toBe(97);
    expect(existsSync(join(dir, "fed"))).toBe(false);
    // and leaves what it did not make
    expect(existsSync(join(dir, "tmp", `cdktf-nixos-spool.${ID}`))).toBe(true);
  });
});
