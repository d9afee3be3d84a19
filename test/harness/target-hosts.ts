import { spawn, type ChildProcess } from "node:child_process";
import { closeSync, openSync, readFileSync, statSync } from "node:fs";
import { chmod, chown, copyFile, mkdir, mkdtemp, readFile, readdir, rm, writeFile } from "node:fs/promises";
import {
  type ExecResult, NAME_PREFIX, SYS_ENV, exitedOrKilled, refuseSshOn, createNetwork, hostVethName, listDir, netnsName, readFileOr, removeNetwork, run, sleep, sshBanner,
  targetAddress, tryKill, withTrailingNewline,
} from "./host-util";
import { SystemdTarget, stopStaleSystemdTarget, systemdCgroupSlots } from "./systemd-target";

export { NAME_PREFIX, run, type ExecResult };

/**
 * Throwaway "remote NixOS hosts" on this machine: each target is its own network namespace (a veth in
 * 10.233.0.0/24, one /30 per slot), its own mount namespace (/nix, /root, /etc/nix, /home and a few /etc files are
 * per-target bind mounts, /run is a fresh tmpfs per boot), its own PID and UTS namespaces, and a real OpenSSH sshd
 * as PID 1 with its own host key. Everything lives under STATE_DIR, named with NAME_PREFIX, so leftovers of a
 * crashed run are recognisable (see cleanupStaleTargets).
 */

/**
 * `namespace`: sshd as PID 1 of namespaces over the machine's own root (fast, no init); `systemd`: a real systemd as
 * PID 1 in a container booted from a Debian root filesystem (systemd-target.ts).
 */
export type TargetKind = "namespace" | "systemd";

export interface TargetHostOptions {
  /** What kind of host each target is; a list gives one kind per target, in order. @default "namespace" */
  kind?: TargetKind | readonly TargetKind[];
  /** Extra login users, visible only inside the targets; `sudo: true` gives passwordless sudo. */
  users?: { name: string; sudo?: boolean }[];
  /** Start nix-daemon so non-root users reach the store (multi-user store, like NixOS). */
  nixDaemon?: boolean;
  /** Added to `trusted-users` in every target's nix.conf (root is always trusted). */
  trustedUsers?: string[];
  /** More public keys root accepts, like the key pair an EC2 instance is launched with. */
  authorizedKeys?: string[];
  /** sshd's MaxSessions: channels one connection may have open at once. @default 100 */
  maxSessions?: number;
}


export interface TargetHost {
  readonly kind: TargetKind;
  readonly name: string;
  readonly address: string;
  readonly port: number;
  /** `ssh-ed25519 AAAA...` of the key sshd serves now (re-read on restart, so a swapped key shows here). */
  readonly hostKey: string;
  readonly hostPrivateKeyFile: string;
  /** Machine-side directory mounted as the target's /nix. */
  readonly storeDir: string;
  /** Runs `sh -c command` inside the target's namespaces as root, without ssh: for setup and assertions. */
  exec(command: string): Promise<ExecResult>;
  /**
   * Stops the target and boots it again: fresh /run (no /run/current-system, no services), same store and keys. With
   * `bootDefault`, the boot brings up the boot loader's default system as NixOS's stage 2 does
   * (/run/current-system → nixpkgs-lite's boot default), without starting its services.
   */
  restart(options?: { bootDefault?: boolean }): Promise<void>;
  /**
   * Makes the host refuse SSH connections (sshd, told by SIGHUP, listens on another port: a connection is refused at
   * once, as to a host still booting) until the returned function puts sshd back on its port and waits for its banner.
   */
  refuseSsh(): Promise<() => Promise<void>>;
}

export interface TargetWorld {
  readonly hosts: TargetHost[];
  readonly clientKeyFile: string;
  readonly clientPublicKey: string;
  /** Plain known_hosts entries `target1,10.233.0.2 ssh-ed25519 ...`, written at start (not updated on key swaps). */
  readonly knownHostsFile: string;
  /** `Host targetN` blocks plus defaults (User root, the client key, knownHostsFile, StrictHostKeyChecking yes). */
  readonly sshConfigFile: string;
  stop(): Promise<void>;
}

