import { execFile, spawn, type ChildProcess } from "node:child_process";
import { closeSync, existsSync, openSync, readFileSync, readdirSync, rmdirSync } from "node:fs";
import { chmod, copyFile, mkdir, readFile, symlink, writeFile } from "node:fs/promises";
import { join } from "node:path";
import { promisify } from "node:util";
import { type ExecResult, NAME_PREFIX, SYS_ENV, exitedOrKilled, refuseSshOn, createNetwork, netnsName, readFileOr, run, sleep, sshBanner, tryKill } from "./host-util";
import type { TargetHost, TargetHostOptions } from "./target-hosts";

/**
 * Target hosts whose PID 1 is a real systemd (Debian bookworm's 252), booted with systemd-nspawn from an overlay
 * over one shared root filesystem (systemd-rootfs.sh builds it once per machine), each in the network namespace of
 * its slot, with its own cgroup, its /nix a machine-side directory (storeDir) and sshd and nix-daemon run as
 * systemd units. nixpkgs-lite systems find their unit files through a generator, as NixOS's do through
 * /etc/systemd/system, and a reboot activates the boot default (stage 2).
 */

const ROOTFS_SCRIPT = join(__dirname, "systemd-rootfs.sh");
const FILES = join(__dirname, "systemd-target");
const CGROUP_HIERARCHIES = ["systemd", "unified"] as const;
/** nspawn --keep-unit runs the container in `<the launcher's cgroup>/payload`: one parent cgroup per target. */
const cgroupName = (slot: number) => `${NAME_PREFIX}-c${slot}`;
const cgroupDir = (hierarchy: string, slot: number) => `/sys/fs/cgroup/${hierarchy}/${cgroupName(slot)}`;
const BOOT_TIMEOUT_MS = 30_000;

let rootfs: Promise<string> | undefined;

/** The shared root filesystem's directory, built (or found in the machine's cache) once per process. */
export function systemdRootfs(): Promise<string> {
  rootfs ??= promisify(execFile)(ROOTFS_SCRIPT, [], { env: SYS_ENV, maxBuffer: 1 << 20 }).then(({ stdout }) => stdout.trim());
  return rootfs;
}

export class SystemdTarget implements TargetHost {
  readonly kind = "systemd";
  readonly port = 22;
  hostKey = "";
  readonly hostPrivateKeyFile: string;
  readonly storeDir: string;
  private readonly merged: string;
  private launcher?: ChildProcess;
  private exited?: Promise<void>;

  constructor(
    readonly name: string,
    private readonly slot: number,
    private readonly dir: string,
    readonly address: string,
    /** Removes the slot (network and directory) once the target is down. */
    private readonly release: () => Promise<void>,
  ) {
    this.hostPrivateKeyFile = `${dir}/ssh_host_ed25519_key`;
    this.storeDir = `${dir}/nix`;
    this.merged = `${dir}/merged`;
  }

