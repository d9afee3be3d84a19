// One `push` by cdktf-nixos in a process of its own (the fleet core, as the CLI runs it after reading the
// inventory), so its time and peak memory are its alone.
// usage: node bench/push-once.cjs HOSTS.json   (a JSON array of FleetHost)
//   BENCH_PUSH_OVERRIDES='{"cache":"s3://…",…}': settings as push's flags would give them
// prints one JSON line: { ms, statuses, bytesSent, peakRssMiB, deployerCpuSeconds }
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const lib = join(__dirname, "..", "lib");
const { planPush, push } = require(join(lib, "fleet", "push.js"));
const { buildFleet } = require(join(lib, "nix", "fleet-build.js"));
const { defaultDependencies } = require(join(lib, "deploy", "default-dependencies.js"));

async function main() {
  const hosts = JSON.parse(readFileSync(process.argv[2], "utf8"));
  const overrides = JSON.parse(process.env.BENCH_PUSH_OVERRIDES || "{}");
  const settings = { parallel: 10, dryRun: false, failFast: false, overrides };
  const started = process.hrtime.bigint();
  const { withKeys } = require(join(lib, "fleet", "push.js"));
  const plan = await withKeys(planPush(hosts, settings), { dryRun: false });
  const report = await push(plan, settings, { ...defaultDependencies({}), buildFleet: (members) => buildFleet(members) });
  const ms = Number(process.hrtime.bigint() - started) / 1e6;
  if (report.exitCode !== 0) throw new Error(JSON.stringify(report.hosts.map((h) => [h.name, h.status, h.error && h.error.message, h.error && h.error.cause && String(h.error.cause.stack)])));
  const peak = /VmHWM:\s+(\d+) kB/.exec(readFileSync("/proc/self/status", "utf8"));
  // utime, stime, cutime, cstime (fields 14-17 of /proc/self/stat, clock ticks): this process and the children it
  // waited for (the local nix-instantiate, nix-store --realise and nix-store --serve processes)
  const stat = readFileSync("/proc/self/stat", "utf8");
  const ticks = stat.slice(stat.lastIndexOf(")") + 2).split(" ").slice(11, 15).map(Number);
  process.stdout.write(`${JSON.stringify({
    ms,
    statuses: report.hosts.map((h) => h.status),
    bytesSent: report.hosts.reduce((sum, h) => sum + (h.result ? h.result.bytesSent : 0), 0),
    pathsCopied: report.hosts.map((h) => (h.result ? h.result.pathsCopied : null)),
    fetched: report.hosts.map((h) => (h.result && h.result.cacheFetch ? h.result.cacheFetch.pathsFetched : null)),
    caches: report.caches || [],
    peakRssMiB: peak ? Number(peak[1]) / 1024 : null,
    deployerCpuSeconds: ticks.reduce((a, b) => a + b, 0) / 100,
  })}\n`);
}

main().catch((err) => {
  process.stderr.write(`${err.stack ?? err}\n`);
  process.exitCode = 1;
});