export const STATE_DIR = "/tmp/cdktf-nixos-targets";
/** Where the deploy engine keeps a host's records (LAST_ACTIVATION_DIR): a mount point on this machine, per target. */
const TARGET_STATE_DIR = "/var/lib/cdktf-nixos";
const SLOTS_DIR = `${STATE_DIR}/slots`;
const WORLDS_DIR = `${STATE_DIR}/worlds`;
const MAX_SLOTS = 64;
const FIRST_USER_ID = 2000;

export async function startTargets(count: number, options: TargetHostOptions = {}): Promise<TargetWorld> {
  if (!Number.isInteger(count) || count < 1 || count > MAX_SLOTS) {
    throw new Error(`startTargets: count must be an integer in 1..${MAX_SLOTS}, got ${count}`);
  }
  for (const user of options.users ?? []) {
    if (!/^[a-z_][a-z0-9_-]{0,30}$/.test(user.name) || user.name === "root") {
      throw new Error(`startTargets: invalid user name ${JSON.stringify(user.name)} (lower-case POSIX name, not root)`);
    }
  }
  await mkdir(WORLDS_DIR, { recursive: true, mode: 0o700 });
  const worldDir = await mkdtemp(`${WORLDS_DIR}/w-`);
  await writeFile(`${worldDir}/owner`, ownerStamp());
  const hosts: (NamespaceTarget | SystemdTarget)[] = [];
  const world = new World(worldDir, hosts);
  try {
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", "cdktf-nixos-test-client", "-f", world.clientKeyFile]);
    world.clientPublicKey = (await readFile(`${world.clientKeyFile}.pub`, "utf8")).trim();
    const kinds = typeof options.kind === "object" ? options.kind : Array<TargetKind>(count).fill(options.kind ?? "namespace");
    if (kinds.length !== count) throw new Error(`startTargets: ${kinds.length} kinds for ${count} targets`);
    for (const [i, kind] of kinds.entries()) {
      const name = `target${i + 1}`;
      const slot = await allocateSlot();
      hosts.push(kind === "systemd"
        ? new SystemdTarget(name, slot, `${SLOTS_DIR}/${slot}`, targetAddress(slot), () => releaseSlot(slot))
        : new NamespaceTarget(name, slot));
    }
    await Promise.all(hosts.map((h) => h.create(world.clientPublicKey, options)));
    await world.writeClientFiles();
    return world;
  } catch (error) {
    await world.stop();
    throw error;
  }
}

class World implements TargetWorld {
  readonly clientKeyFile: string;
  clientPublicKey = "";
  readonly knownHostsFile: string;
  readonly sshConfigFile: string;
  private stopped?: Promise<void>;

  constructor(
    private readonly dir: string,
    readonly hosts: (NamespaceTarget | SystemdTarget)[],
  ) {
    this.clientKeyFile = `${dir}/id_ed25519`;
    this.knownHostsFile = `${dir}/known_hosts`;
    this.sshConfigFile = `${dir}/ssh_config`;
  }

  async writeClientFiles(): Promise<void> {
    await writeFile(this.knownHostsFile, this.hosts.map((h) => `${h.name},${h.address} ${h.hostKey}\n`).join(""));
    const blocks = this.hosts.map((h) => `Host ${h.name}\n  HostName ${h.address}\n  Port ${h.port}\n`);
    blocks.push(
      [
        "Host *",
        "  User root",
        `  IdentityFile ${this.clientKeyFile}`,
        "  IdentitiesOnly yes",
        `  UserKnownHostsFile ${this.knownHostsFile}`,
        "  GlobalKnownHostsFile /dev/null",
        "  StrictHostKeyChecking yes",
        "  BatchMode yes",
        "  ConnectTimeout 5",
        "  LogLevel ERROR",
        "",
      ].join("\n"),
    );
    await writeFile(this.sshConfigFile, blocks.join(""));
  }

  stop(): Promise<void> {
    this.stopped ??= (async () => {
      const results = await Promise.allSettled(this.hosts.map((h) => h.destroy()));
      await rm(this.dir, { recursive: true, force: true });
      const failed = results.filter((r): r is PromiseRejectedResult => r.status === "rejected");
      if (failed.length > 0) throw new Error(`stopping targets failed: ${failed.map((f) => String(f.reason)).join("; ")}`);
    })();
    return this.stopped;
  }
}