  async create(clientPublicKey: string, options: TargetHostOptions): Promise<void> {
    const d = this.dir;
    const base = await systemdRootfs();
    for (const sub of ["nix", "upper", "work", "merged"]) await mkdir(`${d}/${sub}`, { recursive: true });
    await run("mount", ["-t", "overlay", "overlay", "-o", `lowerdir=${base},upperdir=${d}/upper,workdir=${d}/work`, this.merged]);
    const m = this.merged;
    await run("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", this.name, "-f", this.hostPrivateKeyFile]);
    await mkdir(`${m}/root/.ssh`, { recursive: true, mode: 0o700 });
    await writeFile(`${m}/root/.ssh/authorized_keys`, [clientPublicKey, ...(options.authorizedKeys ?? [])].join("\n") + "\n", { mode: 0o600 });
    await writeFile(`${m}/etc/hostname`, `${this.name}\n`);
    await writeFile(`${m}/etc/hosts`, `127.0.0.1 localhost\n127.0.1.1 ${this.name}\n${this.address} ${this.name}\n`);
    await writeFile(`${m}/etc/ssh/sshd_config.d/cdktf-nixos-test.conf`, this.sshdConfig(this.port, options));
    await writeFile(
      `${m}/etc/nix/nix.conf`,
      [
        `# nix.conf of test target ${this.name}`,
        "sandbox = false",
        "substituters =",
        `trusted-users = ${["root", ...(options.trustedUsers ?? [])].join(" ")}`,
        "experimental-features = nix-command flakes",
        "",
      ].join("\n"),
    );
    // what the deploy engine and nixpkgs-lite's activation check before they act (see target-hosts.ts)
    await writeFile(`${m}/etc/NIXOS`, "");
    await writeFile(`${m}/etc/nix/nixos-lite-target`, `${this.name}\n`);
    await mkdir(`${m}/etc/systemd/system-generators`, { recursive: true });
    await copyFile(`${FILES}/nixos-lite-generator`, `${m}/etc/systemd/system-generators/nixos-lite`);
    await chmod(`${m}/etc/systemd/system-generators/nixos-lite`, 0o755);
    await copyFile(`${FILES}/nixos-lite-stage-2.service`, `${m}/etc/systemd/system/nixos-lite-stage-2.service`);
    await symlink("../nixos-lite-stage-2.service", `${m}/etc/systemd/system/multi-user.target.wants/nixos-lite-stage-2.service`);
    for (const user of options.users ?? []) await this.addUser(user, clientPublicKey);
    await createNetwork(this.slot);
    await this.boot();
  }

  private sshdConfig(port: number, options: Pick<TargetHostOptions, "maxSessions">): string {
    // Debian's sshd_config includes this first, and sshd keeps the first value it reads
    return [
      `# sshd of test target ${this.name}`,
      `ListenAddress ${this.address}:${port}`,
      "PermitRootLogin prohibit-password",
      "PasswordAuthentication no",
      "KbdInteractiveAuthentication no",
      "UseDNS no",
      "MaxStartups 100:30:200",
      `MaxSessions ${options.maxSessions ?? 100}`,
      "",
    ].join("\n");
  }

  /** A login user made by the rootfs's own useradd (ids of the target, not the machine), with the client key. */
  private async addUser(user: { name: string; sudo?: boolean }, clientPublicKey: string): Promise<void> {
    const script = [
      "set -e",
      `useradd --create-home --shell /bin/bash ${user.name}`,
      // "*": no password, not locked, so key logins work
      `usermod -p '*' ${user.name}`,
      // Debian opens the nix-daemon socket to this group only (NixOS: allowed-users = *)
      `usermod -a -G nix-users ${user.name}`,
      `install -d -m 0700 -o ${user.name} -g ${user.name} /home/${user.name}/.ssh`,
      `printf '%s\\n' "$1" > /home/${user.name}/.ssh/authorized_keys`,
      `chown ${user.name}: /home/${user.name}/.ssh/authorized_keys; chmod 0600 /home/${user.name}/.ssh/authorized_keys`,
      ...(user.sudo ? [`echo '${user.name} ALL=(ALL:ALL) NOPASSWD: ALL' > /etc/sudoers.d/${user.name}; chmod 0440 /etc/sudoers.d/${user.name}`] : []),
    ].join("\n");
    await run("chroot", [this.merged, "/bin/sh", "-c", script, "sh", clientPublicKey]);
  }

  private async boot(): Promise<void> {
    // the key file is the truth (a test may have swapped it): install it into the target on every boot
    await copyFile(this.hostPrivateKeyFile, `${this.merged}/etc/ssh/ssh_host_ed25519_key`);
    await copyFile(`${this.hostPrivateKeyFile}.pub`, `${this.merged}/etc/ssh/ssh_host_ed25519_key.pub`);
    this.hostKey = (await run("ssh-keygen", ["-y", "-f", this.hostPrivateKeyFile])).stdout.trim().split(" ").slice(0, 2).join(" ");
    for (const hierarchy of CGROUP_HIERARCHIES) await mkdir(cgroupDir(hierarchy, this.slot), { recursive: true });
    const log = openSync(`${this.dir}/console.log`, "a");
    const procs = CGROUP_HIERARCHIES.map((h) => `${cgroupDir(h, this.slot)}/cgroup.procs`).join(" ");
    // The launcher moves itself into the target's own cgroup before it becomes nspawn: two targets started from
    // one cgroup would share `<cgroup>/payload`. nspawn turns SIGTERM into the container's clean poweroff.
    const child = spawn(
      "/bin/sh",
      ["-c", `for f in ${procs}; do echo $$ > "$f"; done; exec "$@"`, "sh",
        "systemd-nspawn", "--quiet", "-D", this.merged, "--boot", `--machine=${NAME_PREFIX}-m${this.slot}`,
        `--hostname=${this.name}`, "--register=no", "--keep-unit", `--network-namespace-path=/run/netns/${netnsName(this.slot)}`,
        // root on a real host may take its own network down (nixpkgs-lite's breakNetwork does)
        `--bind=${this.storeDir}:/nix`, "--capability=CAP_NET_ADMIN", "--console=read-only"],
      // a pure cgroup2 tree inside, as NixOS has
      { detached: true, stdio: ["ignore", log, log], env: { ...SYS_ENV, SYSTEMD_NSPAWN_UNIFIED_HIERARCHY: "1" } },
    );
    closeSync(log);
    child.unref();
    this.launcher = child;
    this.exited = new Promise((resolve) => child.once("exit", () => resolve()));
    if (child.pid === undefined) throw new Error(`${this.name}: could not spawn systemd-nspawn`);
    await writeFile(`${this.dir}/launcher.pid`, String(child.pid));
    await this.waitForBoot();
  }

  /** Until sshd answers and systemd has finished booting (running, or degraded when a unit failed). */
  private async waitForBoot(): Promise<void> {
    const deadline = Date.now() + BOOT_TIMEOUT_MS;
    let gone = false;
    void this.exited?.then(() => (gone = true));
    while (Date.now() < deadline && !gone) {
      if (existsSync(this.initProcsFile()) && (await sshBanner(this.address, this.port))) {
        const state = await this.exec("timeout 20 systemctl is-system-running --wait");
        if (["running", "degraded"].includes(state.stdout.trim())) return;
      }
      await sleep(50);
    }
    const console = await readFile(`${this.dir}/console.log`, "utf8").catch(() => "");
    throw new Error(`${this.name}: systemd target did not boot to sshd on ${this.address}:${this.port}. Console:\n${console.slice(-4000)}`);
  }

  private initProcsFile(): string {
    return `${cgroupDir("unified", this.slot)}/payload/init.scope/cgroup.procs`;
  }

  /** systemd, PID 1 inside: the process of init.scope whose PID in its own namespace is 1 (generators run there too). */
  private initPid(): number {
    const pids = readFileOr(this.initProcsFile(), "").trim().split(/\s+/).filter(Boolean);
    const init = pids.find((pid) => /^NSpid:.*\s1$/m.test(readFileOr(`/proc/${pid}/status`, "")));
    if (init === undefined) throw new Error(`${this.name} is not running (no systemd in its init.scope)`);
    return Number(init);
  }

  async exec(command: string): Promise<ExecResult> {
    const init = String(this.initPid());
    return run("nsenter", ["--target", init, "--mount", "--uts", "--net", "--pid", "--ipc", "--", "/bin/sh", "-c", command], {
      check: false,
    });
  }

  private async halt(): Promise<void> {
    const child = this.launcher;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    if (isSystemdLauncher(child.pid!, this.dir)) tryKill(child.pid!, "SIGTERM");
    await exitedOrKilled(child, this.exited!, 10_000);
    removeCgroups(this.slot);
  }

  async refuseSsh(): Promise<() => Promise<void>> {
    return refuseSshOn(this, `${this.merged}/etc/ssh/sshd_config.d/cdktf-nixos-test.conf`, async () => {
      const result = await this.exec("systemctl reload ssh");
      if (result.exitCode !== 0) throw new Error(`${this.name}: systemctl reload ssh failed: ${result.stderr}`);
    });
  }

  /** A real reboot: systemd powers off and boots again, stage 2 activates the boot default; /run starts empty. */
  async restart(): Promise<void> {
    await this.halt();
    await this.boot();
  }

  async destroy(): Promise<void> {
    await this.halt();
    await unmountOverlay(this.dir);
    await this.release();
  }
}

