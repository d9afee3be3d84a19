/**
 * Binary cache benchmark (C1, C2): what leaves the deploying machine when a fleet is pushed through a binary cache
 * instead of directly, counted on the wire by latency proxies (one in front of every host, one in front of the S3
 * server the deploying machine uploads to; the hosts reach the S3 server directly, as EC2 instances reach S3).
 *
 *   C1  bytes out of the deploying machine for 1, 4 and 8 hosts: direct vs through the cache (goal: the cache ≈ 1×
 *       one closure, whatever the number of hosts)
 *   C2  push to 8 hosts of a 100 MiB shared closure with the deploying machine's uplink capped at 20 Mbit/s (one
 *       link shared by all its connections) and the hosts' link to the cache uncapped: through the cache vs direct
 *       (goal ≤ 0.25×)
 *
 * Every measurement starts from empty target stores and an empty bucket. The S3 server is the npm s3rver (uploads
 * through the AWS SDK, as to S3); the hosts' Nix 2.8 reads it over http://.
 *
 * Env: BENCH_CACHE_MIB (20: C1's closure), BENCH_CACHE_CAPPED_MIB (100: C2's), BENCH_CACHE_MBIT (20), BENCH_DELAY_MS (10).
 */
import { execFileSync, spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { recordTable } from "./results";
import { proxiedFleetHosts, withProxiedFleet } from "./proxied-fleet";
import { hostSideAddress } from "../test/harness/host-util";
import { sharedLink, startLatencyProxy, type SharedLink } from "../test/harness/latency-proxy";
import { startS3Server } from "../test/harness/s3-server";
import { cleanupStaleTargets, run } from "../test/harness/target-hosts";

const C1_MIB = Number(process.env.BENCH_CACHE_MIB ?? 20);
const C2_MIB = Number(process.env.BENCH_CACHE_CAPPED_MIB ?? 100);
const MBIT = Number(process.env.BENCH_CACHE_MBIT ?? 20);
const DELAY_MS = Number(process.env.BENCH_DELAY_MS ?? 10);
const ONCE = join(__dirname, "push-once.cjs");
const PAYLOAD_PATHS = 20;

const mib = (bytes: number) => `${(bytes / 1048576).toFixed(1)} MiB`;
const fmt = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

/** Hosts share an incompressible payload (the fleet's packages) and differ in their name. */
function configuration(i: number, payloadMiB: number, seed: string): string {
  return `{ ... }: {
  networking.hostName = "host${i}";
  lite.payload = { paths = ${PAYLOAD_PATHS}; sizeKiB = ${Math.round((payloadMiB * 1024) / PAYLOAD_PATHS)}; seed = "${seed}"; };
  system.stateVersion = "25.05";
}
`;
}

interface Measured { readonly ms: number; readonly bytesOut: number; readonly pathsCopied: number; readonly fetched: number }

/** One push to `hosts` fresh hosts, direct or through a fresh bucket, with the deploying machine's traffic counted. */
async function pushOnce(dir: string, hosts: number, through: "direct" | "cache", uplink?: SharedLink): Promise<Measured> {
  return withProxiedFleet(hosts, DELAY_MS, async (world, proxies, knownHosts) => {
    const cacheAddress = hostSideAddress((Number(world.hosts[0]!.address.split(".")[3]) - 2) / 4);
    for (const target of world.hosts.slice(1)) {
      await target.exec(`ip route add default via ${hostSideAddress((Number(target.address.split(".")[3]) - 2) / 4)}`);
    }
    const s3 = await startS3Server(cacheAddress, ["bench-cache"]);
    const s3Port = Number(new URL(s3.endpoint).port);
    const s3Proxy = await startLatencyProxy({ target: { host: cacheAddress, port: s3Port }, delayMs: DELAY_MS, uplink });
    try {
      writeFileSync(join(dir, "hosts.json"), JSON.stringify(proxiedFleetHosts(dir, world, proxies, knownHosts)));
      const overrides = through === "direct" ? {} : {
        cache: `s3://bench-cache?region=us-east-1&endpoint=http://127.0.0.1:${s3Proxy.port}`,
        cacheSubstituter: `${s3.endpoint}/bench-cache`,
        cacheSigningKeyFile: join(dir, "cache.secret"),
      };
      const result = await once(join(dir, "hosts.json"), overrides, s3.env);
      if (!result.statuses.every((s: string) => s === "deployed")) throw new Error(`push: ${result.statuses.join(", ")}`);
      return {
        ms: result.ms,
        bytesOut: proxies.reduce((n, p) => n + p.bytes.up, 0) + s3Proxy.bytes.up,
        pathsCopied: (result.pathsCopied as number[]).reduce((a, b) => a + b, 0),
        fetched: (result.fetched as Array<number | null>).reduce((a: number, b) => a + (b ?? 0), 0),
      };
    } finally {
      await s3Proxy.close();
      await s3.stop();
    }
  }, { uplink });
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any
function once(hostsFile: string, overrides: object, env: Record<string, string>): Promise<any> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [ONCE, hostsFile], { env: { ...process.env, ...env, NIX_CONFIG: "substituters =", BENCH_PUSH_OVERRIDES: JSON.stringify(overrides) } });
    let out = "";
    let err = "";
    child.stdout.on("data", (c) => (out += c));
    child.stderr.on("data", (c) => (err += c));
    child.on("close", (code) => (code === 0 ? resolve(JSON.parse(out.trim().split("\n").at(-1)!)) : reject(new Error(err))));
  });
}