class NamespaceTarget implements TargetHost {
  readonly kind = "namespace";
  readonly address: string;
  readonly port = 22;
  hostKey = "";
  readonly hostPrivateKeyFile: string;
  readonly storeDir: string;
  private readonly dir: string;
  private launcher?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly name: string,
    private readonly slot: number,
  ) {
    this.dir = `${SLOTS_DIR}/${slot}`;
    this.address = targetAddress(slot);
    this.hostPrivateKeyFile = `${this.dir}/ssh_host_ed25519_key`;
    this.storeDir = `${this.dir}/nix`;
  }

  async create(clientPublicKey: string, options: TargetHostOptions): Promise<void> {
    const d = this.dir;
    for (const sub of ["nix", "etc-nix", "etc", "etc-upper", "etc-work", "home", "root/.ssh"]) {
      await mkdir(`${d}/${sub}`, { recursive: true });
    }
    await chmod(`${d}/root`, 0o700);
    await chmod(`${d}/root/.ssh`, 0o700);
    await writeFile(`${d}/root/.ssh/authorized_keys`, [clientPublicKey, ...(options.authorizedKeys ?? [])].join("\n") + "\n", { mode: 0o600 });
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", this.name, "-f", this.hostPrivateKeyFile]);
    await writeFile(
      `${d}/etc-nix/nix.conf`,
      [
        `# nix.conf of test target ${this.name}`,
        "sandbox = false",
        "substituters =",
        `trusted-users = ${["root", ...(options.trustedUsers ?? [])].join(" ")}`,
        "experimental-features = nix-command flakes",
        "",
      ].join("\n"),
    );
    // nixpkgs-lite activations refuse to touch anything unless this marker says they run inside a test target.
    await writeFile(`${d}/etc-nix/nixos-lite-target`, `${this.name}\n`);
    await writeFile(`${d}/etc/hosts`, `127.0.0.1 localhost\n127.0.1.1 ${this.name}\n${this.address} ${this.name}\n`);
    // what a deployment records and keeps outside /run (the last activation, keys that survive reboots) is the
    // target's own: without it every namespace target wrote the machine's /var/lib/cdktf-nixos, and read the others'
    await mkdir(`${d}/var-lib-cdktf-nixos`, { recursive: true, mode: 0o755 });
    await mkdir(TARGET_STATE_DIR, { recursive: true, mode: 0o755 });
    const binds: [string, string][] = [
      [`${d}/nix`, "/nix"],
      [`${d}/root`, "/root"],
      [`${d}/etc-nix`, "/etc/nix"],
      [`${d}/etc/hosts`, "/etc/hosts"],
      [`${d}/home`, "/home"],
      [`${d}/var-lib-cdktf-nixos`, TARGET_STATE_DIR],
    ];
    if (options.users?.length) binds.push(...(await this.writeUsers(clientPublicKey, options.users)));
    await writeFile(
      `${d}/sshd_config`,
      [
        `# sshd of test target ${this.name}`,
        `ListenAddress ${this.address}:${this.port}`,
        `HostKey ${this.hostPrivateKeyFile}`,
        "PidFile none",
        "PermitRootLogin prohibit-password",
        "PubkeyAuthentication yes",
        "AuthorizedKeysFile .ssh/authorized_keys",
        "PasswordAuthentication no",
        "KbdInteractiveAuthentication no",
        "UsePAM no",
        "StrictModes yes",
        "PrintMotd no",
        "UseDNS no",
        "MaxStartups 100:30:200",
        `MaxSessions ${options.maxSessions ?? 100}`,
        "Subsystem sftp /usr/lib/openssh/sftp-server",
        "",
      ].join("\n"),
    );
    const daemon = options.nixDaemon
      ? [
          "nix-daemon </dev/null >/run/nix-daemon.log 2>&1 &",
          // a user logging in right after start must find the socket
          "i=0; while [ ! -S /nix/var/nix/daemon-socket/socket ] && [ $i -lt 200 ]; do sleep 0.02; i=$((i+1)); done",
        ]
      : [];
    await writeFile(
      `${d}/boot.sh`,
      [
        "#!/bin/sh",
        "# PID 1 of the target's PID namespace until it execs sshd",
        "set -e",
        `hostname ${this.name}`,
        // A private, writable /etc over the machine's (what the target writes stays in etc-upper), marked like a
        // NixOS image so deploys see a NixOS host; the per-target binds go on top of it.
        `mount -t overlay overlay -o lowerdir=/etc,upperdir=${d}/etc-upper,workdir=${d}/etc-work /etc`,
        "touch /etc/NIXOS",
        ...binds.map(([from, to]) => `mount --bind ${from} ${to}`),
        "mount -t tmpfs -o mode=0755 tmpfs /run",
        "mkdir -p /run/sshd",
        `if [ -e ${d}/boot-default-system ]; then rm -f ${d}/boot-default-system; b=$(cat /nix/var/nixos-lite/boot-default 2>/dev/null || true); [ -z "$b" ] || ln -sfn "$b" /run/current-system; fi`,
        "nix-store --init",
        ...daemon,
        `exec /usr/sbin/sshd -D -e -f ${d}/sshd_config`,
        "",
      ].join("\n"),
      { mode: 0o755 },
    );
    await createNetwork(this.slot);
    await this.boot();
  }

  /** Per-target passwd/group/shadow/sudoers.d copies with the extra users: the machine's own files stay untouched. */
  private async writeUsers(clientPublicKey: string, users: { name: string; sudo?: boolean }[]): Promise<[string, string][]> {
    const d = this.dir;
    const passwd = await readFile("/etc/passwd", "utf8");
    const group = await readFile("/etc/group", "utf8");
    const existing = users.find((u) => passwd.split("\n").some((l) => l.split(":")[0] === u.name));
    if (existing) throw new Error(`startTargets: user ${existing.name} already exists on this machine; pick another name`);
    const taken = new Set([...passwd.split("\n"), ...group.split("\n")].map((l) => l.split(":")[2]));
    let id = FIRST_USER_ID;
    const extra = { passwd: "", group: "", shadow: "", sudoers: "" };
    for (const user of users) {
      while (taken.has(String(id))) id++;
      taken.add(String(id));
      extra.passwd += `${user.name}:x:${id}:${id}:${user.name}:/home/${user.name}:/bin/bash\n`;
      extra.group += `${user.name}:x:${id}:\n`;
      // "*" = no password but not locked: sshd (UsePAM no) still allows key login
      extra.shadow += `${user.name}:*:19000:0:99999:7:::\n`;
      if (user.sudo) extra.sudoers += `${user.name} ALL=(ALL:ALL) NOPASSWD: ALL\n`;
      const home = `${d}/home/${user.name}`;
      await mkdir(`${home}/.ssh`, { recursive: true, mode: 0o700 });
      await writeFile(`${home}/.ssh/authorized_keys`, `${clientPublicKey}\n`, { mode: 0o600 });
      for (const p of [home, `${home}/.ssh`, `${home}/.ssh/authorized_keys`]) await chown(p, id, id);
      await chmod(home, 0o755);
    }
    await writeFile(`${d}/etc/passwd`, withTrailingNewline(passwd) + extra.passwd, { mode: 0o644 });
    await writeFile(`${d}/etc/group`, withTrailingNewline(group) + extra.group, { mode: 0o644 });
    await writeFile(`${d}/etc/shadow`, withTrailingNewline(await readFile("/etc/shadow", "utf8")) + extra.shadow, {
      mode: 0o640,
    });
    await mkdir(`${d}/etc/sudoers.d`, { mode: 0o755 });
    for (const f of await readdir("/etc/sudoers.d")) await copyFile(`/etc/sudoers.d/${f}`, `${d}/etc/sudoers.d/${f}`);
    await writeFile(`${d}/etc/sudoers.d/cdktf-nixos-test-users`, extra.sudoers, { mode: 0o440 });
    return [
      [`${d}/etc/passwd`, "/etc/passwd"],
      [`${d}/etc/group`, "/etc/group"],
      [`${d}/etc/shadow`, "/etc/shadow"],
      [`${d}/etc/sudoers.d`, "/etc/sudoers.d"],
    ];
  }

  private async boot(): Promise<void> {
    this.hostKey = (await run("ssh-keygen", ["-y", "-f", this.hostPrivateKeyFile])).stdout.trim().split(" ").slice(0, 2).join(" ");
    const log = openSync(`${this.dir}/console.log`, "a");
    // `ip netns exec` execs unshare in place, so the spawned PID is unshare's: the launcher we track and kill.
    const child = spawn(
      "ip",
      ["netns", "exec", netnsName(this.slot), "unshare", "--pid", "--fork", "--kill-child", "--mount-proc", "--uts",
        "--propagation", "private", "/bin/sh", `${this.dir}/boot.sh`],
      { detached: true, stdio: ["ignore", log, log], env: SYS_ENV },
    );
    closeSync(log);
    child.unref();
    this.launcher = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    if (child.pid === undefined) throw new Error(`${this.name}: could not spawn ip netns exec/unshare`);
    await writeFile(`${this.dir}/launcher.pid`, String(child.pid));
    await this.waitForSsh();
  }

  private async waitForSsh(): Promise<void> {
    const deadline = Date.now() + 15_000;
    let gone = false;
    void this.exited?.then(() => (gone = true));
    while (Date.now() < deadline && !gone) {
      if (await sshBanner(this.address, this.port)) return;
      await sleep(20);
    }
    const console = await readFile(`${this.dir}/console.log`, "utf8").catch(() => "");
    throw new Error(`${this.name}: sshd on ${this.address}:${this.port} did not come up. Console:\n${console}`);
  }

  private initPid(): number {
    const pid = this.launcher?.pid;
    if (pid === undefined || this.launcher?.exitCode !== null || this.launcher.signalCode !== null) {
      throw new Error(`${this.name} is not running`);
    }
    const children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
    if (children.length !== 1) throw new Error(`${this.name}: expected one init process under ${pid}, found ${children.length}`);
    return Number(children[0]);
  }

  async exec(command: string): Promise<ExecResult> {
    const init = String(this.initPid());
    return run("nsenter", ["--target", init, "--mount", "--uts", "--net", "--pid", "--", "/bin/sh", "-c", command], {
      check: false,
    });
  }

  private async halt(): Promise<void> {
    const child = this.launcher;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    stopLauncher(child.pid!, this.dir);
    await exitedOrKilled(child, this.exited!, 5_000);
  }

  async refuseSsh(): Promise<() => Promise<void>> {
    // sshd re-executes itself on SIGHUP (same PID 1), reading the config again
    return refuseSshOn(this, `${this.dir}/sshd_config`, async () => {
      const result = await this.exec("kill -HUP 1");
      if (result.exitCode !== 0) throw new Error(`${this.name}: kill -HUP 1 failed: ${result.stderr}`);
    });
  }

  async restart(options: { bootDefault?: boolean } = {}): Promise<void> {
    await this.halt();
    if (options.bootDefault) await writeFile(`${this.dir}/boot-default-system`, "");
    await this.boot();
  }

  async destroy(): Promise<void> {
    await this.halt();
    await releaseSlot(this.slot);
  }
}

