import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { createServer, connect, type Server, type Socket } from "node:net";
import { mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { planActivation } from "../../src/deploy/activation";
import { parseActivationState } from "../../src/deploy/activation-state";
import { CLI, cdktfNixos, startCdktfNixos } from "../harness/cli";
import { buildSystem, closureOf, type NixValue } from "../harness/fixture";
import { startLatencyProxy } from "../harness/latency-proxy";
import { missing } from "../harness/requirements";
import { copySpoolsOf, startTargets, type TargetHost, type TargetKind, type TargetWorld } from "../harness/target-hosts";

/** What a target runs, from the target itself (not from what the tool said). */
interface HostTruth {
  current: string;
  profileSystem: string;
  generation: number | undefined;
  bootDefault: string;
}

async function truth(target: TargetHost): Promise<HostTruth> {
  const read = async (command: string) => (await target.exec(command)).stdout.trim();
  const link = await read("readlink /nix/var/nix/profiles/system || true");
  const generation = /^system-(\d+)-link$/.exec(link)?.[1];
  return {
    current: await read("readlink -f /run/current-system || true"),
    profileSystem: await read("readlink -f /nix/var/nix/profiles/system || true"),
    generation: generation === undefined ? undefined : Number(generation),
    bootDefault: await read("cat /nix/var/nixos-lite/boot-default || true"),
  };
}

/** Waits until every activation started on the target has finished (its detached script wrote `.done`). */
async function activationsFinished(target: TargetHost): Promise<void> {
  // on a systemd host also every activation unit: one started just before its deployer was killed may have no log yet
  const check = "for f in /run/cdktf-nixos/*.log; do [ -e \"$f\" ] || continue; [ -e \"${f%.log}.done\" ] || exit 1; done; " +
    "! { command -v systemctl >/dev/null && [ -d /run/systemd/system ] && systemctl list-units --plain --no-legend 'cdktf-nixos-activation-*' | grep -q .; }";
  for (let i = 0; i < 300; i++) {
    if ((await target.exec(check)).exitCode === 0) return;
    await sleep(100);
  }
  throw new Error("an activation on the target did not finish within 30 s");
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));
const randomMs = (max: number) => Math.floor(Math.random() * max);

function config(motd: string, lite: Record<string, NixValue> = {}): Record<string, NixValue> {
  return { networking: { hostName: "faults" }, environment: { etc: { motd: { text: motd } } }, lite };
}

const KINDS: TargetKind[] = ["namespace", "systemd"];

