/**
 * `status` benchmark (P5): `cdktf-nixos status` of 8 namespaced hosts, each behind its own latency proxy (25 ms each
 * way), against 1 host, and against what a script does without it: `ssh host readlink -f /run/current-system` host
 * after host. Measured in one run, through the library's `fleetStatus` (the CLI's only work besides printing):
 *
 *   status of 8 hosts  vs  status of 1 host                  (goal ≤ 1.5×: one round trip per host, all at once)
 *   status of 8 hosts  vs  a sequential ssh loop (OpenSSH)   (for scale)
 *   and the same without the evaluation of what the stack declares (the hosts' part alone).
 *
 * The hosts run a deployed system first (one push), so status compares real systems.
 *
 * Env: BENCH_ROUNDS (5), BENCH_HOSTS (8), BENCH_DELAY_MS (25).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordTable } from "./results";
import { proxiedFleetHosts, withProxiedFleet } from "./proxied-fleet";
import { defaultDependencies } from "../src/deploy/default-dependencies";
import { evaluateFleet } from "../src/nix/fleet-evaluation";
import { buildFleet } from "../src/nix/fleet-build";
import { planPush, push } from "../src/fleet/push";
import { fleetStatus, type StatusReport } from "../src/fleet/status";
import type { FleetHost } from "../src/fleet/inventory";
import type { LatencyProxy } from "../test/harness/latency-proxy";
import { cleanupStaleTargets, type TargetWorld } from "../test/harness/target-hosts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const HOSTS = Number(process.env.BENCH_HOSTS ?? 8);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 25);

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const elapsed = async (work: () => Promise<unknown>) => {
  const started = process.hrtime.bigint();
  await work();
  return Number(process.hrtime.bigint() - started) / 1e6;
};

function configuration(i: number): string {
  return `{ ... }: { networking.hostName = "host${i}"; environment.etc."motd".text = "host ${i}\\n"; system.stateVersion = "25.05"; }\n`;
}

/** Hosts with a deployed system (one push first), each behind a latency proxy. */
function withFleet<T>(dir: string, count: number, fn: (hosts: FleetHost[], world: TargetWorld, proxies: LatencyProxy[]) => Promise<T>): Promise<T> {
  return withProxiedFleet(count, DELAY_MS, async (world, proxies, knownHosts) => {
    const hosts = proxiedFleetHosts(dir, world, proxies, knownHosts);
    const settings = { parallel: 10, dryRun: false, failFast: false, overrides: {} };
    const pushed = await push(planPush(hosts, settings), settings, { ...defaultDependencies(), buildFleet: (members) => buildFleet(members) });
    if (pushed.exitCode !== 0) throw new Error(`push before status: exit ${pushed.exitCode}`);
    return fn(hosts, world, proxies);
  });
}

/** What a script does: one `ssh … readlink -f /run/current-system` per host, host after host. */
function sshLoop(world: TargetWorld, proxies: LatencyProxy[]): Promise<void> {
  const config = readFileSync(world.sshConfigFile, "utf8");
  const file = `${world.sshConfigFile}.proxies`;
  writeFileSync(file, world.hosts.map((h, i) => `Host bench${i}\n  HostName 127.0.0.1\n  Port ${proxies[i]!.port}\n  HostKeyAlias ${h.name}\n`).join("") +
    config.slice(config.indexOf("Host *")));
  const script = world.hosts.map((_, i) => `ssh -F ${file} bench${i} readlink -f /run/current-system >/dev/null`).join(" && ");
  return new Promise((resolve, reject) => {
    const child = spawn("bash", ["-c", script], { stdio: ["ignore", "ignore", "pipe"] });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (code) => (code === 0 ? resolve() : reject(new Error(`ssh loop: exit ${code}\n${stderr}`))));
  });
}

async function main() {
  await cleanupStaleTargets();
  if (process.env.BENCH_COMMIT === undefined) execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, ".."), stdio: "inherit" });
  const dir = mkdtempSync(join(tmpdir(), "bench-status-"));
  try {
    for (let i = 0; i < HOSTS; i++) writeFileSync(join(dir, `host${i}.nix`), configuration(i));
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}; ${ROUNDS} rounds; ${HOSTS} hosts, ${DELAY_MS} ms each way`);
    const m = { many: [] as number[], one: [] as number[], manyHosts: [] as number[], oneHosts: [] as number[], loop: [] as number[] };
    const measure = async (count: number, total: number[], hostsOnly: number[], loop?: number[]) => withFleet(dir, count, async (hosts, world, proxies) => {
      const plan = planPush(hosts, { overrides: {} });
      const deps = defaultDependencies();
      let report: StatusReport | undefined;
      total.push(await elapsed(async () => (report = await fleetStatus(plan, deps, { parallel: 20 }))));
      if (report?.exitCode !== 0) throw new Error(`status: ${JSON.stringify(report?.hosts.map((h) => [h.name, h.state, h.reason]))}`);
      // the hosts' part alone: what the stack declares evaluated beforehand
      const declared = evaluateFleet(plan.flatMap((h) => (h.ready ? [h.build] : [])));
      hostsOnly.push(await elapsed(() => fleetStatus(plan, { ...deps, evaluateFleet: () => declared }, { parallel: 20 })));
      if (loop !== undefined) loop.push(await elapsed(() => sshLoop(world, proxies)));
    });
    for (let round = 0; round < ROUNDS; round++) {
      await measure(HOSTS, m.many, m.manyHosts, m.loop);
      await measure(1, m.one, m.oneHosts);
      console.log(`round ${round + 1}/${ROUNDS}: status ${HOSTS} ${fmt(m.many.at(-1)!)}, status 1 ${fmt(m.one.at(-1)!)}, ` +
        `hosts only ${fmt(m.manyHosts.at(-1)!)} / ${fmt(m.oneHosts.at(-1)!)}, ssh loop ${fmt(m.loop.at(-1)!)}`);
    }
    const [many, one, manyHosts, oneHosts, loop] = [median(m.many), median(m.one), median(m.manyHosts), median(m.oneHosts), median(m.loop)];
    recordTable("status", {
      header: ["measurement", "cdktf-nixos status", "reference", "ratio", "goal"],
      rows: [
        [`P5 ${HOSTS} hosts vs 1 host`, fmt(many), `status of 1 host ${fmt(one)}`, `**${(many / one).toFixed(2)}×**`, "≤ 1.5×"],
        [`P5 ${HOSTS} hosts vs 1 host, the hosts' part (evaluation excluded)`, fmt(manyHosts), `1 host ${fmt(oneHosts)}`, `**${(manyHosts / oneHosts).toFixed(2)}×**`, "≤ 1.5×"],
        [`P5 ${HOSTS} hosts vs a sequential ssh loop`, fmt(many), `\`ssh host readlink -f /run/current-system\`, host after host: ${fmt(loop)}`, `${(many / loop).toFixed(2)}×`, ""],
      ],
      conditions: `${HOSTS} hosts, ${DELAY_MS} ms each way, each running a deployed system; status includes its one evaluation of the stack; ` +
        `median of ${ROUNDS}; load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
