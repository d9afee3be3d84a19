/**
 * Copy benchmark: cdktf-nixos's serve-protocol copy over ssh2 against the reference tools, measured in the same run
 * on namespaced targets with their own stores. Reports medians and ratios, never pass/fail.
 *
 *   P1  cold copy of ~200 paths / ~500 MB    vs nix-copy-closure --to, and nix-store --export | ssh nix-store --import
 *   P1w the same through a 25 ms-each-way latency proxy, vs nix-copy-closure through the same proxy
 *   P2  no-op redeploy (everything already there) vs nix-copy-closure's no-op
 *   P3  bytes sent for a one-path change vs that change's NAR size
 *   and the peak RSS of our copy process during P1.
 *
 * Env: BENCH_ROUNDS (5), BENCH_PATHS (200), BENCH_SIZE_KIB (2500), BENCH_DELAY_MS (25).
 */
import { execFileSync, spawn } from "node:child_process";
import { readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import { buildSystem, closureOf } from "../test/harness/fixture";
import { startLatencyProxy } from "../test/harness/latency-proxy";
import { cleanupStaleTargets, startTargets, type TargetWorld } from "../test/harness/target-hosts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PATHS = Number(process.env.BENCH_PATHS ?? 200);
const SIZE_KIB = Number(process.env.BENCH_SIZE_KIB ?? 2500);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 25);
const ONCE = join(__dirname, "copy-once.cjs");

interface Sample {
  ms: number;
  bytesSent?: number;
  peakRssMiB?: number;
}

function sh(command: string, env: Record<string, string> = {}): Promise<number> {
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn("bash", ["-c", command], { stdio: ["ignore", "ignore", "pipe"], env: { ...process.env, ...env } });
    let stderr = "";
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (code) => (code === 0 ? resolve(Number(process.hrtime.bigint() - started) / 1e6) : reject(new Error(`${command}: exit ${code}\n${stderr}`))));
  });
}

/** Async, because the latency proxy lives in this process's event loop. */
function ours(host: string, port: number, world: TargetWorld, knownHosts: string, path: string): Promise<Sample> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ONCE, host, String(port), world.clientKeyFile, knownHosts, path]);
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!) as Sample) : reject(new Error(err))));
  });
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

/** A fresh single-target world: an empty store for every cold measurement. */
async function withTarget<T>(fn: (world: TargetWorld) => Promise<T>): Promise<T> {
  const world = await startTargets(1);
  try {
    return await fn(world);
  } finally {
    await world.stop();
  }
}