async function releaseSlot(slot: number): Promise<void> {
  // a slot reclaimed by cleanupStaleTargets may already belong to someone else
  if (readFileOr(`${SLOTS_DIR}/${slot}/owner`, "") === ownerStamp()) await removeSlot(slot);
}

async function allocateSlot(): Promise<number> {
  await mkdir(SLOTS_DIR, { recursive: true, mode: 0o700 });
  for (let slot = 0; slot < MAX_SLOTS; slot++) {
    try {
      await mkdir(`${SLOTS_DIR}/${slot}`); // atomic: the slot is ours iff we created its directory
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === "EEXIST") continue;
      throw error;
    }
    await writeFile(`${SLOTS_DIR}/${slot}/owner`, ownerStamp());
    return slot;
  }
  throw new Error(`all ${MAX_SLOTS} target slots under ${SLOTS_DIR} are taken (leftovers? see test/harness/README.md)`);
}

/**
 * TERMs PID 1 of the target (sshd): the kernel then kills the rest of its PID namespace and unshare exits.
 * unshare itself ignores SIGTERM. Only acts on a PID whose cmdline is our unshare for that slot directory.
 */
function stopLauncher(pid: number, slotDir: string): boolean {
  if (!isOurLauncher(pid, slotDir)) return false;
  let children: string[] = [];
  try {
    children = readFileSync(`/proc/${pid}/task/${pid}/children`, "utf8").trim().split(/\s+/).filter(Boolean);
  } catch {
    // exited meanwhile
  }
  for (const c of children) tryKill(Number(c), "SIGTERM");
  if (children.length === 0) tryKill(pid, "SIGKILL");
  return true;
}

