// One `push` by cdktf-nixos in a process of its own (the fleet core, as the CLI runs it after reading the
// inventory), so its time and peak memory are its alone.
// usage: node bench/push-once.cjs HOSTS.json   (a JSON array of FleetHost)
// prints one JSON line: { ms, statuses, bytesSent, peakRssMiB, deployerCpuSeconds }
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const lib = join(__dirname, "..", "lib");
const { planPush, push } = require(join(lib, "fleet", "push.js"));
const { buildFleet } = require(join(lib, "nix", "fleet-build.js"));
const { defaultDependencies } = require(join(lib, "deploy", "default-dependencies.js"));

async function main() {
  const hosts = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const settings = { parallel: 10, dryRun: false, failFast: false, reactivate: false, lockTimeoutSeconds: 300, activationTimeoutSeconds: 600 };
  const started = process.hrtime.bigint();
  const report = await push(planPush(hosts, settings), settings, { ...defaultDependencies({}), buildFleet: (members) => buildFleet(members) });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (report.exitCode !== 0) throw new Error(JSON.stringify(report.hosts.map((h) => [h.name, h.status, h.error && h.error.message])));
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  // utime, stime, cutime, cstime (fields 14-17 of /proc/self/stat, clock ticks): this process and the children it
  // waited for (the local nix-instantiate, nix-store --realise and nix-store --serve processes)
  const stat = readFileSync("/proc/self/stat", "utf8");
  const ticks = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(11, 15).map(Number);
  process.stdout.write(`${JSON.stringify({
    ms,
    statuses: report.hosts.map((h) => h.status),
    bytesSent: report.hosts.reduce((sum, h) => sum + (h.result ? h.result.bytesSent : 0), 0),
    peakRssMiB: peak ? Number(peak[1]) / 1024 : null,
    deployerCpuSeconds: ticks.reduce((a, b) => a + b, 0) / 100,
  })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exitCode = 1;
});
