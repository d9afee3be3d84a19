import { execFile, execFileSync } from "node:child_process";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { CLI, cdktfNixos as cli } from "../harness/cli";
import { buildSystem } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { startTargets, type TargetHost, type TargetWorld } from "../harness/target-hosts";

/**
 * Issue 22: a target (or a local user on it) tries to take root, memory or time from the deployer. Every case runs
 * against a real sshd and a real Nix store, with the hostile part played by a process on the target.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "python3", "time"))("a hostile target or local user takes nothing from the deployer", () => {
  let world: TargetWorld;
  let target: TargetHost;
  let work: string;
  let toplevel: string;
  const sshArgs = () => ["--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", world.knownHostsFile];
  /** A root-only file on the target that a local user would love to own or overwrite. */
  const VICTIM = "/root/victim";
  const victim = async () => (await target.exec(`stat -c '%U %a %s' ${VICTIM}; cat ${VICTIM}`)).stdout;

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    world = await startTargets(1, { users: [{ name: "stranger" }] });
    target = world.hosts[0];
    work = await mkdtemp(join(tmpdir(), "hostile-world-"));
    toplevel = (await buildSystem({ config: { networking: { hostName: "hostile" }, environment: { etc: { motd: { text: "hostile" } } } } })).toplevel;
    const first = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel]);
    expect(first.code, first.stderr).toBe(0);
  });
  afterAll(async () => {
    await world?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  /**
   * Runs a watcher as the local user stranger on the target until the returned stop is called: as fast as Python
   * lets it, it replaces every entry of `dir` named `.NAME.*` (the upload's temporary files) — and `NAME` itself with
   * `alsoKey` — by a link to `link`, the moment one appears (the attack of issue 22's report).
   */
  async function swapper(dir: string, name: string, link: string, alsoKey: boolean): Promise<() => Promise<void>> {
    const script = [
      "import os",
      `d, n, link, also = ${JSON.stringify(dir)}, ${JSON.stringify(name)}, ${JSON.stringify(link)}, ${alsoKey ? "True" : "False"}`,
      "while True:",
      "    try: entries = os.listdir(d)",
      "    except OSError: continue",
      "    for e in entries:",
      "        if e.startswith('.' + n + '.') or (also and e == n):",
      "            p = os.path.join(d, e)",
      "            try:",
      "                if os.path.islink(p): continue",
      "                os.unlink(p); os.symlink(link, p)",
      "            except OSError: pass",
      "    if also and not os.path.lexists(os.path.join(d, n)):",
      "        try: os.symlink(link, os.path.join(d, n))",
      "        except OSError: pass",
    ].join("\n");
    const file = `/run/swapper-${name}-${Date.now()}.py`;
    await target.exec(`cat > ${file} <<'PY'\n${script}\nPY\nchmod 644 ${file}`);
    await target.exec(`setpriv --reuid=stranger --regid=stranger --clear-groups /usr/bin/python3 ${file} >/dev/null 2>&1 & echo $! > ${file}.pid`);
    return async () => {
      await target.exec(`kill $(cat ${file}.pid) 2>/dev/null; rm -f ${file} ${file}.pid`);
    };
  }

  it("writes keys only into directories no one but root can change: a user swapping paths in a loop wins 0 of 20 uploads", async () => {
    await target.exec(`printf root-only > ${VICTIM}; chmod 600 ${VICTIM}`);
    const before = await victim();
    const secret = join(work, "key");

    // 1. a directory the key's user owns: the user swaps the temporary file for a link to a root-only file
    await target.exec("mkdir -p /run/userkeys && chown stranger /run/userkeys");
    const stopSwapping = await swapper("/run/userkeys", "db", VICTIM, false);
    try {
      for (let i = 0; i < 10; i++) {
        await writeFile(secret, `user-dir-${i}\n`, { mode: 0o600 });
        const refused = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec",
          JSON.stringify({ name: "db", file: secret, user: "stranger", destDir: "/run/userkeys" })]);
        expect(refused.code, refused.stderr).toBe(EXIT_CODES.keys);
        expect(refused.stderr).toContain(`keys failed: /run/userkeys: it is owned by stranger, not root (on root@${target.address}:22); no key was written`);
        expect(refused.stderr).toContain("choose a destDir owned by root, such as /run/keys");
      }
    } finally {
      await stopSwapping();
    }
    expect(await victim()).toBe(before);

    // 2. a root-owned directory: the user tries to plant links beside the key and over it, and cannot
    await target.exec("mkdir -p -m 0755 /run/keys/race");
    const stopPlanting = await swapper("/run/keys/race", "db", VICTIM, true);
    try {
      for (let i = 0; i < 10; i++) {
        await writeFile(secret, `root-dir-${i}\n`, { mode: 0o600 });
        const written = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec",
          JSON.stringify({ name: "db", file: secret, user: "stranger", destDir: "/run/keys/race" })]);
        // each upload replaces the key the one before wrote (the host's record says it was ours)
        expect(written.code, written.stderr).toBe(0);
        expect((await target.exec("stat -c '%U %a' /run/keys/race/db; cat /run/keys/race/db")).stdout).toBe(`stranger 400\nroot-dir-${i}\n`);
      }
    } finally {
      await stopPlanting();
    }
    expect(await victim()).toBe(before);
    expect((await target.exec("ls -A /run/keys/race")).stdout).toBe("db\n");
  });

  it("never follows a linked key directory, never replaces a file no key upload wrote unless replaceExisting", async () => {
    const secret = join(work, "hostname-key");
    await writeFile(secret, "not-a-hostname\n", { mode: 0o600 });
    // /run/keys2 → a directory of the host's own files (as /run/keys → /etc was)
    await target.exec("mkdir -p /root/own-etc && printf target-host > /root/own-etc/hostname && ln -sfn /root/own-etc /run/keys2");
    const linked = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec", JSON.stringify({ name: "hostname", file: secret, destDir: "/run/keys2" })]);
    expect(linked.code, linked.stderr).toBe(EXIT_CODES.keys);
    expect(linked.stderr).toContain(`keys failed: /run/keys2: it is a symbolic link (to /root/own-etc); give the real path (on root@${target.address}:22); no key was written`);
    expect((await target.exec("cat /root/own-etc/hostname")).stdout).toBe("target-host");

    // a file the host put where a key would go is the host's: refused, then replaced only when the key says so
    await target.exec("mkdir -p -m 0750 /run/keys && printf host-config > /run/keys/app.conf");
    const spec = { name: "app.conf", file: secret };
    const refused = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec", JSON.stringify(spec)]);
    expect(refused.code, refused.stderr).toBe(EXIT_CODES.keys);
    expect(refused.stderr).toContain(`keys failed: /run/keys/app.conf on root@${target.address}:22 exists and was not written by a key upload (or was changed since): key "app.conf" was not written there`);
    expect(refused.stderr).toContain(`set replaceExisting: true on key "app.conf"`);
    expect((await target.exec("cat /run/keys/app.conf")).stdout).toBe("host-config");
    const replaced = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec", JSON.stringify({ ...spec, replaceExisting: true })]);
    expect(replaced.code, replaced.stderr).toBe(0);
    expect((await target.exec("cat /run/keys/app.conf")).stdout).toBe("not-a-hostname\n");
    // from now on it is ours: a changed key replaces it without replaceExisting; a change by someone else is refused again
    await writeFile(secret, "rotated\n", { mode: 0o600 });
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec", JSON.stringify(spec)])).code).toBe(0);
    expect((await target.exec("cat /run/keys/app.conf")).stdout).toBe("rotated\n");
    await target.exec("printf edited-on-host > /run/keys/app.conf");
    await writeFile(secret, "rotated again\n", { mode: 0o600 });
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", toplevel, "--key-spec", JSON.stringify(spec)])).code).toBe(EXIT_CODES.keys);
    expect((await target.exec("cat /run/keys/app.conf")).stdout).toBe("edited-on-host");
    await target.exec("rm -rf /run/keys2 /root/own-etc /run/keys/app.conf");
  });

  it("refuses a deployment state directory another user made, following none of its links", async () => {
    await target.exec(`printf root-only > ${VICTIM}; chmod 600 ${VICTIM}`);
    const before = await victim();
    const running = (await target.exec("readlink -f /run/current-system")).stdout;
    await target.exec("rm -rf /run/cdktf-nixos && mkdir -m 0755 /run/cdktf-nixos && chown stranger /run/cdktf-nixos");
    await target.exec(`setpriv --reuid=stranger --regid=stranger --clear-groups sh -c 'ln -s ${VICTIM} /run/cdktf-nixos/lock.holder; ln -s /root/nologin /run/cdktf-nixos/lock'`);
    const next = (await buildSystem({ config: { networking: { hostName: "hostile" }, environment: { etc: { motd: { text: "state dir" } } } } })).toplevel;
    const refused = await cli(["deploy", ...sshArgs(), "--toplevel", next]);
    expect(refused.code, refused.stderr).toBe(EXIT_CODES.lock);
    expect(refused.stderr).toContain(`lock failed: the deployment's state directory on root@${target.address}:22 is not root's own: ` +
      "/run/cdktf-nixos: it is owned by stranger, not root; nothing was changed");
    expect(await victim()).toBe(before);
    expect((await target.exec("test -e /root/nologin || echo absent")).stdout).toBe("absent\n");
    expect((await target.exec("readlink -f /run/current-system")).stdout).toBe(running);
    // once root's again, deployments go on
    await target.exec("rm -rf /run/cdktf-nixos");
    const deployed = await cli(["deploy", ...sshArgs(), "--toplevel", next]);
    expect(deployed.code, deployed.stderr).toBe(0);
    expect((await target.exec("stat -c '%U %a' /run/cdktf-nixos")).stdout).toBe("root 755\n");
  });

  /**
   * Puts a forced command in front of the client's key on the target (as `command="…"` in authorized_keys): what
   * `mode` says answers instead of `nix-store --serve`, or instead of everything; any other command runs as asked.
   */
  async function forceCommand(mode: "never-answer" | "zeros" | "huge-set" | "huge-string" | "garbage" | "claims-all-valid"): Promise<void> {
    const serve = [
      "import os, struct, sys",
      "mode = sys.argv[1]",
      "inp, out = sys.stdin.buffer, sys.stdout.buffer",
      "def u64(): return struct.unpack('<Q', inp.read(8))[0]",
      "def put(n): out.write(struct.pack('<Q', n))",
      "if mode == 'garbage':",
      "    out.write(b'\"3\\x00\\xff\\x13\\x37\\x00\\x01binary'); out.flush(); sys.exit(0)",
      "u64(); u64()",
      "put(0x5452eecb); put(0x205); out.flush()",
      "while True:",
      "    cmd = u64()",
      "    if cmd != 1: sys.exit(0)",
      "    u64(); u64()",
      "    paths = []",
      "    for _ in range(u64()):",
      "        n = u64(); paths.append(inp.read(n)); inp.read((8 - n % 8) % 8)",
      "    if mode == 'huge-set': put(2 ** 50)",
      "    elif mode == 'huge-string': put(1); put(2 ** 40)",
      "    else:",
      "        put(len(paths))",
      "        for p in paths: put(len(p)); out.write(p + b'\\x00' * ((8 - len(p) % 8) % 8))",
      "    out.flush()",
    ].join("\n");
    const forced = [
      "#!/bin/sh",
      `case "$SSH_ORIGINAL_COMMAND" in`,
      ...(mode === "never-answer" ? [`  *) exec sleep 3600 ;;`] : mode === "zeros" ? [`  *'echo machine='*) exec cat /dev/zero ;;`] : [`  *'nix-store --serve'*) exec /usr/bin/python3 /root/serve.py ${mode} ;;`]),
      `  *) exec sh -c "$SSH_ORIGINAL_COMMAND" ;;`,
      "esac",
    ].join("\n");
    await target.exec(`cat > /root/serve.py <<'PY'\n${serve}\nPY\ncat > /root/forced.sh <<'SH'\n${forced}\nSH\nchmod 755 /root/forced.sh && ` +
      `printf 'command="/root/forced.sh" %s\\n' "${world.clientPublicKey.trim()}" > /root/.ssh/authorized_keys`);
  }
  async function unforce(): Promise<void> {
    await target.exec(`printf '%s\\n' "${world.clientPublicKey.trim()}" > /root/.ssh/authorized_keys && rm -f /root/forced.sh /root/serve.py`);
  }

  /** Runs the CLI under /usr/bin/time: its result and its peak resident memory in MiB. */
  function cliMeasured(args: string[]): Promise<{ code: number; stderr: string; peakMiB: number }> {
    return new Promise((resolve) => {
      execFile("/usr/bin/time", ["-f", "peak-kib %M", process.execPath, CLI, ...args], { env: { ...process.env, NIX_CONFIG: "substituters =" }, maxBuffer: 64 * 1024 * 1024 },
        (err, _stdout, stderr) => {
          const peak = /^peak-kib (\d+)$/m.exec(stderr);
          resolve({ code: (err as { code?: number } | null)?.code ?? 0, stderr, peakMiB: peak === null ? Number.NaN : Number(peak[1]) / 1024 });
        });
    });
  }

  it("a host that never answers, floods or speaks garbage costs bounded memory and time, and is named for what it did", async () => {
    const next = (await buildSystem({ config: { networking: { hostName: "hostile" }, environment: { etc: { motd: { text: "serve" } } } } })).toplevel;
    const running = (await target.exec("readlink -f /run/current-system")).stdout;
    const deploy = (extra: string[] = []) => cliMeasured(["deploy", ...sshArgs(), "--toplevel", next, "--reply-timeout", "3", ...extra]);
    try {
      await forceCommand("never-answer");
      const started = Date.now();
      const silent = await deploy();
      expect(silent.code, silent.stderr).toBe(EXIT_CODES.inspect);
      expect(silent.stderr).toContain(`inspect failed: inspecting root@${target.address}:22 failed: 'echo machine=$(uname -m); command -v nix-store >/dev/null 2>&1 && echo nix=1 ...' on root@${target.address}:22 gave no answer within 3 s`);
      // a bound, not a speed: 3 s of silence, then the connection's close
      expect(Date.now() - started).toBeLessThan(30_000);

      await forceCommand("zeros");
      const flood = await deploy();
      expect(flood.code, flood.stderr).toBe(EXIT_CODES.inspect);
      expect(flood.stderr).toContain("printed more than 64 KiB on stdout, more than it can mean");
      expect(flood.peakMiB).toBeLessThan(256);

      for (const [mode, message] of [
        // a set has at most as many entries as were asked about (the closure's paths)
        ["huge-set", /copy failed: querying valid paths failed: the valid paths: 1125899906842624 entries, more than it can have \(\d+\)/],
        ["huge-string", /copy failed: querying valid paths failed: the valid paths of 1099511627776 bytes, more than it can be \(4096\)/],
        ["garbage", /copy failed: the target answered with bytes that are not Nix's serve protocol: 22 33 00 ff 13 37 00 01 62 69 6e 61 72 79/],
        ["claims-all-valid", new RegExp(`copy failed: root@${target.address}:22 claimed paths it does not have: ${next} is not in its store after the copy; nothing was activated`)],
      ] as const) {
        await forceCommand(mode);
        const hostile = await deploy();
        expect(hostile.code, `${mode}: ${hostile.stderr}`).toBe(EXIT_CODES.copy);
        expect(hostile.stderr, mode).toMatch(message);
        expect(hostile.peakMiB, mode).toBeLessThan(256);
      }
    } finally {
      await unforce();
    }
    expect((await target.exec("readlink -f /run/current-system")).stdout).toBe(running);
    // and the host, answering again, is deployed as usual
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", next])).code).toBe(0);
  });
});