function isOurLauncher(pid: number, slotDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "")[0];
    return state !== "Z" && cmdline.includes("unshare") && cmdline.includes(`${slotDir}/boot.sh`);
  } catch {
    return false;
  }
}

async function removeSlot(slot: number): Promise<void> {
  await removeNetwork(slot);
  await rm(`${SLOTS_DIR}/${slot}`, { recursive: true, force: true });
}

/** Set by global-setup for the world suite, so its teardown can tell its own leftovers from other live runs'. */
export const RUN_ID_ENV = "CDKTF_NIXOS_WORLD_RUN";

function ownerStamp(): string {
  return `${process.pid} ${processStartTime(process.pid)} ${process.env[RUN_ID_ENV] ?? "-"}\n`;
}

function processStartTime(pid: number): string | undefined {
  try {
    return readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "").split(" ")[19];
  } catch {
    return undefined;
  }
}

function ownerRun(dir: string): string | undefined {
  return readFileOr(`${dir}/owner`, "").trim().split(" ")[2];
}

function ownerAlive(dir: string): boolean {
  try {
    const [pid, start] = readFileSync(`${dir}/owner`, "utf8").trim().split(" ");
    return processStartTime(Number(pid)) === start;
  } catch {
    // no owner stamp yet: a directory claimed a moment ago, its stamp is being written
    try {
      return Date.now() - statSync(dir).mtimeMs < 10_000;
    } catch {
      return false;
    }
  }
}

