import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { cdktfNixos as cli } from "../harness/cli";
import { NIXPKGS_LITE, buildSystem, closureOf, writeConfiguration, writeFlake, type NixValue } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { startTargets, type TargetHost, type TargetKind, type TargetWorld } from "../harness/target-hosts";

function webConfig(extra: Record<string, NixValue> = {}): Record<string, NixValue> {
  return { networking: { hostName: "web" }, environment: { etc: { motd: { text: "v1" } } }, ...extra };
}

const KINDS: TargetKind[] = ["namespace", "systemd"];

// What activates runs against both kinds of target; what no init changes (the copy, host keys, the login) against the
// namespace target only.
describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets")).each(KINDS)("cdktf-nixos deploy against a %s target", (kind) => {
  let world: TargetWorld;
  let target: TargetHost;
  let work: string;
  const sshArgs = () => ["--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", world.knownHostsFile];
  const valid = async (path: string) => (await target.exec(`nix-store --check-validity ${path}`)).exitCode === 0;

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    world = await startTargets(1, {
      kind,
      users: [{ name: "deployer", sudo: true }, { name: "stranger" }, { name: "untrusted", sudo: true }],
      nixDaemon: true,
      trustedUsers: ["deployer"],
    });
    target = world.hosts[0];
    work = await mkdtemp(join(tmpdir(), "deploy-world-"));
  });
  const itWithoutInit: typeof it = ((...a: Parameters<typeof it>) => (kind === "namespace" ? it(...a) : undefined)) as typeof it;
  afterAll(async () => {
    await world?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("switches a fresh target, then a redeploy copies nothing", async () => {
    const system = await buildSystem({ config: webConfig({ lite: { payload: { paths: 5, sizeKiB: 256 } } }) });
    const closure = await closureOf(system.toplevel);
    expect(await valid(system.toplevel)).toBe(false);

    const first = await cli(["deploy", ...sshArgs(), "--toplevel", system.toplevel, "--json"]);
    expect(first.stderr).toContain("activate: switch");
    expect(first.code).toBe(0);
    expect(first.json).toMatchObject({
      host: `root@${target.address}:22`, action: "switch", pathsCopied: closure.length, pathsInClosure: closure.length,
      newSystem: system.toplevel, newGeneration: 1,
    });
    expect(first.json!.bytesSent as number).toBeGreaterThan(5 * 256 * 1024);
    expect(await valid(system.toplevel)).toBe(true);
    const verify = await target.exec("nix-store --verify --check-contents 2>&1");
    expect(verify.exitCode).toBe(0);
    expect(verify.stdout).not.toMatch(/error|modified|corrupt/i);
    expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(system.toplevel);
    expect((await target.exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("v1");

    const again = await cli(["deploy", ...sshArgs(), "--toplevel", system.toplevel, "--json"]);
    expect(again.code).toBe(0);
    expect(again.json).toMatchObject({ pathsCopied: 0, bytesSent: 0, previousSystem: system.toplevel, newSystem: system.toplevel });
  });

  itWithoutInit("copies only the changed paths of an incremental change, built from --config", async () => {
    const dir = join(work, "incremental");
    // unique to this run, so Nix really builds (and says so) even where an earlier run left the result in the store
    const run = randomBytes(4).toString("hex");
    const config = await writeConfiguration(dir, { config: webConfig({ lite: { payload: { paths: 5, sizeKiB: 256, touch: `1-${run}` } } }) });
    const first = await cli(["deploy", ...sshArgs(), "--config", config, "-I", `nixpkgs=${NIXPKGS_LITE}`, "--json"]);
    expect(first.code, first.stderr).toBe(0);
    // the build is not silent: what Nix builds, and how many of how many
    expect(first.stderr).toMatch(/^build: nixos-system-web-[\w.-]+ \((\d+) of \1\)$/m);
    await writeConfiguration(dir, { config: webConfig({ lite: { payload: { paths: 5, sizeKiB: 256, touch: `2-${run}` } } }) });
    const second = await cli(["deploy", ...sshArgs(), "--config", config, "-I", `nixpkgs=${NIXPKGS_LITE}`, "--json"]);
    expect(second.code, second.stderr).toBe(0);
    // the touched payload path, and everything that refers to it up to the toplevel; not the 4 other payloads
    expect(second.json!.pathsCopied as number).toBeGreaterThan(0);
    expect(second.json!.pathsCopied as number).toBeLessThan((second.json!.pathsInClosure as number) - 4);
    expect(second.json!.bytesSent as number).toBeLessThan(2 * 256 * 1024);
    expect(second.json!.newGeneration).toBe((first.json!.newGeneration as number) + 1);
  });

  it("gives boot, test and dry-activate nixos-rebuild's meaning", async () => {
    const running = (await target.exec("readlink /run/current-system")).stdout.trim();
    const generation = () => target.exec("readlink /nix/var/nix/profiles/system").then((r) => r.stdout.trim());
    const before = await generation();

    const dry = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "dry" } } } }) });
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", dry.toplevel, "--action", "dry-activate"])).code).toBe(0);
    expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(running);
    expect(await generation()).toBe(before);

    const boot = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "boot" } } } }) });
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", boot.toplevel, "--action", "boot"])).code).toBe(0);
    expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(running);
    expect((await target.exec("readlink -f /nix/var/nix/profiles/system")).stdout.trim()).toBe(boot.toplevel);
    expect((await target.exec("cat /nix/var/nixos-lite/boot-default")).stdout.trim()).toBe(boot.toplevel);

    const test = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "test" } } } }) });
    const bootGeneration = await generation();
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", test.toplevel, "--action", "test"])).code).toBe(0);
    expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(test.toplevel);
    expect(await generation()).toBe(bootGeneration);
  });

  it("rolls back to the running system when activation fails", async () => {
    const good = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "good" } } } }) });
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", good.toplevel])).code).toBe(0);
    const goodGeneration = (await target.exec("readlink /nix/var/nix/profiles/system")).stdout.trim();

    const bad = await buildSystem({ config: webConfig({ lite: { failActivation: true } }) });
    const result = await cli(["deploy", ...sshArgs(), "--toplevel", bad.toplevel]);
    expect(result.code, result.stderr).toBe(EXIT_CODES.activate);
    expect(result.stderr).toContain(`was rolled back to ${good.toplevel}`);
    expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(good.toplevel);
    expect((await target.exec("readlink /nix/var/nix/profiles/system")).stdout.trim()).toBe(goodGeneration);
    expect((await target.exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("good");
  });

  itWithoutInit("refuses a host whose key is not the one in known_hosts, before running anything", async () => {
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "impostor" } } } }) });
    const otherKey = join(work, "other-host-key");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
    const forged = join(work, "forged_known_hosts");
    const [type, key] = (await readFile(`${otherKey}.pub`, "utf8")).split(" ");
    await writeFile(forged, `${target.address} ${type} ${key}\n`);
    const result = await cli(["deploy", "--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", forged, "--toplevel", system.toplevel]);
    expect(result.code).toBe(EXIT_CODES.connect);
    expect(result.stderr).toContain("HOST KEY MISMATCH");
    expect(result.stderr).toContain("Nothing was run on it");
    expect(await valid(system.toplevel)).toBe(false);
  });

  itWithoutInit("refuses an unknown host unless --accept-new-host-key, which records it", async () => {
    const system = await buildSystem({ config: webConfig() });
    const empty = join(work, "empty_known_hosts");
    const args = ["deploy", "--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", empty,
      "--toplevel", system.toplevel, "--action", "dry-activate"];
    const refused = await cli(args);
    expect(refused.code).toBe(EXIT_CODES.connect);
    expect(refused.stderr).toContain(`is not in ${empty}`);
    expect(refused.stderr).toContain("--accept-new-host-key");

    expect((await cli([...args, "--accept-new-host-key"])).code).toBe(0);
    const recorded = execFileSync("ssh-keygen", ["-F", target.address, "-f", empty], { encoding: "utf8" });
    expect(recorded).toContain(target.hostKey);
    expect((await cli(args)).code).toBe(0);
  });

  it("deploys as a trusted non-root user through sudo", async () => {
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "sudo" } } } }) });
    const result = await cli(["deploy", "--target-host", `deployer@${target.address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", world.knownHostsFile, "--toplevel", system.toplevel, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(system.toplevel);
  });

  itWithoutInit("explains the signature error for a user the target's Nix does not trust, and changes nothing", async () => {
    // NARs larger than the SSH window: the server gives up while we are still sending, and the CLI must still end
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "untrusted" } } }, lite: { payload: { paths: 3, sizeKiB: 4096 } } }) });
    // may run sudo (checked before the copy), but is not in the target's trusted-users
    const result = await cli(["deploy", "--target-host", `untrusted@${target.address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", world.knownHostsFile, "--toplevel", system.toplevel]);
    expect(result.code, result.stderr).toBe(EXIT_CODES.copy);
    expect(result.stderr).toContain("lacks a valid signature");
    expect(result.stderr).toContain("trusted-users");
    expect(await valid(system.toplevel)).toBe(false);
  });

  itWithoutInit("says so when the login shell prints text before nix-store answers", async () => {
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "chatty" } } } }) });
    await target.exec("echo 'echo Welcome to target1' > /root/.bashrc");
    try {
      const result = await cli(["deploy", ...sshArgs(), "--toplevel", system.toplevel]);
      expect(result.code).toBe(EXIT_CODES.copy);
      expect(result.stderr).toContain("the remote shell printed 'Welcome to target1' before nix-store answered");
    } finally {
      await target.exec("rm -f /root/.bashrc");
    }
  });

  it("puts keys outside the store as the spec says, through sudo too; a missing user stops it before activation (exit 11)", async () => {
    const secret = join(work, "db-password");
    await writeFile(secret, "s3cret-db\n", { mode: 0o600 });
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "keys" } } } }) });
    const spec = JSON.stringify({ name: "db", file: secret, user: "stranger", group: "stranger", permissions: "0440", destDir: "/run/keys/app" });
    // as NixOS has it (and colmena documents): /run/keys is root:keys 0750, a service user reads its keys through the
    // keys group (SupplementaryGroups=keys)
    await target.exec("grep -q '^keys:' /etc/group || echo 'keys:x:2999:stranger' >> /etc/group; install -d -m 0750 -o root -g keys /run/keys");
    const after = JSON.stringify({ name: "late", file: secret, user: "stranger", permissions: "0400", uploadAt: "after-activation" });
    const result = await cli(["deploy", "--target-host", `deployer@${target.address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", world.knownHostsFile, "--toplevel", system.toplevel, "--key", `token=${secret}`, "--key-spec", spec, "--key-spec", after, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await target.exec("stat -c '%a %U %G' /run/keys/token /run/keys/app /run/keys/app/db /run/keys/late; cat /run/keys/app/db")).stdout)
      .toBe("400 root root\n750 root root\n440 stranger stranger\n400 stranger root\ns3cret-db\n");
    // the service user reads its key after activation (as a service running as it would)
    expect((await target.exec("su -s /bin/sh stranger -c 'cat /run/keys/late'")).stdout).toBe("s3cret-db\n");
    // no temporary file left beside the keys, and the content is in no report
    expect((await target.exec("ls -A /run/keys/app")).stdout).toBe("db\n");
    expect(result.stdout + result.stderr).not.toContain("s3cret-db");
    expect(result.stderr).toMatch(/^key db → \/run\/keys\/app\/db \(sha256:[0-9a-f]{64}\)$/m);

    const generation = (await target.exec("readlink /nix/var/nix/profiles/system")).stdout;
    const next = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "keys 2" } } } }) });
    const missing = await cli(["deploy", ...sshArgs(), "--toplevel", next.toplevel, "--key-spec", JSON.stringify({ name: "x", file: secret, user: "cdktf-nixos-nobody" })]);
    expect(missing.code).toBe(EXIT_CODES.keys);
    expect(missing.stderr).toContain(`keys failed: root@${target.address}:22 has no user cdktf-nixos-nobody (for key x) before activation; no key was written`);
    expect((await target.exec("readlink /nix/var/nix/profiles/system")).stdout).toBe(generation);
    expect((await target.exec("test -e /run/keys/x || echo absent")).stdout).toBe("absent\n");
  });

  itWithoutInit("never writes a key into a directory or through a symbolic link (a secret in the system's store path); a host without flock or getent is named so", async () => {
    const secret = join(work, "db-password");
    await writeFile(secret, "s3cret-db\n", { mode: 0o600 });
    const base = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "keys base" } } } }) });
    expect((await cli(["deploy", ...sshArgs(), "--toplevel", base.toplevel])).code).toBe(0);
    const running = (await target.exec("readlink -f /run/current-system")).stdout.trim();
    expect(running).toBe(base.toplevel);
    const generation = (await target.exec("readlink /nix/var/nix/profiles/system")).stdout;
    await target.exec("mkdir -p /run/keys/adir && ln -sfn /run/current-system /run/keys/sys");
    const next = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "keys refused" } } } }) });
    for (const name of ["adir", "sys"]) {
      const refused = await cli(["deploy", ...sshArgs(), "--toplevel", next.toplevel, "--key", `${name}=${secret}`]);
      expect(refused.code, refused.stderr).toBe(EXIT_CODES.keys);
      expect(refused.stderr).toContain(`keys failed: /run/keys/${name} on root@${target.address}:22 is a symbolic link or a directory, not a key file: key "${name}" was not written there`);
    }
    expect((await target.exec(`ls -A /run/keys/adir; test -e ${running}/sys || echo not-in-store; nix-store --verify-path ${running} && echo verified`)).stdout)
      .toBe("not-in-store\nverified\n");
    expect((await target.exec("readlink /nix/var/nix/profiles/system")).stdout).toBe(generation);
    await target.exec("rm -r /run/keys/adir /run/keys/sys");

    // tools the host lacks (hidden in the target's own mount namespace) are named, not mistaken for a lock or users
    await target.exec("mount --bind /dev/null /usr/bin/getent");
    try {
      const noGetent = await cli(["deploy", ...sshArgs(), "--toplevel", next.toplevel, "--key", `token=${secret}`]);
      expect(noGetent.code, noGetent.stderr).toBe(EXIT_CODES.keys);
      expect(noGetent.stderr).toContain(`keys failed: root@${target.address}:22 has no getent command, which the key upload needs to check users and groups before activation; no key was written`);
    } finally {
      await target.exec("umount /usr/bin/getent");
    }
    await target.exec("mount --bind /dev/null /usr/bin/flock");
    try {
      const noFlock = await cli(["deploy", ...sshArgs(), "--toplevel", next.toplevel]);
      expect(noFlock.code, noFlock.stderr).toBe(EXIT_CODES.lock);
      expect(noFlock.stderr).toContain(`lock failed: root@${target.address}:22 has no flock command, which the deployment lock needs; nothing was changed`);
      expect(noFlock.stderr).not.toContain("locked by another deployment");
    } finally {
      await target.exec("umount /usr/bin/flock");
    }
    expect((await target.exec("readlink -f /run/current-system")).stdout.trim()).toBe(running);
    expect((await target.exec("readlink /nix/var/nix/profiles/system")).stdout).toBe(generation);
  });

  itWithoutInit("a known_hosts file with only another type of key for the host says so (not 'no matching host key format')", async () => {
    const rsa = join(work, "other_rsa");
    execFileSync("ssh-keygen", ["-q", "-t", "rsa", "-b", "2048", "-N", "", "-f", rsa]);
    const knownHosts = join(work, "known_hosts_rsa_only");
    await writeFile(knownHosts, `${target.address} ${(await readFile(`${rsa}.pub`, "utf8")).split(" ").slice(0, 2).join(" ")}\n`);
    const result = await cli(["deploy", "--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", knownHosts,
      "--toplevel", (await buildSystem({ config: webConfig() })).toplevel]);
    expect(result.code, result.stderr).toBe(EXIT_CODES.connect);
    expect(result.stderr).toContain(`connect failed: root@${target.address}:22 offers no host key of the type ${knownHosts} has for it (ssh-rsa)`);
    expect(result.stderr).toContain(`ssh-keygen -R ${target.address} -f ${knownHosts}`);
  });

  itWithoutInit("builds on the target with --build-on-target, and deploys a flake", async () => {
    const dir = join(work, "flake");
    await writeFlake(dir, { config: webConfig({ environment: { etc: { motd: { text: "flake" } } } }), name: "web" });
    // evaluated as synth and push evaluate it (builtins.getFlake), which never writes the user's flake.lock
    const unlocked = await cli(["deploy", ...sshArgs(), "--flake", `path:${dir}#web`]);
    expect(unlocked.code).toBe(EXIT_CODES.evaluate);
    expect(unlocked.stderr).toContain(`hint: the flake's flake.lock is missing or out of date: lock it (nix flake lock path:${dir}), commit it, and deploy again`);
    expect(existsSync(join(dir, "flake.lock"))).toBe(false);
    execFileSync("nix", ["--extra-experimental-features", "nix-command flakes", "flake", "lock", `path:${dir}`], { stdio: "ignore" });
    const flake = await cli(["deploy", ...sshArgs(), "--flake", `path:${dir}#web`, "--json"]);
    expect(flake.code, flake.stderr).toBe(0);
    const typo = await cli(["deploy", ...sshArgs(), "--flake", `path:${dir}#wbe`]);
    expect(typo.code).toBe(EXIT_CODES.evaluate);
    expect(typo.stderr).toContain(`evaluate failed: flake path:${dir} has no nixosConfigurations.wbe; it has nixosConfigurations web`);
    expect(typo.stderr).toContain(`hint: deploy one of them, e.g. --flake path:${dir}#web`);
    expect((await target.exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("flake");

    const config = await writeConfiguration(join(work, "remote-build"), {
      config: webConfig({ environment: { etc: { motd: { text: "built there" } } } }),
    });
    const remote = await cli(["deploy", ...sshArgs(), "--config", config, "-I", `nixpkgs=${NIXPKGS_LITE}`, "--build-on-target", "--json"]);
    expect(remote.code, remote.stderr).toBe(0);
    const top = remote.json!.newSystem as string;
    // built there: the local store never had the output
    expect(execFileSyncStatus("nix-store", ["--check-validity", top])).not.toBe(0);
    expect((await target.exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("built there");
  });
});

function execFileSyncStatus(command: string, args: string[]): number {
  try {
    execFileSync(command, args, { stdio: "ignore" });
    return 0;
  } catch (err) {
    return (err as { status: number }).status;
  }
}

describe.skipIf(missing("root", "nix", "sshd", "netns"))("cdktf-nixos deploy through a jump host, and compressed", () => {
  let world: TargetWorld;
  let work: string;

  beforeAll(async () => {
    world = await startTargets(1);
    work = await mkdtemp(join(tmpdir(), "deploy-jump-"));
  });
  afterAll(async () => {
    await world?.stop();
    if (work) await rm(work, { recursive: true, force: true });
  });

  it("reaches the host through the bastion's forwarding, checking both host keys", async () => {
    const bastion = world.hosts[0];
    // The bastion forwards to its own loopback: the second SSH handshake is to 127.0.0.1 as the bastion sees it.
    const knownHosts = join(work, "known_hosts");
    await writeFile(knownHosts, `${bastion.address} ${bastion.hostKey}\n127.0.0.1 ${bastion.hostKey}\n`);
    // A second sshd on the bastion's loopback stands in for a host only the bastion can reach.
    const inner = ["ListenAddress 127.0.0.1:22", `HostKey ${bastion.hostPrivateKeyFile}`, "PidFile none", "PermitRootLogin prohibit-password",
      "AuthorizedKeysFile .ssh/authorized_keys", "PasswordAuthentication no", "UsePAM no"].join("\n");
    const started = await bastion.exec(`printf '%s\\n' '${inner}' > /run/inner_sshd_config && /usr/sbin/sshd -f /run/inner_sshd_config`);
    expect(started.exitCode, started.stderr).toBe(0);
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "via bastion" } } } }) });
    const result = await cli(["deploy", "--target-host", "root@127.0.0.1", "--jump-host", `root@${bastion.address}`,
      "--ssh-key", world.clientKeyFile, "--known-hosts", knownHosts, "--ssh-compression", "--toplevel", system.toplevel, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ host: "root@127.0.0.1:22", newSystem: system.toplevel });
    expect((await bastion.exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("via bastion");

    await writeFile(knownHosts, `127.0.0.1 ${bastion.hostKey}\n`);
    const unknownBastion = await cli(["deploy", "--target-host", "root@127.0.0.1", "--jump-host", `root@${bastion.address}`,
      "--ssh-key", world.clientKeyFile, "--known-hosts", knownHosts, "--toplevel", system.toplevel]);
    expect(unknownBastion.code).toBe(EXIT_CODES.connect);
    expect(unknownBastion.stderr).toContain(`root@${bastion.address}:22 is not in ${knownHosts}`);
  });

  it("copies over a zlib-compressed SSH connection (--ssh-compression)", async () => {
    const target = world.hosts[0];
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "compressed" } } }, lite: { payload: { paths: 3, sizeKiB: 512 } } }) });
    const result = await cli(["deploy", "--target-host", `root@${target.address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", world.knownHostsFile, "--ssh-compression", "--toplevel", system.toplevel, "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect((await target.exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("compressed");
  });
});

describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets")).each(KINDS)("cdktf-nixos deploy --confirm-timeout (magic rollback) on a %s target", (kind) => {
  let world: TargetWorld;
  const args = () => ["--target-host", `root@${world.hosts[0].address}`, "--ssh-key", world.clientKeyFile, "--known-hosts", world.knownHostsFile];
  const running = async () => (await world.hosts[0].exec("readlink /run/current-system")).stdout.trim();

  beforeAll(async () => {
    world = await startTargets(1, { kind });
  });
  afterAll(() => world?.stop());

  it("confirms a system that keeps SSH working", async () => {
    const system = await buildSystem({ config: webConfig({ environment: { etc: { motd: { text: "confirmed" } } } }) });
    const result = await cli(["deploy", ...args(), "--toplevel", system.toplevel, "--confirm-timeout", "10", "--json"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ newSystem: system.toplevel, newGeneration: 1 });
    expect(await running()).toBe(system.toplevel);
  });

  it("lets the host roll itself back when the new system cuts the network", async () => {
    const good = await running();
    const goodGeneration = (await world.hosts[0].exec("readlink /nix/var/nix/profiles/system")).stdout.trim();
    const cutting = await buildSystem({ config: webConfig({ lite: { breakNetwork: { seconds: 8 } } }) });
    const result = await cli(["deploy", ...args(), "--toplevel", cutting.toplevel, "--confirm-timeout", "3"]);
    expect(result.code).toBe(EXIT_CODES.confirm);
    expect(result.stderr).toContain("did not take a new SSH connection after 'switch'");
    expect(result.stderr).toContain(`it rolls itself back to ${good}`);
    // the target rolled back on its own, while nobody could reach it
    for (let i = 0; i < 50 && (await world.hosts[0].exec("ls /run/cdktf-nixos/*.rolled-back 2>/dev/null")).stdout === ""; i++) {
      await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(await running()).toBe(good);
    expect((await world.hosts[0].exec("readlink /nix/var/nix/profiles/system")).stdout.trim()).toBe(goodGeneration);
    expect((await world.hosts[0].exec("cat /run/cdktf-nixos/*.log")).stdout).toContain("no confirmation within 3 s: rolling back");
  });
});
