// Benchmarks' fleets: namespaced target hosts, each behind its own latency proxy, and how push and status see them.
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import type { FleetHost } from "../src/fleet/inventory";
import { DEFAULT_SETTINGS } from "../src/spec/settings";
import { NIXPKGS_LITE } from "../test/harness/fixture";
import { startLatencyProxy, type LatencyProxy, type SharedLink } from "../test/harness/latency-proxy";
import { startTargets, type TargetWorld } from "../test/harness/target-hosts";

/** A fresh fleet: empty stores, a latency proxy (`delayMs` each way) in front of each host, known_hosts entries for the proxies. */
export async function withProxiedFleet<T>(
  count: number,
  delayMs: number,
  fn: (world: TargetWorld, proxies: LatencyProxy[], knownHosts: string) => Promise<T>,
  options: { readonly uplink?: SharedLink } = {},
): Promise<T> {
  const world = await startTargets(count);
  const proxies: LatencyProxy[] = [];
  try {
    for (const host of world.hosts) proxies.push(await startLatencyProxy({ target: { host: host.address, port: host.port }, delayMs, uplink: options.uplink }));
    const knownHosts = `${world.knownHostsFile}.proxies`;
    writeFileSync(knownHosts, world.hosts.map((h, i) => `[127.0.0.1]:${proxies[i]!.port} ${h.hostKey}\n`).join(""));
    return await fn(world, proxies, knownHosts);
  } finally {
    for (const proxy of proxies) await proxy.close();
    await world.stop();
  }
}

/** The fleet as a stack's inventory: `host<i>` built from `<dir>/host<i>.nix`, reached through its proxy. */
export function proxiedFleetHosts(dir: string, world: TargetWorld, proxies: LatencyProxy[], knownHosts: string): FleetHost[] {
  return world.hosts.map((_, i) => ({
    name: `host${i}`,
    tags: {},
    spec: {
      ...DEFAULT_SETTINGS,
      id: `bench/host${i}/Deployment`, resource: `terraform_data.host${i}`, host: "127.0.0.1", user: "root", port: proxies[i]!.port,
      source: { configuration: join(dir, `host${i}.nix`), nixPath: { nixpkgs: NIXPKGS_LITE } },
      nixosArgs: {}, nixosArgsAtSynth: {}, drvPath: "", system: "x86_64-linux", action: "switch",
      sshPrivateKeyFile: world.clientKeyFile, knownHostsFile: knownHosts, acceptNewHostKey: false,
      useSubstitutes: false, buildOnTarget: false, connectTimeoutSeconds: 10, confirmTimeoutSeconds: 0, tags: {}, sensitiveArgs: [], keys: [],
    },
    applied: { created: true, host: "127.0.0.1", moduleArgs: {} },
  }));
}