/**
 * Stops and removes targets and worlds whose owning process is dead (a crashed or killed run) or that belong to the
 * world-suite run `runId`, plus namespaces and veths with our prefix that have no slot directory. Other live worlds
 * are left alone.
 * Returns what was cleaned.
 */
export async function cleanupStaleTargets(runId?: string): Promise<string[]> {
  const stale = (dir: string) => !ownerAlive(dir) || (runId !== undefined && ownerRun(dir) === runId);
  const cleaned: string[] = [];
  for (const entry of listDir(SLOTS_DIR)) {
    const dir = `${SLOTS_DIR}/${entry}`;
    if (!stale(dir)) continue;
    const pid = Number(readFileOr(`${dir}/launcher.pid`, "0"));
    if (pid > 0 && stopLauncher(pid, dir)) {
      for (let i = 0; i < 250 && isOurLauncher(pid, dir); i++) await sleep(20);
      if (isOurLauncher(pid, dir)) tryKill(pid, "SIGKILL");
    }
    // a systemd target's (no-op for a namespace target: no nspawn, no overlay, no cgroups)
    await stopStaleSystemdTarget(pid, Number(entry), dir);
    await removeSlot(Number(entry));
    cleaned.push(`slot ${entry}`);
  }
  const live = new Set(listDir(SLOTS_DIR).map(Number));
  for (const slot of await ourNamespaces()) {
    if (live.has(slot)) continue;
    if (listDir(SLOTS_DIR).includes(String(slot))) continue; // claimed meanwhile
    await removeNetwork(slot);
    cleaned.push(`netns ${netnsName(slot)}`);
  }
  for (const slot of systemdCgroupSlots()) {
    if (live.has(slot)) continue;
    await stopStaleSystemdTarget(0, slot, `${SLOTS_DIR}/${slot}`);
    cleaned.push(`cgroup ${NAME_PREFIX}-c${slot}`);
  }
  for (const slot of await ourVeths()) {
    if (live.has(slot)) continue;
    await run("ip", ["link", "del", hostVethName(slot)], { check: false });
    cleaned.push(`veth ${hostVethName(slot)}`);
  }
  for (const entry of listDir(WORLDS_DIR)) {
    if (!stale(`${WORLDS_DIR}/${entry}`)) continue;
    await rm(`${WORLDS_DIR}/${entry}`, { recursive: true, force: true });
    cleaned.push(`world ${entry}`);
  }
  return cleaned;
}