/** Builds every host's system (the pushes then only evaluate) and returns the NAR size of host0's closure. */
function buildAll(dir: string, hosts: number, payloadMiB: number, seed: string): number {
  let closureBytes = 0;
  for (let i = 0; i < hosts; i++) {
    writeFileSync(join(dir, `host${i}.nix`), configuration(i, payloadMiB, seed));
    const top = execFileSync("nix-build", ["<nixpkgs/nixos>", "-A", "system", "--no-out-link", "-I", `nixpkgs=${join(__dirname, "..", "test", "fixtures", "nixpkgs-lite")}`,
      "-I", `nixos-config=${join(dir, `host${i}.nix`)}`, "--option", "substituters", ""], { encoding: "utf8", stdio: ["ignore", "pipe", "ignore"] }).trim();
    if (i === 0) {
      closureBytes = execFileSync("nix-store", ["-qR", top], { encoding: "utf8" }).trim().split("\n")
        .reduce((sum, p) => sum + Number(execFileSync("nix-store", ["-q", "--size", p], { encoding: "utf8" })), 0);
    }
  }
  return closureBytes;
}

async function main() {
  await cleanupStaleTargets();
  if (process.env.BENCH_COMMIT === undefined) execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, ".."), stdio: "inherit" });
  const dir = mkdtempSync(join(tmpdir(), "bench-cache-"));
  try {
    await run("nix-store", ["--generate-binary-cache-key", "bench-cache-1", join(dir, "cache.secret"), join(dir, "cache.public")]);
    console.log(`load average before: ${readFileSync("/proc/loadavg", "utf8").trim()}`);
    const rows: string[][] = [];

    const c1Closure = buildAll(dir, 8, C1_MIB, "c1");
    for (const hosts of [1, 4, 8]) {
      const direct = await pushOnce(dir, hosts, "direct");
      const cached = await pushOnce(dir, hosts, "cache");
      if (cached.pathsCopied !== 0) throw new Error(`through the cache, ${cached.pathsCopied} paths were still copied directly`);
      console.log(`C1 ${hosts} hosts: direct ${mib(direct.bytesOut)}, cache ${mib(cached.bytesOut)} (closure ${mib(c1Closure)})`);
      rows.push([`C1 bytes out, ${hosts} host${hosts === 1 ? "" : "s"}`, `through the cache ${mib(cached.bytesOut)} (**${(cached.bytesOut / c1Closure).toFixed(2)}×** the closure)`,
        `direct ${mib(direct.bytesOut)} (${(direct.bytesOut / c1Closure).toFixed(2)}× the closure)`, `**${(cached.bytesOut / direct.bytesOut).toFixed(2)}×**`, "cache ≈ 1× the closure"]);
    }

    const c2Closure = buildAll(dir, 8, C2_MIB, "c2");
    const bytesPerSecond = (MBIT * 1e6) / 8;
    const direct = await pushOnce(dir, 8, "direct", sharedLink(bytesPerSecond));
    const cached = await pushOnce(dir, 8, "cache", sharedLink(bytesPerSecond));
    console.log(`C2: direct ${fmt(direct.ms)} (${mib(direct.bytesOut)} out), cache ${fmt(cached.ms)} (${mib(cached.bytesOut)} out)`);
    rows.push([`C2 push to 8 hosts, ${mib(c2Closure)} closure, uplink ${MBIT} Mbit/s`, `through the cache ${fmt(cached.ms)} (${mib(cached.bytesOut)} out)`,
      `direct ${fmt(direct.ms)} (${mib(direct.bytesOut)} out)`, `**${(cached.ms / direct.ms).toFixed(2)}×**`, "≤ 0.25×"]);

    recordTable("cache", {
      header: ["measurement", "cdktf-nixos push --cache", "push (direct copies)", "ratio", "goal"],
      rows,
      conditions: `namespaced hosts behind latency proxies (${DELAY_MS} ms each way), s3rver as S3 (uploads through the AWS SDK and a proxy; ` +
        `hosts fetch over http:// directly), incompressible payloads shared by all hosts, from empty stores and an empty bucket, one run each; ` +
        `load average after: ${readFileSync("/proc/loadavg", "utf8").trim()}`,
    });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((err) => {
  console.error(err);
  process.exitCode = 1;
});