/** Whether `pid` is the systemd-nspawn of the target in `slotDir` (and not a process that reused its PID). */
export function isSystemdLauncher(pid: number, slotDir: string): boolean {
  try {
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, "utf8").split("\0");
    const state = readFileSync(`/proc/${pid}/stat`, "utf8").replace(/^.*\) /, "")[0];
    return state !== "Z" && cmdline.includes("systemd-nspawn") && cmdline.includes(`${slotDir}/merged`);
  } catch {
    return false;
  }
}

/** For a crashed run's slot: powers its container off (or kills it), unmounts its overlay, removes its cgroups. */
export async function stopStaleSystemdTarget(pid: number, slot: number, slotDir: string): Promise<void> {
  if (pid > 0 && isSystemdLauncher(pid, slotDir)) {
    tryKill(pid, "SIGTERM");
    for (let i = 0; i < 200 && isSystemdLauncher(pid, slotDir); i++) await sleep(50);
    if (isSystemdLauncher(pid, slotDir)) tryKill(pid, "SIGKILL");
    for (let i = 0; i < 100 && isSystemdLauncher(pid, slotDir); i++) await sleep(50);
  }
  await unmountOverlay(slotDir);
  removeCgroups(slot);
}

async function unmountOverlay(slotDir: string): Promise<void> {
  const merged = `${slotDir}/merged`;
  const mounted = readFileOr("/proc/self/mountinfo", "").split("\n").some((line) => line.split(" ")[4] === merged);
  if (mounted) await run("umount", [merged]);
}

/** Our targets' cgroups, deepest first (a cgroup is removed with rmdir once it has no processes and no children). */
function removeCgroups(slot: number): void {
  for (const hierarchy of CGROUP_HIERARCHIES) {
    const walk = (dir: string): void => {
      let entries: string[] = [];
      try {
        entries = readdirSync(dir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => e.name);
      } catch {
        return;
      }
      for (const entry of entries) walk(`${dir}/${entry}`);
      try {
        rmdirSync(dir);
      } catch {
        // still has processes: left for leftoverTargets to report
      }
    };
    walk(cgroupDir(hierarchy, slot));
  }
}

/** Cgroups of our targets that still exist (slot numbers). */
export function systemdCgroupSlots(): number[] {
  return CGROUP_HIERARCHIES.flatMap((hierarchy) => {
    try {
      return readdirSync(`/sys/fs/cgroup/${hierarchy}`).flatMap((name) => {
        const m = new RegExp(`^${NAME_PREFIX}-c(\\d+)$`).exec(name);
        return m ? [Number(m[1])] : [];
      });
    } catch {
      return [];
    }
  });
}
