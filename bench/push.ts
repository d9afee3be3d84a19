/**
 * Fleet push benchmark (P4): `push` to 8 namespaced hosts, each behind its own latency proxy (25 ms each way), each
 * receiving the same ~200-path / ~25 MB closure plus a small per-host part (host name, motd). Measured in one run:
 *
 *   push to 8 hosts  vs  push to 1 host                                   (goal ≤ 1.5×)
 *   push to 8 hosts  vs  a sequential loop of nix-copy-closure + ssh switch-to-configuration over the 8 hosts,
 *                        what a shell script or deploy-rs does            (goal ≤ 0.15×)
 *   push to 8 hosts  vs  the same per host, all hosts at once (xargs -P 8): what a parallel script does (goal ≤ 1×)
 *   and the peak RSS of the push process.
 *
 * Every measurement starts from empty target stores. The reference gets its systems built beforehand; push evaluates
 * and builds (already built, so only the evaluation is left) inside its measured time.
 *
 * Env: BENCH_ROUNDS (5), BENCH_HOSTS (8), BENCH_PATHS (200), BENCH_SIZE_KIB (125), BENCH_DELAY_MS (25).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { recordTable } from "./results";
import { proxiedFleetHosts, withProxiedFleet } from "./proxied-fleet";
import { NIXPKGS_LITE } from "../test/harness/fixture";
import type { LatencyProxy } from "../test/harness/latency-proxy";
import { cleanupStaleTargets, type TargetWorld } from "../test/harness/target-hosts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 8);
const PATHS = Number(process.env.BENCH_PATHS ?? 200);
const SIZE_KIB = Number(process.env.BENCH_SIZE_KIB ?? 125);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 25);
const ONCE = join(__dirname, "push-once.cjs");

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

function configuration(i: number): string {
  return `{ ... }: {
  networking.hostName = "host${i}";
  environment.etc."motd".text = "host ${i} of the fleet\\n";
  lite.payload = { paths = ${PATHS}; sizeKiB = ${SIZE_KIB}; seed = "fleet"; };
  system.stateVersion = "25.05";
}
`;
}

const withFleet = <T>(count: number, fn: (world: TargetWorld, proxies: LatencyProxy[], knownHosts: string) => Promise<T>) => withProxiedFleet(count, DELAY_MS, fn);
const fleetHosts = proxiedFleetHosts;

/** CPU time the whole machine spent (every process: ours, sshd and Nix on the targets, the proxies), in seconds. */
function machineCpuSeconds(): number {
  const [, ...fields] = readFileSync("/proc/stat", "utf8").split("\n")[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = fields;
  return (user + nice + system + irq + softirq + steal) / 100;
}

/** Async, because the latency proxies live in this process's event loop. */
function ours(hostsFile: string): Promise<{ ms: number; peakRssMiB: number; statuses: string[]; cpuSeconds: number; deployerCpuSeconds: number }> {
  const cpuBefore = machineCpuSeconds();
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ONCE, hostsFile], { env: { ...process.env, NIX_CONFIG: "substituters =" } });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.on("close", (code) => (code === 0
      ? resolve({ ...JSON.parse(out.trim().split("\n").at(-1)!), cpuSeconds: machineCpuSeconds() - cpuBefore })
      : reject(new Error(err))));
  });
}

function sh(command: string, env: Record<string, string> = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", command], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`${command}: exit ${code}\n${stderr}`))));
  });
}

/** An ssh config naming each host's proxy `benchN`, for the references. */
function proxiesSshConfig(world: TargetWorld, proxies: LatencyProxy[]): string {
  const config = readFileSync(world.sshConfigFile, "utf8");
  const defaults = config.slice(config.indexOf("Host *"));
  const file = `${world.sshConfigFile}.proxies`;
  writeFileSync(file, world.hosts.map((h, i) => `Host bench${i}\n  HostName 127.0.0.1\n  Port ${proxies[i].port}\n  HostKeyAlias ${h.name}\n`).join("") + defaults);
  return file;
}

/** One host by the reference tools: copy, then set the profile and switch. */
function referenceHost(file: string, i: number | string, top: string): string {
  // double quotes: in the parallel reference's script, $1 and $2 expand on this side
  return `nix-copy-closure --to root@bench${i} ${top} && ssh -F ${file} bench${i} "nix-env -p /nix/var/nix/profiles/system --set ${top} && ${top}/bin/switch-to-configuration switch"`;
}

