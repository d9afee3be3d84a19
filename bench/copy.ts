/**
 * Copy benchmark: cdktf-nixos's copy over ssh2 against the reference tools, measured in the same run on namespaced
 * targets with their own stores, each measurement against a fresh target. Reports medians, spreads and ratios, never
 * pass/fail.
 *
 *   P1  cold copy of ~200 paths / ~500 MB on the LAN     vs nix-copy-closure --to (and nix-store --export | ssh import)
 *   P1w the same through a 25 ms-each-way latency proxy  vs nix-copy-closure through the same proxy
 *   P1z a compressible closure (~3.2x with zstd) through 25 ms each way at 100 Mbit/s
 *                                                        vs nix-copy-closure --gzip, and vs our own --compress none
 *   P2  no-op redeploy (everything already there)        vs nix-copy-closure's no-op
 *   P3  one-path change: bytes on the wire                vs that change's NAR size
 * Beside wall time: CPU-seconds of both ends (the deploying process tree, and the target's sshd with everything it
 * ran), and the peak RSS of our copy process.
 *
 * Env: BENCH_ROUNDS (5), BENCH_PATHS (200), BENCH_SIZE_KIB (2500), BENCH_DELAY_MS (25), BENCH_Z_PATHS (80),
 * BENCH_RATE_MBIT (100).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordTable } from "./results";
import { buildSystem, closureOf } from "../test/harness/fixture";
import { startLatencyProxy, type LatencyProxy } from "../test/harness/latency-proxy";
import { cleanupStaleTargets, startTargets, type TargetHost, type TargetWorld } from "../test/harness/target-hosts";

const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 5);
const PATHS = Number(process.env.BENCH_PATHS ?? 200);
const SIZE_KIB = Number(process.env.BENCH_SIZE_KIB ?? 2500);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 25);
const Z_PATHS = Number(process.env.BENCH_Z_PATHS ?? 80);
const RATE_MBIT = Number(process.env.BENCH_RATE_MBIT ?? 100);
const ONCE = join(__dirname, "copy-once.cjs");
const TIME = "/usr/bin/time";

interface Sample {
  ms: number;
  /** user + system CPU-seconds of the deploying process tree */
  clientCpu: number;
  /** user + system CPU-seconds of the target's sshd and everything it ran */
  targetCpu: number;
  /** ours only: from connecting to the end, without Node's start-up (~0.15 s) */
  inProcessMs?: number;
  wireBytes?: number;
  socketBytes?: number;
  peakRssMiB?: number;
  transport?: { kind: string; dataChannels: number; compressedSegments: number; segments: number };
}

const scratch = mkdtempSync(join(tmpdir(), "bench-copy-"));

/** Runs argv under /usr/bin/time: wall ms, CPU-seconds of the whole process tree, stdout. */
function timed(argv: string[], env: Record<string, string> = {}): Promise<{ ms: number; cpu: number; stdout: string }> {
  const timeFile = join(scratch, "time");
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(TIME, ["-f", "%U %S", "-o", timeFile, ...argv], { stdio: ["ignore", "pipe", "pipe"], env: { ...process.env, ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c) => (stdout += c));
    child.stderr.on("data", (c) => (stderr += c));
    child.on("close", (code) => {
      const ms = Number(process.hrtime.bigint() - started) / 1e6;
      if (code !== 0) return reject(new Error(`${argv.join(" ")}: exit ${code}\n${stderr}`));
      const [user, sys] = readFileSync(timeFile, "utf8").trim().split("\n").at(-1)!.split(" ").map(Number);
      resolve({ ms, cpu: user! + sys!, stdout });
    });
  });
}