/**
 * What this harness left behind: slot and world directories, netns, veths, target processes, mounts. Counts worlds
 * of dead owners, of `ownPids` and of the world-suite run `runId`; ignores other live worlds (a benchmark alongside).
 */
export async function leftoverTargets(ownPids: number[] = [], runId?: string): Promise<string[]> {
  const ours = (dir: string) => {
    const pid = Number(readFileOr(`${dir}/owner`, "0").split(" ")[0]);
    return !ownerAlive(dir) || ownPids.includes(pid) || (runId !== undefined && ownerRun(dir) === runId);
  };
  const left: string[] = [];
  const slots = listDir(SLOTS_DIR).filter((s) => ours(`${SLOTS_DIR}/${s}`));
  left.push(...slots.map((s) => `slot directory ${SLOTS_DIR}/${s}`));
  left.push(...listDir(WORLDS_DIR).filter((w) => ours(`${WORLDS_DIR}/${w}`)).map((w) => `world directory ${WORLDS_DIR}/${w}`));
  const liveOthers = new Set(listDir(SLOTS_DIR).filter((s) => !slots.includes(s)).map(Number));
  left.push(...(await ourNamespaces()).filter((s) => !liveOthers.has(s)).map((s) => `netns ${netnsName(s)}`));
  left.push(...(await ourVeths()).filter((s) => !liveOthers.has(s)).map((s) => `veth ${hostVethName(s)}`));
  left.push(...systemdCgroupSlots().filter((s) => !liveOthers.has(s)).map((s) => `cgroup ${NAME_PREFIX}-c${s}`));
  for (const pid of listDir("/proc").filter((p) => /^\d+$/.test(p))) {
    const cmdline = readFileOr(`/proc/${pid}/cmdline`, "").split("\0");
    const match = cmdline.find((a) => a.startsWith(`${SLOTS_DIR}/`));
    if (match && !liveOthers.has(Number(match.slice(SLOTS_DIR.length + 1).split("/")[0]))) {
      left.push(`process ${pid}: ${cmdline.join(" ").trim()}`);
    }
  }
  for (const line of readFileOr("/proc/self/mountinfo", "").split("\n")) {
    const netns = new RegExp(`/run/netns/${NAME_PREFIX}-s(\\d+) `).exec(line);
    if (line.includes(STATE_DIR) || (netns && !liveOthers.has(Number(netns[1])))) left.push(`mount: ${line}`);
  }
  return left;
}

async function ourNamespaces(): Promise<number[]> {
  return listDir("/run/netns").flatMap((n) => {
    const m = new RegExp(`^${NAME_PREFIX}-s(\\d+)$`).exec(n);
    return m ? [Number(m[1])] : [];
  });
}

async function ourVeths(): Promise<number[]> {
  const links = await run("ip", ["-o", "link", "show"], { check: false });
  return [...links.stdout.matchAll(new RegExp(`^\\d+: ${NAME_PREFIX}-h(\\d+)[@:]`, "gm"))].map((m) => Number(m[1]));
}

/** Copy spools (cdktf-nixos-spool.*) of this target's importers (its PID namespace) still in the /tmp the targets share. */
export async function copySpoolsOf(target: TargetHost): Promise<string[]> {
  const found = await target.exec(
    'ns=$(readlink /proc/self/ns/pid); for d in /tmp/cdktf-nixos-spool.*; do [ -d "$d" ] || continue; ' +
      'read -r p n < "$d/pid" 2>/dev/null; [ "$n" = "$ns" ] && echo "$d"; done; true',
  );
  return found.stdout.split("\n").filter(Boolean);
}
