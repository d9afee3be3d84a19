import { execFile, execFileSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { CLI, cdktfNixos as cli, startCdktfNixos } from "../harness/cli";
import { buildSystem, type NixValue } from "../harness/fixture";
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
      expect(silent.stderr).toMatch(new RegExp(`inspect failed: inspecting root@${target.address}:22 failed: 'echo machine=.*\\.\\.\\.' on root@${target.address}:22 gave no answer within 3 s`));
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

    // a failed activation that printed 200 000 lines: its end and where the rest is, in bounded memory
    const noisy = (await buildSystem({ config: {
      networking: { hostName: "hostile" }, lite: { failActivation: true },
      system: { activationScripts: { noisy: "seq 1 200000 | sed 's/^/noisy line /'" } },
    } })).toplevel;
    const failed = await cliMeasured(["deploy", ...sshArgs(), "--toplevel", noisy]);
    expect(failed.code, failed.stderr.slice(-2000)).toBe(EXIT_CODES.activate);
    expect(failed.stderr).toMatch(/ {2}stderr \(its last 40 of \d+ lines\):\n/);
    expect(failed.stderr).toContain("nixos-lite: activation of");
    expect(failed.stderr).toMatch(/hint: the activation's whole log is \/run\/cdktf-nixos\/[0-9a-f]{12}\.log on root@/);
    expect(failed.stderr.length).toBeLessThan(16 * 1024);
    expect(failed.peakMiB).toBeLessThan(256);
    expect((await target.exec("readlink -f /run/current-system")).stdout).toBe(running);
    // and the host, answering again, is deployed as usual
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", next])).code).toBe(0);
  });
});

