import { readdir, readFile, rm, writeFile } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSystem } from "./fixture";
import { missing } from "./requirements";
import { cleanupStaleTargets, leftoverTargets, run, startTargets, STATE_DIR, type TargetKind, type TargetWorld } from "./target-hosts";

const ssh = (world: TargetWorld, destination: string, command: string, extra: string[] = []) =>
  run("ssh", ["-F", world.sshConfigFile, ...extra, destination, command], { check: false });

const copyClosure = (world: TargetWorld, destination: string, path: string) =>
  run("nix-copy-closure", ["--to", destination, path], { env: { NIX_SSHOPTS: `-F ${world.sshConfigFile}` }, check: false });

const KINDS: TargetKind[] = ["namespace", "systemd"];

describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets"))("target hosts", () => {
  let toplevel: string;

  beforeAll(async () => {
    ({ toplevel } = await buildSystem({ config: { networking: { hostName: "stores" } } }));
  });

  describe.each(KINDS)("two %s hosts", (kind) => {
    let world: TargetWorld;
    beforeAll(async () => {
      world = await startTargets(2, { kind });
    });
    afterAll(async () => {
      await world?.stop();
    });

    it("have separate stores", async () => {
      const [t1, t2] = world.hosts as [typeof world.hosts[0], typeof world.hosts[0]];
      expect(t1.storeDir).not.toBe(t2.storeDir);
      expect((await copyClosure(world, `root@${t1.name}`, toplevel)).exitCode).toBe(0);
      expect((await t1.exec(`nix-store --check-validity ${toplevel}`)).exitCode).toBe(0);
      expect((await t2.exec(`nix-store --check-validity ${toplevel}`)).exitCode).not.toBe(0);
      await expect(readFile(`${t1.storeDir}/store/${toplevel.slice("/nix/store/".length)}/nixos-version`, "utf8")).resolves.toMatch(/lite/);
      // the targets' bind mounts live only in their own mount namespaces; a systemd target's overlay root is the
      // one mount of ours the machine sees
      const ours = (await readFile("/proc/self/mountinfo", "utf8")).split("\n").filter((l) => l.includes(STATE_DIR)).map((l) => l.split(" ")[4]);
      expect(ours.sort()).toEqual(kind === "systemd" ? world.hosts.map((h) => `${h.storeDir.slice(0, -"/nix".length)}/merged`).sort() : []);
      // the target's /nix is its own store: the topmost /nix mount there is the slot's directory (on a machine whose
      // /nix is a mount point itself, the machine's /nix lies below it)
      const nixMounts = (await t1.exec("grep ' /nix ' /proc/self/mountinfo")).stdout.trim().split("\n");
      const root = nixMounts.at(-1)!.split(" ")[3];
      expect(t1.storeDir.endsWith(root), `${root} is not ${t1.storeDir}`).toBe(true);
    });

    it("serve the host keys they report, under their names and addresses", async () => {
      for (const host of world.hosts) {
        const scan = await run("ssh-keyscan", ["-t", "ed25519", host.address]);
        expect(scan.stdout.trim()).toBe(`${host.address} ${host.hostKey}`);
        const byName = await ssh(world, host.name, "hostname");
        expect(byName).toMatchObject({ exitCode: 0, stdout: `${host.name}\n` });
        const byAddress = await ssh(world, `root@${host.address}`, "true");
        expect(byAddress.exitCode).toBe(0);
      }
      const knownHosts = await readFile(world.knownHostsFile, "utf8");
      expect(knownHosts).toBe(world.hosts.map((h) => `${h.name},${h.address} ${h.hostKey}\n`).join(""));
      expect(world.hosts.map((h) => h.address)).toEqual([...new Set(world.hosts.map((h) => h.address))]);
    });

    it("refuse a connection whose known_hosts entry does not match", async () => {
      const [t1, t2] = world.hosts as [typeof world.hosts[0], typeof world.hosts[0]];
      const wrong = await ssh(world, t1.name, "true", ["-o", `HostKeyAlias=${t2.name}`]);
      expect(wrong.exitCode).toBe(255);
      expect(wrong.stderr).toContain("REMOTE HOST IDENTIFICATION HAS CHANGED");
    });

    it("refuse SSH connections on request (as a booting host does) and take them again", async () => {
      const t1 = world.hosts[0]!;
      const restore = await t1.refuseSsh();
      const refused = await ssh(world, t1.name, "true");
      expect(refused.exitCode).toBe(255);
      expect(refused.stderr).toContain("Connection refused");
      await restore();
      expect((await ssh(world, t1.name, "true")).exitCode).toBe(0);
    });

    it("restart with a fresh /run and the same store", async () => {
      const t1 = world.hosts[0]!;
      await t1.exec("touch /run/marker && echo x > /nix/var/kept");
      const initBefore = (await t1.exec("cat /proc/1/stat")).stdout.split(" ")[21];
      await t1.restart();
      const after = await t1.exec(`test -e /run/marker; echo $?; cat /nix/var/kept; nix-store --check-validity ${toplevel} && echo valid; cat /proc/1/stat`);
      const [markerMissing, kept, valid, stat] = after.stdout.trim().split("\n");
      expect(markerMissing).toBe("1");
      expect(kept).toBe("x");
      expect(valid).toBe("valid");
      expect(stat!.split(" ")[21]).not.toBe(initBefore);
      expect((await ssh(world, t1.name, "true")).exitCode).toBe(0);
    });

    it("show a swapped host key after restart, which the old known_hosts rejects", async () => {
      const t2 = world.hosts[1]!;
      const oldKey = t2.hostKey;
      await rm(t2.hostPrivateKeyFile);
      await rm(`${t2.hostPrivateKeyFile}.pub`);
      await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", t2.hostPrivateKeyFile]);
      await t2.restart();
      expect(t2.hostKey).not.toBe(oldKey);
      const scan = await run("ssh-keyscan", ["-t", "ed25519", t2.address]);
      expect(scan.stdout.trim()).toBe(`${t2.address} ${t2.hostKey}`);
      const refused = await ssh(world, t2.name, "true");
      expect(refused.exitCode).toBe(255);
      expect(refused.stderr).toContain("REMOTE HOST IDENTIFICATION HAS CHANGED");
    });
  });

  describe.each(KINDS)("users and nix-daemon on a %s host", (kind) => {
    let world: TargetWorld;
    beforeAll(async () => {
      world = await startTargets(1, {
        kind,
        users: [{ name: "alice", sudo: true }, { name: "bob" }],
        nixDaemon: true,
        trustedUsers: ["alice"],
      });
    });
    afterAll(async () => {
      await world?.stop();
    });

    it("log in by key; only the sudo user gets root; the machine's passwd is untouched", async () => {
      const alice = await ssh(world, "alice@target1", "id -un; sudo -n id -u");
      expect(alice).toMatchObject({ exitCode: 0, stdout: "alice\n0\n" });
      const bob = await ssh(world, "bob@target1", "id -un; sudo -n true");
      expect(bob.stdout).toBe("bob\n");
      expect(bob.exitCode).not.toBe(0);
      expect(await readFile("/etc/passwd", "utf8")).not.toMatch(/^alice:/m);
    });

    it("let a trusted user import paths through the daemon and reject an untrusted one", async () => {
      const untrusted = await copyClosure(world, "bob@target1", toplevel);
      expect(untrusted.exitCode).not.toBe(0);
      expect(untrusted.stderr).toContain("lacks a valid signature");
      const trusted = await copyClosure(world, "alice@target1", toplevel);
      expect(trusted.exitCode, trusted.stderr).toBe(0);
      const valid = await ssh(world, "alice@target1", `nix-store --check-validity ${toplevel} && echo ok`);
      expect(valid.stdout).toBe("ok\n");
    });
  });

  describe("a systemd host", () => {
    let world: TargetWorld;
    beforeAll(async () => {
      world = await startTargets(1, { kind: "systemd" });
    });
    afterAll(async () => {
      await world?.stop();
    });

    it("runs systemd as PID 1 with sshd and nix-daemon as units, in a cgroup2 tree of its own", async () => {
      const t = world.hosts[0]!;
      const out = await ssh(world, t.name, "cat /proc/1/comm; systemctl is-system-running; systemctl is-active ssh nix-daemon; " +
        "stat -fc %T /sys/fs/cgroup; grep ^0:: /proc/self/cgroup; test -d /run/systemd/system && echo booted");
      expect(out.stderr).toBe("");
      const lines = out.stdout.trim().split("\n");
      expect(lines.slice(0, 5)).toEqual(["systemd", "running", "active", "active", "cgroup2fs"]);
      expect(lines[5]).toMatch(/^0::\/user\.slice\/|^0::\/system\.slice\/ssh\.service/);
      expect(lines[6]).toBe("booted");
      // a transient unit runs, and what it starts ends with it (KillMode=control-group)
      const transient = await ssh(world, t.name, "systemd-run --quiet --unit=harness-probe --collect --service-type=exec sh -c 'sleep 300 & sleep 0.5'; " +
        "sleep 1.5; pgrep -f '^sleep 300$' || echo gone");
      expect(transient.stdout.trim()).toBe("gone");
    });

    it("reboots with its store and a fresh /run", async () => {
      const t = world.hosts[0]!;
      const bootBefore = (await t.exec("cat /proc/sys/kernel/random/boot_id; cat /proc/1/stat")).stdout.split("\n")[1]!.split(" ")[21];
      await t.exec("echo kept > /nix/var/kept; touch /run/marker");
      await t.restart();
      const after = await ssh(world, t.name, "cat /nix/var/kept; test -e /run/marker && echo marker; cat /proc/1/comm; systemctl is-system-running");
      expect(after.stdout).toBe("kept\nsystemd\nrunning\n");
      expect((await t.exec("cat /proc/1/stat")).stdout.split(" ")[21]).not.toBe(bootBefore);
    });
  });

  it("start concurrent worlds on distinct slots, and stop() leaves nothing behind", async () => {
    const [a, b] = await Promise.all([startTargets(1), startTargets(2, { kind: ["systemd", "namespace"] })]);
    const slots = [...a.hosts, ...b.hosts].map((h) => h.storeDir.split("/").at(-2)!);
    try {
      const addresses = [...a.hosts, ...b.hosts].map((h) => h.address);
      expect(new Set(addresses).size).toBe(3);
      expect((await ssh(b, "target2", "hostname")).stdout).toBe("target2\n");
    } finally {
      await Promise.all([a.stop(), b.stop()]);
      await a.stop();
    }
    expect(await leftoverTargets([process.pid])).toEqual([]);
    // only this test's namespaces: another world (a benchmark, a second suite) may be running beside it
    const netns = (await run("ip", ["netns", "list"])).stdout;
    for (const slot of slots) expect(netns).not.toMatch(new RegExp(`^cdktfnx-s${slot}\\b`, "m"));
  });

  it("cleanupStaleTargets removes a crashed run's world and leaves live ones alone", async () => {
    const live = await startTargets(1);
    const crashed = await startTargets(1, { kind: "systemd" });
    try {
      // what a killed test process leaves: its owner stamp no longer matches a live process
      const slot = crashed.hosts[0]!.storeDir.split("/").at(-2)!;
      await writeFile(`${STATE_DIR}/slots/${slot}/owner`, "999999999 0\n");
      for (const w of await readdir(`${STATE_DIR}/worlds`)) {
        if (crashed.sshConfigFile.includes(`/${w}/`)) await writeFile(`${STATE_DIR}/worlds/${w}/owner`, "999999999 0\n");
      }
      const cleaned = await cleanupStaleTargets();
      expect(cleaned).toEqual(expect.arrayContaining([`slot ${slot}`]));
      expect(cleaned.some((c) => c.startsWith("world "))).toBe(true);
      expect((await ssh(live, "target1", "true")).exitCode).toBe(0);
      expect((await run("ip", ["netns", "list"])).stdout).not.toContain(`cdktfnx-s${slot}`);
    } finally {
      await crashed.stop();
      await live.stop();
    }
    expect(await leftoverTargets([process.pid])).toEqual([]);
  });
});
