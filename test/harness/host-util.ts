import { spawn, type ChildProcess } from "node:child_process";
import { readFileSync, readdirSync, writeFileSync } from "node:fs";
import net from "node:net";
import { constants } from "node:os";

/** What both kinds of target host (target-hosts.ts, systemd-target.ts) share: names, addresses, processes. */

export const NAME_PREFIX = "cdktfnx";

export interface ExecResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}
export const SYS_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

export const SYS_ENV = { PATH: SYS_PATH, HOME: "/root", USER: "root", LANG: "C.UTF-8" };

export const netnsName = (slot: number) => `${NAME_PREFIX}-s${slot}`;

export const hostVethName = (slot: number) => `${NAME_PREFIX}-h${slot}`;

export const hostSideAddress = (slot: number) => `10.233.0.${4 * slot + 1}`;

export const targetAddress = (slot: number) => `10.233.0.${4 * slot + 2}`;

export function tryKill(pid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** The slot's netns with a veth pair: `eth0` (targetAddress) inside, hostVethName (hostSideAddress) outside. */
export async function createNetwork(slot: number): Promise<void> {
  const ns = netnsName(slot);
  const veth = hostVethName(slot);
  await removeNetwork(slot); // the slot directory is ours now, so anything named for it is a stale leftover
  await run("ip", ["netns", "add", ns]);
  await run("ip", ["link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns]);
  await run("ip", ["addr", "add", `${hostSideAddress(slot)}/30`, "dev", veth]);
  await run("ip", ["link", "set", veth, "up"]);
  await run("ip", ["-n", ns, "addr", "add", `${targetAddress(slot)}/30`, "dev", "eth0"]);
  await run("ip", ["-n", ns, "link", "set", "eth0", "up"]);
  await run("ip", ["-n", ns, "link", "set", "lo", "up"]);
}

/** Removes the slot's netns (which takes the veth pair with it) and the host-side veth if it survived. */
export async function removeNetwork(slot: number): Promise<void> {
  const ns = netnsName(slot);
  const nsPids = await run("ip", ["netns", "pids", ns], { check: false });
  if (nsPids.exitCode === 0) {
    // anything still inside our namespace was started there by a test
    for (const p of nsPids.stdout.split(/\s+/).filter(Boolean)) tryKill(Number(p), "SIGKILL");
    await run("ip", ["netns", "del", ns]);
  }
  await run("ip", ["link", "del", hostVethName(slot)], { check: false });
}

export function listDir(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

export function readFileOr(file: string, fallback: string): string {
  try {
    return readFileSync(file, "utf8");
  } catch {
    return fallback;
  }
}

export function withTrailingNewline(s: string): string {
  return s.endsWith("\n") ? s : `${s}\n`;
}

/** Waits up to `ms` for a launcher told to stop to exit, then SIGKILLs it and waits for that. */
export async function exitedOrKilled(child: ChildProcess, exited: Promise<void>, ms: number): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const stopped = await Promise.race([exited.then(() => true), new Promise<false>((resolve) => (timer = setTimeout(() => resolve(false), ms)))]);
  clearTimeout(timer);
  if (!stopped) {
    child.kill("SIGKILL");
    await exited;
  }
}

/**
 * Moves sshd's listener one port up (its config `file` rewritten, then `reload`) until sshd no longer answers on
 * `port`; returns the function that puts it back and waits for its banner.
 */
export async function refuseSshOn(
  host: { readonly name: string; readonly address: string; readonly port: number },
  file: string,
  reload: () => Promise<void>,
): Promise<() => Promise<void>> {
  const original = readFileSync(file, "utf8");
  const listen = `ListenAddress ${host.address}:${host.port}`;
  if (!original.includes(listen)) throw new Error(`${host.name}: ${file} has no "${listen}"`);
  writeFileSync(file, original.replace(listen, `ListenAddress ${host.address}:${host.port + 1}`));
  await reload();
  const deadline = Date.now() + 5_000;
  while (await sshBanner(host.address, host.port)) {
    if (Date.now() > deadline) throw new Error(`${host.name}: sshd still answers on port ${host.port}`);
    await sleep(20);
  }
  // sshd re-executes itself on SIGHUP: until it listens again its handler is not installed, and the next SIGHUP (the
  // restore) would end it
  while (!(await sshBanner(host.address, host.port + 1))) {
    if (Date.now() > deadline) throw new Error(`${host.name}: sshd did not come back on port ${host.port + 1}`);
    await sleep(20);
  }
  return async () => {
    writeFileSync(file, original);
    await reload();
    const back = Date.now() + 15_000;
    while (!(await sshBanner(host.address, host.port))) {
      if (Date.now() > back) throw new Error(`${host.name}: sshd did not come back on port ${host.port}`);
      await sleep(20);
    }
  };
}

export function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

export function sshBanner(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    let data = "";
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(1_000, () => done(false));
    socket.on("data", (chunk) => {
      data += chunk.toString("latin1");
      if (data.length >= 4) done(data.startsWith("SSH-"));
    });
    socket.on("error", () => done(false));
    socket.on("close", () => done(data.startsWith("SSH-")));
  });
}

/** Runs a machine-side command with a clean environment; rejects on non-zero exit unless check is false. */
export function run(
  command: string,
  args: string[],
  opts: { check?: boolean; env?: Record<string, string>; cwd?: string; input?: string } = {},
): Promise<ExecResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, {
      cwd: opts.cwd ?? "/",
      env: { ...SYS_ENV, ...opts.env },
      stdio: [opts.input === undefined ? "ignore" : "pipe", "pipe", "pipe"],
    });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout!.on("data", (b: Buffer) => out.push(b));
    child.stderr!.on("data", (b: Buffer) => err.push(b));
    if (opts.input !== undefined) child.stdin!.end(opts.input);
    child.on("error", reject);
    child.on("close", (code, signal) => {
      const result = {
        exitCode: code ?? 128 + (signal ? constants.signals[signal] : 0),
        stdout: Buffer.concat(out).toString("utf8"),
        stderr: Buffer.concat(err).toString("utf8"),
      };
      if (opts.check !== false && result.exitCode !== 0) {
        reject(new Error(`${command} ${args.join(" ")} exited ${result.exitCode}: ${result.stderr.trim()}`));
      } else {
        resolve(result);
      }
    });
  });
}