/** CPU-seconds the target's sshd (PID 1 of its namespace) and its reaped children have used, once they are done. */
async function targetCpu(host: TargetHost): Promise<number> {
  for (let i = 0; i < 100; i++) {
    const children = (await host.exec("cat /proc/1/task/1/children")).stdout.trim();
    if (children === "") break;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  const fields = (await host.exec("cat /proc/1/stat")).stdout.trim().split(") ")[1]!.split(" ");
  // utime, stime, cutime, cstime are fields 14-17 of stat(5); fields[0] here is field 3
  const ticks = [11, 12, 13, 14].reduce((sum, i) => sum + Number(fields[i]), 0);
  return ticks / Number(execFileSync("getconf", ["CLK_TCK"], { encoding: "utf8" }));
}

async function ours(host: TargetHost, address: string, port: number, world: TargetWorld, knownHosts: string, path: string, compress = "auto"): Promise<Sample> {
  const before = await targetCpu(host);
  const run = await timed([process.execPath, ONCE, address, String(port), world.clientKeyFile, knownHosts, path, compress]);
  const report = JSON.parse(run.stdout.trim().split("\n").at(-1)!) as Omit<Sample, "ms" | "clientCpu" | "targetCpu">;
  return { ...report, ms: run.ms, clientCpu: run.cpu, targetCpu: (await targetCpu(host)) - before };
}

async function reference(host: TargetHost, command: string, sshConfig: string): Promise<Sample> {
  const before = await targetCpu(host);
  const run = await timed(["bash", "-c", command], { NIX_SSHOPTS: `-F ${sshConfig}` });
  return { ms: run.ms, clientCpu: run.cpu, targetCpu: (await targetCpu(host)) - before };
}

/** A fresh single-target world: an empty store for every cold measurement. */
async function withTarget<T>(fn: (world: TargetWorld, host: TargetHost) => Promise<T>): Promise<T> {
  const world = await startTargets(1);
  try {
    return await fn(world, world.hosts[0]!);
  } finally {
    await world.stop();
  }
}

/** The target behind a latency (and optionally rate-limited) proxy, for both tools. */
async function throughProxy<T>(
  world: TargetWorld,
  host: TargetHost,
  link: { delayMs: number; bytesPerSecond?: number },
  fn: (p: { proxy: LatencyProxy; knownHosts: string; sshConfig: string }) => Promise<T>,
): Promise<T> {
  const proxy = await startLatencyProxy({ target: { host: host.address, port: host.port }, ...link });
  try {
    const knownHosts = `${world.knownHostsFile}.proxy`;
    writeFileSync(knownHosts, `[127.0.0.1]:${proxy.port} ${host.hostKey}\n`);
    const config = readFileSync(world.sshConfigFile, "utf8");
    const sshConfig = `${world.sshConfigFile}.proxy`;
    writeFileSync(sshConfig, `Host target1\n  HostName 127.0.0.1\n  Port ${proxy.port}\n  HostKeyAlias target1\n${config.slice(config.indexOf("Host *"))}`);
    return await fn({ proxy, knownHosts, sshConfig });
  } finally {
    await proxy.close();
  }
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const spread = (xs: number[], unit: (x: number) => string) => `${unit(Math.min(...xs))}–${unit(Math.max(...xs))}`;
const s = (ms: number) => `${(ms / 1000).toFixed(2)} s`;
const cpu = (x: number) => `${x.toFixed(2)}`;
const narSize = (paths: string[]) => paths.reduce((sum, p) => sum + Number(execFileSync("nix-store", ["--query", "--size", p], { encoding: "utf8" })), 0);

async function main() {
  await cleanupStaleTargets();
  console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}; ${ROUNDS} rounds`);
  const system = await buildSystem({ config: { networking: { hostName: "bench" }, lite: { payload: { paths: PATHS, sizeKiB: SIZE_KIB, seed: "bench" } } } });
  const zsystem = await buildSystem({ config: { networking: { hostName: "bench" }, lite: { payload: { paths: Z_PATHS, sizeKiB: SIZE_KIB, seed: "benchz", compressible: true } } } });
  const closure = await closureOf(system.toplevel);
  const zclosure = await closureOf(zsystem.toplevel);
  const narBytes = narSize(closure);
  const zNarBytes = narSize(zclosure);
  const zstdRatio = (() => {
    const sample = execFileSync("nix-store", ["--dump", zclosure.find((p) => p.includes("lite-payload"))!], { maxBuffer: 1 << 30 });
    return sample.length / execFileSync("zstd", ["-q", "-3", "-c"], { input: sample, maxBuffer: 1 << 30 }).length;
  })();
  console.log(`closure: ${closure.length} paths, ${(narBytes / 1048576).toFixed(0)} MiB of NAR`);
  console.log(`compressible closure: ${zclosure.length} paths, ${(zNarBytes / 1048576).toFixed(0)} MiB of NAR, a payload path compresses ${zstdRatio.toFixed(2)}x with zstd -3\n`);
  const rate = (RATE_MBIT * 1e6) / 8;
  // read both closures once, so that no tool pays for a cold page cache
  for (const path of [...closure, ...zclosure]) execFileSync("sh", ["-c", `nix-store --dump ${path} > /dev/null`]);

  const r: Record<string, Sample[]> = {
    ours: [], ncc: [], exportImport: [], oursNoop: [], nccNoop: [], oursW: [], nccW: [], oursZ: [], oursZNone: [], nccZ: [],
  };
  for (let round = 0; round < ROUNDS; round++) {
    // alternate which tool goes first, so drift in the machine's load does not favour one
    const flip = round % 2 === 1;
    const p1 = [
      async () => r.ours.push(await withTarget((w, h) => ours(h, h.address, 22, w, w.knownHostsFile, system.toplevel))),
      async () => r.ncc.push(await withTarget((w, h) => reference(h, `nix-copy-closure --to root@target1 ${system.toplevel}`, w.sshConfigFile))),
    ];
    for (const step of flip ? p1.reverse() : p1) await step();
    r.exportImport.push(await withTarget((w, h) =>
      reference(h, `nix-store --export $(nix-store -qR ${system.toplevel}) | ssh -F ${w.sshConfigFile} target1 nix-store --import >/dev/null`, w.sshConfigFile)));
    await withTarget(async (w, h) => {
      await ours(h, h.address, 22, w, w.knownHostsFile, system.toplevel);
      r.oursNoop.push(await ours(h, h.address, 22, w, w.knownHostsFile, system.toplevel));
      r.nccNoop.push(await reference(h, `nix-copy-closure --to root@target1 ${system.toplevel}`, w.sshConfigFile));
    });
    const far = [
      async () => r.oursW.push(await withTarget((w, h) => throughProxy(w, h, { delayMs: DELAY_MS }, (p) => ours(h, "127.0.0.1", p.proxy.port, w, p.knownHosts, system.toplevel)))),
      async () => r.nccW.push(await withTarget((w, h) => throughProxy(w, h, { delayMs: DELAY_MS }, (p) => reference(h, `nix-copy-closure --to root@target1 ${system.toplevel}`, p.sshConfig)))),
    ];
    for (const step of flip ? far.reverse() : far) await step();
    const slow = { delayMs: DELAY_MS, bytesPerSecond: rate };
    const z = [
      async () => r.oursZ.push(await withTarget((w, h) => throughProxy(w, h, slow, (p) => ours(h, "127.0.0.1", p.proxy.port, w, p.knownHosts, zsystem.toplevel)))),
      async () => r.oursZNone.push(await withTarget((w, h) => throughProxy(w, h, slow, (p) => ours(h, "127.0.0.1", p.proxy.port, w, p.knownHosts, zsystem.toplevel, "none")))),
      async () => r.nccZ.push(await withTarget((w, h) => throughProxy(w, h, slow, (p) => reference(h, `nix-copy-closure --gzip --to root@target1 ${zsystem.toplevel}`, p.sshConfig)))),
    ];
    for (const step of flip ? z.reverse() : z) await step();
    process.stdout.write(`round ${round + 1}/${ROUNDS} done (P1 ${s(r.ours.at(-1)!.ms)} vs ${s(r.ncc.at(-1)!.ms)}, P1w ${s(r.oursW.at(-1)!.ms)} vs ${s(r.nccW.at(-1)!.ms)}, P1z ${s(r.oursZ.at(-1)!.ms)} vs ${s(r.nccZ.at(-1)!.ms)})\n`);
  }

  // P3: a change that replaces one payload path (and the paths that refer to it)
  const changed = await buildSystem({ config: { networking: { hostName: "bench" }, lite: { payload: { paths: PATHS, sizeKiB: SIZE_KIB, seed: "bench", touch: "1" } } } });
  const p3 = await withTarget(async (w, h) => {
    await ours(h, h.address, 22, w, w.knownHostsFile, system.toplevel);
    return ours(h, h.address, 22, w, w.knownHostsFile, changed.toplevel);
  });
  const before = new Set(closure);
  const newPaths = (await closureOf(changed.toplevel)).filter((p) => !before.has(p));
  const newNar = narSize(newPaths);

  const m = (k: string, f: (x: Sample) => number = (x) => x.ms) => median(r[k]!.map(f));
  const row = (name: string, a: string, b: string, label: string, time: (x: Sample) => number = (x) => x.ms): string[] => {
    const ratio = m(a, time) / m(b);
    const cpuRatio = (m(a, (x) => x.clientCpu + x.targetCpu)) / (m(b, (x) => x.clientCpu + x.targetCpu));
    return [name, `${s(m(a, time))} (${spread(r[a]!.map(time), s)})`, `${label} ${s(m(b))} (${spread(r[b]!.map((x) => x.ms), s)})`, `**${ratio.toFixed(2)}×**`,
      `${cpu(m(a, (x) => x.clientCpu))} + ${cpu(m(a, (x) => x.targetCpu))} vs ${cpu(m(b, (x) => x.clientCpu))} + ${cpu(m(b, (x) => x.targetCpu))} = **${cpuRatio.toFixed(2)}×**`];
  };
  const how = (k: string) => {
    const t = r[k]![0]!.transport;
    return t ? `${t.kind}, ${t.dataChannels} channel${t.dataChannels > 1 ? "s" : ""}${t.compressedSegments > 0 ? `, zstd on ${t.compressedSegments}/${t.segments} segments` : ""}` : "";
  };
  const peak = Math.max(...r.ours.map((x) => x.peakRssMiB ?? 0));
  const rows = [
    row(`P1 cold copy, ${closure.length} paths / ${(narBytes / 1048576).toFixed(0)} MiB (${how("ours")})`, "ours", "ncc", "nix-copy-closure"),
    row("P1, our time without Node's start-up", "ours", "ncc", "nix-copy-closure", (x) => x.inProcessMs ?? x.ms),
    row("P1 vs export \\| ssh import", "ours", "exportImport", "export \\| ssh import"),
    row(`P1w cold copy, ${DELAY_MS} ms each way (${how("oursW")})`, "oursW", "nccW", "nix-copy-closure"),
    row(`P1z compressible ${(zNarBytes / 1048576).toFixed(0)} MiB, ${RATE_MBIT} Mbit/s + ${DELAY_MS} ms each way (${how("oursZ")})`, "oursZ", "nccZ", "nix-copy-closure --gzip"),
    row("P1z vs our own --compress none", "oursZ", "oursZNone", "cdktf-nixos --compress none"),
    row("P2 no-op redeploy", "oursNoop", "nccNoop", "nix-copy-closure"),
    row("P2, our time without Node's start-up", "oursNoop", "nccNoop", "nix-copy-closure", (x) => x.inProcessMs ?? x.ms),
    ["P3 one-path change: SSH channel bytes (TCP bytes)", `${p3.wireBytes} B (${p3.socketBytes} B)`, `NAR size of the ${newPaths.length} new paths: ${newNar} B`,
      `**${((p3.wireBytes ?? 0) / newNar).toFixed(3)}×** (${((p3.socketBytes ?? 0) / newNar).toFixed(3)}×)`, ""],
    ["P1z SSH channel bytes, ours vs --compress none", `${(m("oursZ", (x) => x.wireBytes ?? 0) / 1048576).toFixed(0)} MiB`, `${(m("oursZNone", (x) => x.wireBytes ?? 0) / 1048576).toFixed(0)} MiB`,
      `${(m("oursZ", (x) => x.wireBytes ?? 0) / m("oursZNone", (x) => x.wireBytes ?? 0)).toFixed(2)}×`, ""],
    ["peak RSS of our copy process (P1)", `${peak.toFixed(0)} MiB`, `closure ${(narBytes / 1048576).toFixed(0)} MiB`, "", ""],
  ];
  recordTable("copy", {
    header: ["measurement", "cdktf-nixos (spread)", "reference (spread)", "wall ratio", "CPU-s client + target, ours vs reference"],
    rows,
    conditions: `median of ${ROUNDS} rounds in alternating order, a fresh target each; load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
  });
}

main()
  .catch((err) => {
    console.error(err);
    process.exitCode = 1;
  })
  .finally(() => rmSync(scratch, { recursive: true, force: true }));