// Activation faults run against both kinds of host (a systemd one runs the activation in a transient unit and its
// services as units); faults of the copy and the connection, which no init changes, against the namespace host only.
describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets")).each(KINDS)("deployments under faults on a %s host: what the host ends in, what the tool says", (kind) => {
  let world: TargetWorld;
  let target: TargetHost;
  const args = () => ["--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", world.knownHostsFile];

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    world = await startTargets(1, { kind });
    target = world.hosts[0];
  });
  afterAll(() => world?.stop());
  /** Only where the host's init makes no difference (the copy, the connection): registered for the namespace host. */
  const itWithoutInit: typeof it = ((...a: Parameters<typeof it>) => (kind === "namespace" ? it(...a) : undefined)) as typeof it;

  async function deployed(motd: string): Promise<string> {
    const system = await buildSystem({ config: config(motd) });
    const result = await cdktfNixos(["deploy", ...args(), "--toplevel", system.toplevel]);
    expect(result.code, result.stderr).toBe(0);
    return system.toplevel;
  }

  it("two deploys to one host at once take turns, and both reports are true (x2)", async () => {
    for (const round of [1, 2]) {
      await deployed(`base ${round}`);
      const first = (await buildSystem({ config: config(`first ${round}`, { switchSleep: 2 }) })).toplevel;
      // round 1: the second fails and rolls back to the first; round 2: both succeed
      const second = (await buildSystem({ config: config(`second ${round}`, round === 1 ? { failActivation: true } : {}) })).toplevel;

      const a = startCdktfNixos(["deploy", ...args(), "--toplevel", first, "--json"]);
      // the second starts once the first holds the target's lock
      for (let i = 0; i < 200 && !(await target.exec("cat /run/cdktf-nixos/lock.holder")).stdout.includes(`pid ${a.child.pid}`); i++) await sleep(50);
      const b = startCdktfNixos(["deploy", ...args(), "--toplevel", second, "--json"]);
      const [ra, rb] = await Promise.all([a.result, b.result]);

      expect(ra.code, ra.stderr).toBe(0);
      expect(rb.stderr).toContain(`waiting for the deployment lock, held by ${hostname()} pid ${a.child.pid}`);
      const host = await truth(target);
      expect(host.current).toBe(host.profileSystem);
      expect(host.bootDefault).toBe(host.profileSystem);
      if (round === 1) {
        expect(rb.code).toBe(EXIT_CODES.activate);
        expect(rb.stderr).toContain(`was rolled back to ${first}`);
        expect(host.current).toBe(first);
        expect(host.generation).toBe(ra.json!.newGeneration);
        expect(rb.json).toMatchObject({ ok: false, hostState: { currentSystem: first, profileGeneration: ra.json!.newGeneration } });
      } else {
        expect(rb.code, rb.stderr).toBe(0);
        expect(host.current).toBe(second);
        // the second reports the state it found under the lock: the first's generation, not the one inspected earlier
        expect(rb.json).toMatchObject({ previousSystem: first, previousGeneration: ra.json!.newGeneration, newGeneration: host.generation });
      }
    }
  });

  it("two deploys of the same system at once: one activates, the other finds the host up to date under the lock", async () => {
    await deployed("same base");
    const before = await truth(target);
    const same = (await buildSystem({ config: config("same system", { switchSleep: 2 }) })).toplevel;
    const a = startCdktfNixos(["deploy", ...args(), "--toplevel", same, "--json"]);
    for (let i = 0; i < 200 && !(await target.exec("cat /run/cdktf-nixos/lock.holder")).stdout.includes(`pid ${a.child.pid}`); i++) await sleep(50);
    // the second inspects the host while the first still switches: not up to date yet, so it copies and waits
    const b = startCdktfNixos(["deploy", ...args(), "--toplevel", same, "--json"]);
    const [ra, rb] = await Promise.all([a.result, b.result]);
    expect(ra.code, ra.stderr).toBe(0);
    expect(rb.code, rb.stderr).toBe(0);
    expect(rb.stderr).toContain(`waiting for the deployment lock, held by ${hostname()} pid ${a.child.pid}`);
    const host = await truth(target);
    expect(host.current).toBe(same);
    expect(host.generation).toBe(before.generation! + 1);
    expect(ra.json).toMatchObject({ upToDate: false, newGeneration: host.generation });
    expect(rb.json).toMatchObject({ upToDate: true, previousGeneration: host.generation, newGeneration: host.generation });
  });

  it("a deploy that cannot get the lock in --lock-timeout changes nothing and names the holder", async () => {
    const base = await deployed("lock base");
    const slow = (await buildSystem({ config: config("lock slow", { switchSleep: 4 }) })).toplevel;
    const other = (await buildSystem({ config: config("lock other") })).toplevel;
    const a = startCdktfNixos(["deploy", ...args(), "--toplevel", slow]);
    for (let i = 0; i < 200 && !(await target.exec("cat /run/cdktf-nixos/lock.holder")).stdout.includes(`pid ${a.child.pid}`); i++) await sleep(50);
    const b = await cdktfNixos(["deploy", ...args(), "--toplevel", other, "--lock-timeout", "1"]);
    expect(b.code).toBe(EXIT_CODES.lock);
    expect(b.stderr).toContain(`is locked by another deployment (${hostname()} pid ${a.child.pid}, activation `);
    expect(b.stderr).toContain("nothing was changed");
    expect((await a.result).code).toBe(0);
    expect((await target.exec("cat /nix/var/nixos-lite/actions.log")).stdout).not.toContain(other);
    expect(base).not.toBe(slow);
  });

  itWithoutInit("killed at random points of the copy: no valid path with an invalid reference, the store verifies, a rerun completes (x3)", async () => {
    for (const round of [1, 2, 3]) {
      const system = await buildSystem({ config: config(`copy ${round}`, { payload: { paths: 40, sizeKiB: 512, seed: `copy-${round}` } }) });
      const run = startCdktfNixos(["deploy", ...args(), "--toplevel", system.toplevel]);
      await run.waitForStderr(/^copy$/m);
      await sleep(randomMs(400));
      run.child.kill("SIGKILL");
      await run.result;

      const closure = await closureOf(system.toplevel);
      for (const path of closure) {
        if ((await target.exec(`nix-store --check-validity ${path}`)).exitCode !== 0) continue;
        const refs = (await target.exec(`nix-store --query --references ${path}`)).stdout.trim().split("\n").filter(Boolean);
        for (const ref of refs) expect((await target.exec(`nix-store --check-validity ${ref}`)).exitCode, `${path} -> ${ref}`).toBe(0);
      }
      const verify = await target.exec("nix-store --verify --check-contents 2>&1");
      expect(verify.exitCode, verify.stdout).toBe(0);

      const rerun = await cdktfNixos(["deploy", ...args(), "--toplevel", system.toplevel]);
      expect(rerun.code, rerun.stderr).toBe(0);
      expect((await truth(target)).current).toBe(system.toplevel);
    }
  });

  itWithoutInit("killed at random points of a multi-channel copy 25 ms away: the store stays consistent, no spool stays, a rerun completes (x6)", async () => {
    // the spooled copy needs a far link: the latency proxy in front of the target, at 25 MB/s so the copy lasts
    const proxy = await startLatencyProxy({ target: { host: target.address, port: target.port }, delayMs: 25, bytesPerSecond: 25_000_000 });
    const knownHosts = join(await mkdtemp(join(tmpdir(), "faults-spool-")), "known_hosts");
    await writeFile(knownHosts, `[127.0.0.1]:${proxy.port} ${target.hostKey}\n`);
    const far = ["--target-host", "root@127.0.0.1", "--target-port", String(proxy.port), "--ssh-key", world.clientKeyFile, "--known-hosts", knownHosts];
    try {
      // how long a whole copy of such a closure takes here and now (about 2.5 s through the proxy on a quiet machine,
      // longer on a loaded one): the kills are spread over that, one in each sixth, so some land before any path is
      // registered and some after several however fast the machine is
      const measured = await buildSystem({ config: config("spooled copy timed", { payload: { paths: 60, sizeKiB: 1024, seed: "spool-kill-timed" } }) });
      const timed = startCdktfNixos(["deploy", ...far, "--toplevel", measured.toplevel]);
      await timed.waitForStderr(/^copy$/m);
      const copyStarted = Date.now();
      await timed.waitForStderr(/^copied /m);
      const copyMs = Date.now() - copyStarted;
      expect((await timed.result).code).toBe(0);
      const validWhenKilled: number[] = [];
      for (let round = 1; round <= 6; round++) {
        // a closure of its own each round: every kill lands in a whole copy (60 MiB)
        const system = await buildSystem({ config: config(`spooled copy ${round}`, { payload: { paths: 60, sizeKiB: 1024, seed: `spool-kill-${round}` } }) });
        const closure = await closureOf(system.toplevel);
        const run = startCdktfNixos(["deploy", ...far, "--toplevel", system.toplevel]);
        await run.waitForStderr(/^copy$/m);
        await sleep(Math.floor(((round - 1) + Math.random()) / 6 * copyMs));
        run.child.kill("SIGKILL");
        await run.result;
        const invalid = (await target.exec(`nix-store --check-validity --print-invalid ${closure.join(" ")}`)).stdout.split("\n").filter(Boolean);
        validWhenKilled.push(closure.length - invalid.length);
        // the target notices the lost connection: its importer and data channels end
        for (let i = 0; i < 100 && (await target.exec("ps -eo args | grep -c '[c]dktf-nixos-spool' || true")).stdout.trim() !== "0"; i++) await sleep(100);
        expect((await target.exec("ps -eo pid,args | grep '[c]dktf-nixos-spool' || true")).stdout.trim()).toBe("");
        for (const path of closure) {
          if (invalid.includes(path)) continue;
          const refs = (await target.exec(`nix-store --query --references ${path}`)).stdout.trim().split("\n").filter(Boolean);
          for (const ref of refs) expect((await target.exec(`nix-store --check-validity ${ref}`)).exitCode, `${path} -> ${ref}`).toBe(0);
        }
        const verify = await target.exec("nix-store --verify --check-contents 2>&1");
        expect(verify.exitCode, verify.stdout).toBe(0);
        // what a data channel racing the importer's removal, or a SIGKILLed importer, leaves: the next probe sweeps it
        await target.exec(`mkdir -m 700 /tmp/cdktf-nixos-spool.killedrun${round}leftover00; echo "999999 $(readlink /proc/self/ns/pid)" > /tmp/cdktf-nixos-spool.killedrun${round}leftover00/pid`);

        const rerun = await cdktfNixos(["deploy", ...far, "--toplevel", system.toplevel, "--json"]);
        expect(rerun.code, rerun.stderr).toBe(0);
        expect((await truth(target)).current).toBe(system.toplevel);
        // what was left to send decides: the spool from SPOOL_MIN_BYTES (32 MiB) on
        if (invalid.length >= 40) {
          expect(rerun.json).toMatchObject({ copyTransport: { kind: "spooled" } });
          expect((rerun.json!.copyTransport as { dataChannels: number }).dataChannels).toBeGreaterThan(1);
        }
        expect((await target.exec("nix-store --verify --check-contents 2>&1")).exitCode).toBe(0);
        expect(await copySpoolsOf(target)).toEqual([]);
      }
      // the kills were spread over the copy: some before any path was registered, some after several
      expect(new Set(validWhenKilled).size, validWhenKilled.join(", ")).toBeGreaterThan(1);
    } finally {
      await proxy.close();
      await rm(dirname(knownHosts), { recursive: true, force: true });
    }
  });

  it("killed at random points of the activation: the host ends fully old or fully new, and the next deploy says which (x3)", async () => {
    for (const round of [1, 2, 3]) {
      const old = await deployed(`activation base ${round}`);
      const next = (await buildSystem({ config: config(`activation next ${round}`, { switchSleep: 1 }) })).toplevel;
      const run = startCdktfNixos(["deploy", ...args(), "--toplevel", next]);
      await run.waitForStderr(/^activate: switch$/m);
      await sleep(randomMs(1500));
      run.child.kill("SIGKILL");
      await run.result;
      await activationsFinished(target);

      const host = await truth(target);
      expect([old, next]).toContain(host.current);
      expect(host.profileSystem).toBe(host.current);
      expect(host.bootDefault).toBe(host.current);

      const again = await cdktfNixos(["deploy", ...args(), "--toplevel", next, "--json"]);
      expect(again.code, again.stderr).toBe(0);
      expect(again.stderr).toContain(`target runs ${host.current} (generation ${host.generation})`);
      expect(again.json).toMatchObject({ previousSystem: host.current, previousGeneration: host.generation });
    }
  });

  it("a connection cut during activation: the tool reconnects and reports what the host did (switched, or rolled back)", async () => {
    for (const fails of [false, true]) {
      const old = await deployed(`cut base ${fails}`);
      const next = (await buildSystem({ config: config(`cut next ${fails}`, { switchSleep: 2, failActivation: fails }) })).toplevel;
      const run = startCdktfNixos(["deploy", ...args(), "--toplevel", next, "--json"]);
      await run.waitForStderr(/^activate: switch$/m);
      await sleep(300 + randomMs(1000));
      // the session's sshd dies: the client's connection drops at once (no systemd here to keep anything alive)
      await target.exec("pkill -KILL -f 'sshd: root@notty' || true");
      const result = await run.result;
      expect(result.stderr).toContain("connection lost");
      const host = await truth(target);
      if (fails) {
        expect(result.code).toBe(EXIT_CODES.activate);
        expect(result.stderr).toContain(`was rolled back to ${old}`);
        expect(host.current).toBe(old);
      } else {
        expect(result.code, result.stderr).toBe(0);
        expect(result.json).toMatchObject({ ok: true, newSystem: next, newGeneration: host.generation });
        expect(host.current).toBe(next);
      }
      expect(host.profileSystem).toBe(host.current);
    }
  });

  it("the network gone for seconds during activation: the true outcome once it is back", async () => {
    await deployed("net base");
    const next = (await buildSystem({ config: config("net next", { breakNetwork: { seconds: 4 } }) })).toplevel;
    const result = await cdktfNixos(["deploy", ...args(), "--toplevel", next, "--json"]);
    const host = await truth(target);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ ok: true, newSystem: next, newGeneration: host.generation });
    expect(host.current).toBe(next);
  });

  itWithoutInit("retries a host that drops connections during the SSH handshake, within --connect-timeout", async () => {
    let accepted = 0;
    const sockets: Socket[] = [];
    const flaky: Server = createServer((socket) => {
      sockets.push(socket);
      if (++accepted <= 2) {
        socket.end("SSH-2.0-OpenSSH_9.2\r\n");
        return;
      }
      const upstream = connect(22, target.address);
      sockets.push(upstream);
      socket.pipe(upstream).pipe(socket);
      socket.on("error", () => upstream.destroy());
      upstream.on("error", () => socket.destroy());
    });
    await new Promise<void>((resolve) => flaky.listen(0, "127.0.0.1", resolve));
    const work = await mkdtemp(join(tmpdir(), "flaky-"));
    try {
      const system = await deployed("flaky");
      const result = await cdktfNixos(["deploy", "--target-host", "root@127.0.0.1", "--target-port", String((flaky.address() as { port: number }).port),
        "--ssh-key", world.clientKeyFile, "--known-hosts", join(work, "known_hosts"), "--accept-new-host-key", "--connect-timeout", "20",
        "--toplevel", system]);
      expect(result.code, result.stderr).toBe(0);
      expect(accepted).toBeGreaterThanOrEqual(3);
    } finally {
      for (const socket of sockets) socket.destroy();
      flaky.close();
      await rm(work, { recursive: true, force: true });
    }
  });

  it("Ctrl-C says what the host is left in, and exits 130", async () => {
    const during = async (phase: RegExp, lite: Record<string, NixValue>) => {
      const system = (await buildSystem({ config: config(`interrupted ${phase.source}`, lite) })).toplevel;
      const run = startCdktfNixos(["deploy", ...args(), "--toplevel", system]);
      await run.waitForStderr(phase);
      run.child.kill("SIGINT");
      return run.result;
    };
    const copying = await during(/^copy$/m, { payload: { paths: 40, sizeKiB: 512, seed: "interrupt" } });
    expect(copying.code).toBe(EXIT_CODES.interrupted);
    expect(copying.stderr).toMatch(/interrupted \(SIGINT\) during copy: the host is unchanged|interrupted \(SIGINT\) during activate/);

    const activating = await during(/^activate: switch$/m, { switchSleep: 2 });
    expect(activating.code).toBe(EXIT_CODES.interrupted);
    expect(activating.stderr).toMatch(/interrupted \(SIGINT\) during activate: (the activation goes on on the host by itself|the host's state is unknown)/);
    await activationsFinished(target);
    const host = await truth(target);
    expect(host.profileSystem).toBe(host.current);
  });

  itWithoutInit("Ctrl-C on a terminal during the live copy bar gives the cursor back", async () => {
    const system = (await buildSystem({ config: config("tty", { payload: { paths: 80, sizeKiB: 1024, seed: "tty" } }) })).toplevel;
    // script(1) runs the CLI on a pseudo-terminal; ^C written to it is turned into SIGINT by the terminal, as a key press is
    const command = [process.execPath, CLI, "deploy", ...args(), "--toplevel", system].map((w) => `'${w}'`).join(" ");
    const terminal = spawn("script", ["-qfec", `exec ${command}`, "/dev/null"], { env: { ...process.env, NIX_CONFIG: "substituters =" } });
    let screen = "";
    terminal.stdout.on("data", (c: Buffer) => (screen += c.toString("utf8")));
    const ended = new Promise<number | null>((resolve) => terminal.on("close", resolve));
    for (let i = 0; i < 600 && !screen.includes("\x1b[?25l"); i++) await sleep(50);
    expect(screen, "the live bar hides the cursor").toContain("\x1b[?25l");
    terminal.stdin.write("\x03");
    expect(await ended).toBe(EXIT_CODES.interrupted);
    const afterHiding = screen.slice(screen.lastIndexOf("\x1b[?25l"));
    expect(afterHiding).toContain("\x1b[?25h");
    expect(afterHiding).toContain("interrupted (SIGINT) during copy: the host is unchanged");
  });

  it("a state read the moment the activation unit starts never takes the script for gone (x20)", async () => {
    // the start command returns once the script runs (systemd-run: once it is exec'd), so the first read races the
    // script's first lines. Read as the follower does, as fast as possible, until the log shows: then the script must be
    // alive or done (before the fix, 1 read in 6 on a systemd host found it "gone")
    const seen: string[] = [];
    for (let i = 0; i < 20; i++) {
      const id = randomBytes(6).toString("hex");
      const plan = planActivation({
        before: { system: "x86_64-linux", nix: true, nixos: true, systemd: kind === "systemd" }, toplevel: "/nix/store/00000000000000000000000000000000-nixos-system-gone",
        action: "dry-activate", user: "root", lockTimeoutSeconds: 30, holder: "race probe", id,
      });
      const probe = await target.exec(`${plan.start}; for j in $(seq 1 500); do o=$(${plan.readState}); case "$o" in *running*) echo "$o"; break;; esac; done`);
      const state = parseActivationState(probe.stdout);
      expect(state.running, probe.stderr).toBe(true);
      if (!state.alive && !state.done) seen.push(probe.stdout);
    }
    await activationsFinished(target);
    expect(seen).toEqual([]);
  });

  if (kind === "systemd") {
    it("runs each activation in a transient unit (journal); a service the activation started runs on under its own unit", async () => {
      const service = (message: string) => ({ ticker: { script: `while true; do echo ${message} > /run/ticker; sleep 0.2; done` } });
      const first = (await buildSystem({ config: { ...config("units 1"), services: { lite: service("one") } } })).toplevel;
      const result = await cdktfNixos(["deploy", ...args(), "--toplevel", first, "--json"]);
      expect(result.code, result.stderr).toBe(0);
      // the journal: systemd ran this activation as its own unit (its output goes to the activation's log file)
      const id = (result.stderr.match(/activation ([0-9a-f]{12})/) ?? (await target.exec("ls -t /run/cdktf-nixos/*.log | head -n 1")).stdout.match(/([0-9a-f]{12})\.log/))![1];
      await activationsFinished(target);
      const unitJournal = await target.exec(`journalctl --no-pager -o cat -u cdktf-nixos-activation-${id}.service`);
      expect(unitJournal.stdout).toMatch(/Started cdktf-nixos-activation-[0-9a-f]{12}\.service - cdktf-nixos activation/);
      expect((await target.exec(`grep -c 'starting service ticker' /run/cdktf-nixos/${id}.log`)).stdout.trim()).toBe("1");
      expect((await target.exec("journalctl --no-pager -o cat -u ticker.service")).stdout).toContain("Started ticker.service - nixpkgs-lite service ticker");
      // the activation's unit is gone (--collect), the service it started is not
      await sleep(500);
      expect((await target.exec("systemctl list-units --all --plain --no-legend 'cdktf-nixos-activation-*' | wc -l")).stdout.trim()).toBe("0");
      expect((await target.exec("systemctl is-active ticker.service; sleep 0.5; cat /run/ticker")).stdout).toBe("active\none\n");
      const pid = (await target.exec("systemctl show -p MainPID --value ticker.service")).stdout.trim();
      expect((await target.exec(`grep ^0:: /proc/${pid}/cgroup`)).stdout.trim()).toMatch(/\/system\.slice\/ticker\.service$/);
    });

    it("a service whose new version fails to start: a failed activation naming the unit and its journal lines; the old system and service run again", async () => {
      const ok = { ...config("units ok"), services: { lite: { web: { script: "while true; do echo old > /run/web; sleep 0.2; done" } } } };
      const good = (await buildSystem({ config: ok })).toplevel;
      expect((await cdktfNixos(["deploy", ...args(), "--toplevel", good])).code).toBe(0);
      const broken = { ...config("units broken"), services: { lite: { web: {
        script: "while true; do echo new > /run/web; sleep 0.2; done",
        preStart: "echo 'web: /etc/web/web.conf: no such file or directory' >&2; exit 78",
      } } } };
      const bad = (await buildSystem({ config: broken })).toplevel;
      const result = await cdktfNixos(["deploy", ...args(), "--toplevel", bad, "--json"]);
      expect(result.code, result.stderr).toBe(EXIT_CODES.activate);
      expect(result.stderr).toContain("exited with code 4 (units failed: web.service); ");
      expect(result.stderr).toContain(`was rolled back to ${good}`);
      expect(result.stderr).toContain("failed units: web.service");
      expect(result.stderr).toContain("web: /etc/web/web.conf: no such file or directory");
      expect(result.json).toMatchObject({ ok: false, error: { failedUnits: [{ name: "web.service", journal: expect.arrayContaining(["web: /etc/web/web.conf: no such file or directory"]) }] } });
      await activationsFinished(target);
      const host = await truth(target);
      expect([host.current, host.profileSystem]).toEqual([good, good]);
      expect((await target.exec("systemctl is-active web.service; sleep 0.5; cat /run/web; systemctl list-units --failed --plain --no-legend | wc -l")).stdout).toBe("active\nold\n0\n");

      // accepted: kept, and the units are still named
      const accepted = await cdktfNixos(["deploy", ...args(), "--toplevel", bad, "--accept-failed-units", "--json"]);
      expect(accepted.code, accepted.stderr).toBe(0);
      expect(accepted.stderr).toContain("warning: kept with failed units (--accept-failed-units)");
      expect(accepted.json).toMatchObject({ ok: true, failedUnits: [{ name: "web.service" }] });
      expect((await truth(target)).current).toBe(bad);
      expect((await target.exec("systemctl is-failed web.service")).stdout.trim()).toBe("failed");
      expect((await cdktfNixos(["deploy", ...args(), "--toplevel", good])).code).toBe(0);
    });

    it("a reboot after 'boot' starts the new system and its services", async () => {
      const next = (await buildSystem({ config: { ...config("after reboot"), services: { lite: { booted: { script: "sleep 1000" } } } } })).toplevel;
      const result = await cdktfNixos(["deploy", ...args(), "--toplevel", next, "--action", "boot"]);
      expect(result.code, result.stderr).toBe(0);
      expect((await truth(target)).current).not.toBe(next);
      await target.restart();
      const host = await truth(target);
      expect([host.current, host.profileSystem, host.bootDefault]).toEqual([next, next, next]);
      expect((await target.exec("systemctl is-active booted.service")).stdout.trim()).toBe("active");
    });
  }

  it("prunes the state files of activations finished over a week ago, and keeps the rest", async () => {
    await target.exec("mkdir -p /run/cdktf-nixos && cd /run/cdktf-nixos && touch 0ld0ld0ld0ld.log 0ld0ld0ld0ld.done " +
      "recent00000.log recent00000.done && mkdir 0ld0ld0ld0ld.decided && " +
      "touch -d '10 days ago' 0ld0ld0ld0ld.log 0ld0ld0ld0ld.done 0ld0ld0ld0ld.decided");
    await deployed("prune");
    const left = (await target.exec("ls /run/cdktf-nixos")).stdout.split("\n");
    await target.exec("rm -f /run/cdktf-nixos/recent00000.*");
    expect(left.filter((f) => f.startsWith("0ld0ld0ld0ld"))).toEqual([]);
    expect(left).toEqual(expect.arrayContaining(["recent00000.log", "recent00000.done", "lock"]));
  });

  it("--no-rollback leaves a failed activation in place and says so, never 'rolled back'", async () => {
    await deployed("no rollback base");
    const failing = (await buildSystem({ config: config("no rollback failing", { failActivation: true }) })).toplevel;
    const result = await cdktfNixos(["deploy", ...args(), "--toplevel", failing, "--no-rollback", "--json"]);
    expect(result.code).toBe(EXIT_CODES.activate);
    expect(result.stderr).toContain("was left as it is (--no-rollback)");
    expect(result.stderr).not.toContain("rolled back");
    const host = await truth(target);
    // lite.failActivation: activation completes, then switch-to-configuration exits 2, so the host runs it
    expect([host.current, host.profileSystem, host.bootDefault]).toEqual([failing, failing, failing]);
    expect(result.json).toMatchObject({ ok: false, hostState: { currentSystem: failing, profileGeneration: host.generation } });
  });

  itWithoutInit("a connection cut during the copy is a copy failure that says so, and a rerun completes", async () => {
    const system = await buildSystem({ config: config("copy cut", { payload: { paths: 80, sizeKiB: 1024, seed: "copy-cut" } }) });
    const run = startCdktfNixos(["deploy", ...args(), "--toplevel", system.toplevel]);
    await run.waitForStderr(/^copy$/m);
    // 80 MiB take a second or more here; the cut comes well within it
    await sleep(100 + randomMs(200));
    await target.exec("pkill -KILL -f 'sshd: root@notty' || true");
    const result = await run.result;
    expect(result.code, result.stderr).toBe(EXIT_CODES.copy);
    expect(result.stderr).toMatch(/the connection to (the target|root@\S+) was lost/);
    expect(result.stderr).not.toContain("code null");
    const rerun = await cdktfNixos(["deploy", ...args(), "--toplevel", system.toplevel]);
    expect(rerun.code, rerun.stderr).toBe(0);
  });

  // last: the target stays unreachable for a while afterwards
  it("magic rollback with a host that stays unreachable: the process exits within a stated bound, the host rolls itself back", async () => {
    const good = await deployed("confirm base");
    const cutting = (await buildSystem({ config: config("confirm cut", { breakNetwork: { seconds: 45 } }) })).toplevel;
    const run = startCdktfNixos(["deploy", ...args(), "--toplevel", cutting, "--confirm-timeout", "3"]);
    await run.waitForStderr(/^activate: switch$/m);
    const activating = Date.now();
    const result = await run.result;
    const exitedAfterMs = Date.now() - activating;
    expect(result.code).toBe(EXIT_CODES.confirm);
    expect(result.stderr).toContain(`it rolls itself back to ${good}`);
    // the README's bound: confirm timeout + one read bounded by it + reconnecting for 80 % of it + 1 s socket grace,
    // here 3 + 3 + 2.4 + 1 = 9.4 s, plus slack for a loaded machine; the host stays unreachable for 45 s
    expect(exitedAfterMs).toBeLessThan(20_000);
    await activationsFinished(target);
    const host = await truth(target);
    expect(host.current).toBe(good);
    expect(host.profileSystem).toBe(good);
  });
});