async function main() {
  await cleanupStaleTargets();
  const load = readFileSync("/proc/loadavg", "utf8").trim();
  console.log(`load average before: ${load}; ${ROUNDS} rounds; closure: ${PATHS} payload paths of ${SIZE_KIB} KiB`);
  const system = await buildSystem({ config: { networking: { hostName: "bench" }, lite: { payload: { paths: PATHS, sizeKiB: SIZE_KIB, seed: "bench" } } } });
  const closure = await closureOf(system.toplevel);
  const narBytes = closure.reduce((sum, p) => sum + Number(execFileSync("nix-store", ["--query", "--size", p], { encoding: "utf8" })), 0);
  console.log(`closure: ${closure.length} paths, ${(narBytes / 1048576).toFixed(0)} MiB of NAR\n`);

  const results: Record<string, Sample[]> = { ours: [], ncc: [], exportImport: [], oursW: [], nccW: [], oursNoop: [], nccNoop: [] };
  for (let round = 0; round < ROUNDS; round++) {
    // P1, each tool against an empty store
    results.ours.push(await withTarget(async (w) => ours(w.hosts[0].address, 22, w, w.knownHostsFile, system.toplevel)));
    results.ncc.push({ ms: await withTarget((w) => sh(`nix-copy-closure --to root@target1 ${system.toplevel}`, { NIX_SSHOPTS: `-F ${w.sshConfigFile}` })) });
    results.exportImport.push({
      ms: await withTarget((w) => sh(`nix-store --export $(nix-store -qR ${system.toplevel}) | ssh -F ${w.sshConfigFile} target1 nix-store --import >/dev/null`)),
    });
    // P2: the same tools again on a target that has everything
    await withTarget(async (w) => {
      await ours(w.hosts[0].address, 22, w, w.knownHostsFile, system.toplevel);
      results.oursNoop.push(await ours(w.hosts[0].address, 22, w, w.knownHostsFile, system.toplevel));
      results.nccNoop.push({ ms: await sh(`nix-copy-closure --to root@target1 ${system.toplevel}`, { NIX_SSHOPTS: `-F ${w.sshConfigFile}` }) });
    });
    // P1w: through the latency proxy
    for (const tool of ["oursW", "nccW"] as const) {
      results[tool].push(await withTarget(async (w) => {
        const t = w.hosts[0];
        const proxy = await startLatencyProxy({ target: { host: t.address, port: t.port }, delayMs: DELAY_MS });
        try {
          if (tool === "oursW") {
            const kh = `${w.knownHostsFile}.proxy`;
            writeFileSync(kh, `[127.0.0.1]:${proxy.port} ${t.hostKey}\n`);
            return await ours("127.0.0.1", proxy.port, w, kh, system.toplevel);
          }
          const cfg = `${w.sshConfigFile}.proxy`;
          const defaults = readFileSync(w.sshConfigFile, "utf8").slice(readFileSync(w.sshConfigFile, "utf8").indexOf("Host *"));
          writeFileSync(cfg, `Host target1\n  HostName 127.0.0.1\n  Port ${proxy.port}\n  HostKeyAlias target1\n${defaults}`);
          return { ms: await sh(`nix-copy-closure --to root@target1 ${system.toplevel}`, { NIX_SSHOPTS: `-F ${cfg}` }) };
        } finally {
          await proxy.close();
        }
      }));
    }
    process.stdout.write(`round ${round + 1}/${ROUNDS} done\n`);
  }

  // P3: a change that replaces one payload path (and the paths that refer to it)
  const changed = await buildSystem({ config: { networking: { hostName: "bench" }, lite: { payload: { paths: PATHS, sizeKiB: SIZE_KIB, seed: "bench", touch: "1" } } } });
  const p3 = await withTarget(async (w) => {
    await ours(w.hosts[0].address, 22, w, w.knownHostsFile, system.toplevel);
    return ours(w.hosts[0].address, 22, w, w.knownHostsFile, changed.toplevel);
  });
  const before = new Set(closure);
  const newPaths = (await closureOf(changed.toplevel)).filter((p) => !before.has(p));
  const newNar = newPaths.reduce((sum, p) => sum + Number(execFileSync("nix-store", ["--query", "--size", p], { encoding: "utf8" })), 0);

  const m = Object.fromEntries(Object.entries(results).map(([k, v]) => [k, median(v.map((s) => s.ms))]));
  const peak = Math.max(...results.ours.map((s) => s.peakRssMiB ?? 0));
  const lines = [
    `| measurement | cdktf-nixos | reference | ratio |`,
    `|---|---|---|---|`,
    `| P1 cold copy, ${closure.length} paths / ${(narBytes / 1048576).toFixed(0)} MiB | ${fmt(m.ours)} | nix-copy-closure ${fmt(m.ncc)} | **${(m.ours / m.ncc).toFixed(2)}×** |`,
    `| P1 vs export \\| ssh import | ${fmt(m.ours)} | ${fmt(m.exportImport)} | ${(m.ours / m.exportImport).toFixed(2)}× |`,
    `| P1w cold copy, ${DELAY_MS} ms each way | ${fmt(m.oursW)} | nix-copy-closure ${fmt(m.nccW)} | **${(m.oursW / m.nccW).toFixed(2)}×** |`,
    `| P2 no-op redeploy | ${fmt(m.oursNoop)} | nix-copy-closure ${fmt(m.nccNoop)} | ${(m.oursNoop / m.nccNoop).toFixed(2)}× |`,
    `| P3 one-path change: bytes sent | ${p3.bytesSent} B | NAR size of the ${newPaths.length} new paths: ${newNar} B | ${((p3.bytesSent ?? 0) / newNar).toFixed(2)}× |`,
    `| peak RSS of our copy process (P1) | ${peak.toFixed(0)} MiB | closure ${(narBytes / 1048576).toFixed(0)} MiB | ${(peak / (narBytes / 1048576)).toFixed(2)}× |`,
  ];
  console.log(`\nmedians of ${ROUNDS} (load average after: ${readFileSync("/proc/loadavg", "utf8").trim()})\n`);
  console.log(lines.join("\n"));
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