/**
 * Issue 22 §4: crashes on either side (the activation script killed, the host restarted, the deployer interrupted)
 * never leave a false report: what the tool says is read from the host, and the host ends where it says.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns"))("a crash on either side never leaves a false report", () => {
  let world: TargetWorld;
  let target: TargetHost;
  let work: string;
  const sshArgs = () => ["--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", world.knownHostsFile];
  const name = () => `root@${target.address}:22`;
  const read = async (command: string) => (await target.exec(command)).stdout.trim();
  const truth = async () => ({
    current: await read("readlink -f /run/current-system || true"),
    profileSystem: await read("readlink -f /nix/var/nix/profiles/system || true"),
  });
  const system = async (motd: string, lite: Record<string, NixValue> = {}) =>
    (await buildSystem({ config: { networking: { hostName: "crash" }, environment: { etc: { motd: { text: motd } } }, lite } })).toplevel;
  const deployed = async (motd: string) => {
    const toplevel = await system(motd);
    const result = await cli(["deploy", ...sshArgs(), "--toplevel", toplevel]);
    expect(result.code, result.stderr).toBe(0);
    return toplevel;
  };
  /** Polls `command` on the target until it succeeds; its stdout. */
  const waitOn = async (command: string, what: string) => {
    for (let i = 0; i < 300; i++) {
      const result = await target.exec(command);
      if (result.exitCode === 0 && result.stdout.trim() !== "") return result.stdout.trim();
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`${what} did not happen within 30 s`);
  };
  /** The ids of the activations the target has state of. */
  const activationIds = async (suffix: string) =>
    (await read(`cd /run/cdktf-nixos 2>/dev/null && ls *.${suffix} 2>/dev/null || true`)).split("\n").filter(Boolean).map((f) => f.slice(0, -suffix.length - 1));
  /** The id of an activation that writes `.suffix`, and is not one of `known`. */
  const newActivation = async (known: readonly string[], suffix: string) => {
    for (let i = 0; i < 300; i++) {
      const fresh = (await activationIds(suffix)).filter((id) => !known.includes(id));
      if (fresh.length > 0) return fresh[0];
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`no new activation wrote .${suffix} within 30 s`);
  };
  /** The id of the activation started after `known` were, once its script is in switch-to-configuration. */
  const switching = async (known: readonly string[], toplevel: string) => {
    const id = await newActivation(known, "pid");
    // the profile is set and switch-to-configuration itself runs (the script's own command line names it too, so the
    // process is matched by how it was started: the interpreter and the toplevel's script)
    await waitOn(`[ "$(readlink -f /nix/var/nix/profiles/system)" = ${toplevel} ] && ` +
      `pgrep -f '^[^ ]+ ${toplevel}/bin/switch-to-configuration switch$' >/dev/null && echo yes`, "switch-to-configuration");
    return id;
  };
  const killScript = (id: string) => target.exec(`kill -9 $(cut -d' ' -f1 /run/cdktf-nixos/${id}.pid)`);
  const switchesDone = () => waitOn("pgrep -f '[s]witch-to-configuration' >/dev/null || echo none", "every switch-to-configuration to end");

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    world = await startTargets(1, { users: [{ name: "nosudo" }] });
    target = world.hosts[0];
    work = await mkdtemp(join(tmpdir(), "crash-world-"));
  });
  afterAll(async () => {
    await world?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("a killed activation script: its deployer says so, the lock holds until its switch has ended, and the next deploy's system is what runs", async () => {
    await deployed("orphan base");
    const orphaned = await system("orphaned", { switchSleep: 3 });
    const known = await activationIds("pid");
    const run = startCdktfNixos(["deploy", ...sshArgs(), "--toplevel", orphaned]);
    const id = await switching(known, orphaned);
    await killScript(id);
    const first = await run.result;
    expect(first.code, first.stderr).toBe(EXIT_CODES.unknown);
    expect(first.stderr).toContain(`the activation script of 'switch' of ${orphaned} on ${name()} stopped before it finished (was it killed, or its unit stopped?)`);
    expect(first.stderr).not.toContain("rolls back by itself");

    // the orphaned switch-to-configuration still runs: the next deploy waits for it, then activates its own system
    const next = await system("after the orphan");
    const second = await cli(["deploy", ...sshArgs(), "--toplevel", next]);
    expect(second.code, second.stderr).toBe(0);
    expect(second.stderr).toContain("its activation script is gone, what it started still runs");
    await switchesDone();
    expect(await truth()).toEqual({ current: next, profileSystem: next });
  });

  it("a restart mid-activation is said as such with what the host booted, and a later rollback goes to the system that runs", async () => {
    const base = await deployed("reboot base");
    const generation = await read("readlink /nix/var/nix/profiles/system");
    const interrupted = await system("interrupted by a restart", { switchSleep: 4 });
    const known = await activationIds("pid");
    const run = startCdktfNixos(["deploy", ...sshArgs(), "--toplevel", interrupted, "--connect-timeout", "30"]);
    await switching(known, interrupted);
    await target.restart({ bootDefault: true });
    const first = await run.result;
    expect(first.code, first.stderr).toBe(EXIT_CODES.activate);
    expect(first.stderr).toContain(`${name()} restarted during 'switch' of ${interrupted} on ${name()}: the activation's state in /run is gone; it runs ${base}`);
    // the profile was set before the restart: it names a generation that never ran
    expect(await truth()).toEqual({ current: base, profileSystem: interrupted });

    const failing = await system("fails after the restart", { failActivation: true });
    const rolledBack = await cli(["deploy", ...sshArgs(), "--toplevel", failing]);
    expect(rolledBack.code, rolledBack.stderr).toBe(EXIT_CODES.activate);
    expect(rolledBack.stderr).toContain(`was rolled back to ${base}`);
    // the boot default and the profile are the system that runs again, not the generation that never ran
    expect(await truth()).toEqual({ current: base, profileSystem: base });
    expect(await read("readlink /nix/var/nix/profiles/system")).toBe(generation);
  });

  it("a confirmation never lands after its window or for an activation nothing watches; the next contact reports it unconfirmed", async () => {
    await deployed("confirm base");
    // the new system takes the network away for 6 s: long enough to stop the host's script before anyone can confirm
    const unconfirmed = await system("unconfirmed", { breakNetwork: { seconds: 6 } });
    const known = await activationIds("deadline");
    const run = startCdktfNixos(["deploy", ...sshArgs(), "--toplevel", unconfirmed, "--confirm-timeout", "20"]);
    const id = await newActivation(known, "deadline");
    await killScript(id);
    const first = await run.result;
    expect(first.code, first.stderr).toBe(EXIT_CODES.confirm);
    expect(first.stderr).toContain(`'switch' of ${unconfirmed} on ${name()} was not confirmed: its activation script stopped (killed, or its unit stopped) ` +
      `before the confirmation, so nothing rolls it back: ${name()} runs it unconfirmed`);
    expect(first.stderr).not.toMatch(/^deployed /m);
    expect(await read(`test -d /run/cdktf-nixos/${id}.decided || echo undecided`)).toBe("undecided");
    expect((await truth()).current).toBe(unconfirmed);

    // the next contact says so (until an activation takes over), and only then
    const notice = `${name()} runs ${unconfirmed} unconfirmed: its activation (${id}) was never confirmed, and its script was stopped before it could roll back`;
    const next = await system("after the unconfirmed one");
    const again = await cli(["deploy", ...sshArgs(), "--toplevel", next]);
    expect(again.code, again.stderr).toBe(0);
    expect(again.stderr).toContain(notice);
    const later = await cli(["deploy", ...sshArgs(), "--toplevel", next]);
    expect(later.code, later.stderr).toBe(0);
    expect(later.stderr).not.toContain("unconfirmed");
  });

  it("Ctrl-C while keys are written after activation says the host was activated and which keys are there", async () => {
    const before = await deployed("keys base");
    const beforeGeneration = Number(/system-(\d+)-link/.exec(await read("readlink /nix/var/nix/profiles/system"))![1]);
    const keys = ["first", "second", "third"].map((key) => ({ key, file: join(work, key), content: randomBytes(12 * 1024 * 1024) }));
    for (const { file, content } of keys) await writeFile(file, content, { mode: 0o600 });
    const next = await system("keys interrupted");
    const run = startCdktfNixos(["deploy", ...sshArgs(), "--toplevel", next, "--json",
      ...keys.flatMap(({ key, file }) => ["--key-spec", JSON.stringify({ name: key, file, uploadAt: "after-activation" })])]);
    await run.waitForStderr(/^keys: first, second, third after activation$/m);
    run.child.kill("SIGINT");
    const result = await run.result;
    expect(result.code).toBe(EXIT_CODES.interrupted);
    expect(result.json).toMatchObject({ ok: false, error: { exitCode: 130 } });
    const said = /interrupted \(SIGINT\) during keys: (.*)$/m.exec(result.stderr)?.[1];
    expect(said, result.stderr).toBeDefined();
    expect(said).toContain(`the host was activated (switch of ${next}, generation ${beforeGeneration} → ${beforeGeneration + 1})`);
    expect(said).not.toContain("nothing was changed");
    expect(before).not.toBe(next);
    expect((await truth()).current).toBe(next);
    // every key the message says is written is there, whole; every key it says is not written is not
    const written = /keys written: ([^;]*)/.exec(said!)![1].split(", ").filter((k) => k !== "none");
    const notWritten = /not written: (.*)$/.exec(said!)?.[1].split(", ") ?? [];
    for (const { key, content } of keys) {
      const sum = await read(`sha256sum < /run/keys/${key} 2>/dev/null | cut -c1-64`);
      if (written.includes(key)) expect(sum, key).toBe(createHash("sha256").update(content).digest("hex"));
      if (notWritten.includes(key)) expect(sum, key).toBe("");
    }
  });

  it("a login user without passwordless sudo is refused before anything is copied", async () => {
    const next = await system("for nosudo");
    const refused = await cli(["deploy", "--target-host", `nosudo@${target.address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", world.knownHostsFile, "--toplevel", next]);
    expect(refused.code, refused.stderr).toBe(EXIT_CODES.inspect);
    expect(refused.stderr).toContain(`inspect failed: nosudo cannot run commands as root without a password on nosudo@${target.address}:22 (sudo -n true failed); nothing was copied`);
    expect(refused.stderr).not.toMatch(/^copy/m);
    expect((await target.exec(`nix-store --check-validity ${next}`)).exitCode).not.toBe(0);
  });
});