/** What a shell loop (or deploy-rs, one host after another) does. */
async function reference(world: TargetWorld, proxies: LatencyProxy[], toplevels: string[]): Promise<number> {
  const file = proxiesSshConfig(world, proxies);
  const started = process.hrtime.bigint();
  for (const [i, top] of toplevels.entries()) await sh(referenceHost(file, i, top), { NIX_SSHOPTS: `-F ${file}` });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

/** What a parallel script does: every host's copy and switch at once (`xargs -P`), each over its own connection. */
async function parallelReference(world: TargetWorld, proxies: LatencyProxy[], toplevels: string[]): Promise<number> {
  const file = proxiesSshConfig(world, proxies);
  const script = join(dirname(file), "reference-host.sh");
  writeFileSync(script, `#!/bin/sh\nset -e\n${referenceHost(file, "$1", "$2")}\n`);
  const hosts = join(dirname(file), "reference-hosts");
  writeFileSync(hosts, toplevels.map((top, i) => `${i} ${top}\n`).join(""));
  const started = process.hrtime.bigint();
  await sh(`xargs -P ${toplevels.length} -L 1 sh ${script} < ${hosts}`, { NIX_SSHOPTS: `-F ${file}` });
  return Number(process.hrtime.bigint() - started) / 1e6;
}

async function main() {
  await cleanupStaleTargets();
  // npm run bench built what it measures (BENCH_COMMIT); alone, this builds first
  if (process.env.BENCH_COMMIT === undefined) execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, ".."), stdio: "inherit" });
  const dir = mkdtempSync(join(tmpdir(), "bench-push-"));
  try {
    for (let i = 0; i < HOSTS; i++) writeFileSync(join(dir, `host${i}.nix`), configuration(i));
    // the systems, built once (push then only evaluates), and the reference's toplevels
    const toplevels = Array.from({ length: HOSTS }, (_, i) => execFileSync("nix-build", ["<nixpkgs/nixos>", "-A", "system", "--no-out-link",
      "-I", `nixpkgs=${NIXPKGS_LITE}`, "-I", `nixos-config=${join(dir, `host${i}.nix`)}`, "--option", "substituters", ""], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim());
    const closure = execFileSync("nix-store", ["-qR", toplevels[0]], { encoding: "utf8" }).trim().split("\n");
    const narBytes = closure.reduce((sum, p) => sum + Number(execFileSync("nix-store", ["-q", "--size", p], { encoding: "utf8" })), 0);
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}; ${ROUNDS} rounds; ${HOSTS} hosts, ` +
      `${DELAY_MS} ms each way; closure per host: ${closure.length} paths, ${(narBytes / 1048576).toFixed(1)} MiB of NAR`);

    const fleet: number[] = [];
    const single: number[] = [];
    const loop: number[] = [];
    const parallel: number[] = [];
    const peaks: number[] = [];
    const cpu: { fleet: number[]; single: number[]; fleetDeployer: number[]; singleDeployer: number[] } = { fleet: [], single: [], fleetDeployer: [], singleDeployer: [] };
    for (let round = 0; round < ROUNDS; round++) {
      const all = await withFleet(HOSTS, async (world, proxies, knownHosts) => {
        writeFileSync(join(dir, "hosts.json"), JSON.stringify(fleetHosts(dir, world, proxies, knownHosts)));
        return ours(join(dir, "hosts.json"));
      });
      if (!all.statuses.every((s) => s === "deployed")) throw new Error(`push: ${all.statuses.join(", ")}`);
      fleet.push(all.ms);
      peaks.push(all.peakRssMiB);
      cpu.fleet.push(all.cpuSeconds);
      cpu.fleetDeployer.push(all.deployerCpuSeconds);
      const one = await withFleet(1, async (world, proxies, knownHosts) => {
        writeFileSync(join(dir, "hosts.json"), JSON.stringify(fleetHosts(dir, world, proxies, knownHosts)));
        return ours(join(dir, "hosts.json"));
      });
      single.push(one.ms);
      cpu.single.push(one.cpuSeconds);
      cpu.singleDeployer.push(one.deployerCpuSeconds);
      loop.push(await withFleet(HOSTS, (world, proxies) => reference(world, proxies, toplevels)));
      parallel.push(await withFleet(HOSTS, (world, proxies) => parallelReference(world, proxies, toplevels)));
      console.log(`round ${round + 1}/${ROUNDS}: push ${HOSTS} ${fmt(fleet.at(-1)!)}, push 1 ${fmt(single.at(-1)!)}, loop ${fmt(loop.at(-1)!)}, xargs -P ${fmt(parallel.at(-1)!)}`);
    }
    const [f, s, l, p] = [median(fleet), median(single), median(loop), median(parallel)];
    recordTable("push", {
      header: ["measurement", "cdktf-nixos push", "reference", "ratio", "goal"],
      rows: [
        [`P4 ${HOSTS} hosts vs 1 host`, fmt(f), `push to 1 host ${fmt(s)}`, `**${(f / s).toFixed(2)}×**`, "≤ 1.5×"],
        [`P4 ${HOSTS} hosts vs a sequential loop`, fmt(f), `\`nix-copy-closure\` + \`ssh … switch-to-configuration\`, host after host: ${fmt(l)}`, `**${(f / l).toFixed(2)}×**`, "≤ 0.15×"],
        [`P4 ${HOSTS} hosts vs the same in parallel`, fmt(f), `the same per host, all at once (\`xargs -P ${HOSTS}\`): ${fmt(p)}`, `**${(f / p).toFixed(2)}×**`, "≤ 1×"],
        [`peak RSS of the push process (${HOSTS} hosts)`, `${median(peaks).toFixed(0)} MiB`, `closure ${(narBytes / 1048576).toFixed(1)} MiB per host`, "", ""],
        ["CPU time of the deployer (push process and its Nix children)", `${HOSTS} hosts ${median(cpu.fleetDeployer).toFixed(1)} CPU-s`,
          `1 host ${median(cpu.singleDeployer).toFixed(1)} CPU-s`, `${(median(cpu.fleetDeployer) / median(cpu.singleDeployer)).toFixed(1)}×`, ""],
        ["CPU time of the whole machine (deployer, every target's sshd and Nix, the proxies)", `${HOSTS} hosts ${median(cpu.fleet).toFixed(1)} CPU-s`,
          `1 host ${median(cpu.single).toFixed(1)} CPU-s`, `${(median(cpu.fleet) / median(cpu.single)).toFixed(1)}×`, ""],
      ],
      conditions: `${HOSTS} hosts, ${DELAY_MS} ms each way, ${closure.length} paths / ${(narBytes / 1048576).toFixed(1)} MiB of NAR per host, ` +
        `from empty stores, median of ${ROUNDS}; load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
