import { writeFile } from "node:fs/promises";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { SshHost } from "../../src/deploy/ssh/ssh-host";
import { LocalStore } from "../../src/nix/local-store";
import type { CopyReport } from "../../src/nix/serve/copy";
import { dataChannelsFor } from "../../src/nix/serve/copy-policy";
import { ServeError } from "../../src/nix/serve/session";
import { buildSystem, closureOf, type NixValue } from "../harness/fixture";
import { startLatencyProxy, type LatencyProxy } from "../harness/latency-proxy";
import { missing } from "../harness/requirements";
import { copySpoolsOf as spoolsOf, startTargets, type TargetHost, type TargetWorld } from "../harness/target-hosts";

/**
 * How a closure travels to a real sshd and Nix store: one channel on a LAN, the spool with several channels far away
 * (a latency proxy), zstd when asked or when the link is slow, and what a failure leaves behind.
 */

/** The store's own check, and every valid path's references valid too. */
async function expectConsistentStore(target: TargetHost, paths: readonly string[]): Promise<void> {
  const verify = await target.exec("nix-store --verify --check-contents 2>&1");
  expect(verify.exitCode, verify.stdout).toBe(0);
  for (const path of paths) {
    if ((await target.exec(`nix-store --check-validity ${path}`)).exitCode !== 0) continue;
    const refs = (await target.exec(`nix-store --query --references ${path}`)).stdout.split("\n").filter(Boolean);
    for (const ref of refs) expect((await target.exec(`nix-store --check-validity ${ref}`)).exitCode, `${path} -> ${ref}`).toBe(0);
  }
}

/** No importer or data channel shell of ours still running on the target. */
async function expectNoCopyProcesses(target: TargetHost): Promise<void> {
  for (let i = 0; i < 50; i++) {
    const left = (await target.exec("ps -eo args | grep -c '[c]dktf-nixos-spool' || true")).stdout.trim();
    if (left === "0") return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect((await target.exec("ps -eo pid,args | grep '[c]dktf-nixos-spool'")).stdout).toBe("");
}

const payloadConfig = (name: string, payload: Record<string, NixValue>) => ({
  networking: { hostName: "copy" },
  environment: { etc: { motd: { text: name } } },
  lite: { payload: { paths: 12, sizeKiB: 1024, seed: name.replace(/ /g, "-"), ...payload } },
});

describe.skipIf(missing("root", "nix", "sshd", "netns", "zstd"))("copy transport against a real sshd and store", () => {
  let world: TargetWorld;
  let store: LocalStore;
  const proxies: LatencyProxy[] = [];

  beforeAll(async () => {
    world = await startTargets(2, { maxSessions: 4 });
    store = await LocalStore.open();
  });
  afterAll(async () => {
    await store?.close();
    await world?.stop();
  });
  afterEach(async () => {
    for (const proxy of proxies.splice(0)) await proxy.close();
  });

  /** An SSH connection to the target, through a proxy that adds `delayMs` each way (and limits the rate). */
  async function connect(target: TargetHost, link?: { delayMs: number; bytesPerSecond?: number }): Promise<SshHost> {
    if (link === undefined) {
      return SshHost.connect({ host: target.address, port: 22, user: "root", privateKeyFile: world.clientKeyFile, knownHostsFile: world.knownHostsFile });
    }
    const proxy = await startLatencyProxy({ target: { host: target.address, port: target.port }, ...link });
    proxies.push(proxy);
    const knownHosts = `${world.knownHostsFile}.${proxy.port}`;
    await writeFile(knownHosts, `[127.0.0.1]:${proxy.port} ${target.hostKey}\n`);
    return SshHost.connect({ host: "127.0.0.1", port: proxy.port, user: "root", privateKeyFile: world.clientKeyFile, knownHostsFile: knownHosts });
  }

  async function copy(target: TargetHost, toplevel: string, options: Parameters<SshHost["copyClosure"]>[2] = {}, link?: { delayMs: number; bytesPerSecond?: number }): Promise<CopyReport> {
    const host = await connect(target, link);
    try {
      return await host.copyClosure(store, [toplevel], options);
    } finally {
      await host.close();
    }
  }

  it("on the LAN: one channel straight into nix-store, nothing compressed", async () => {
    const system = await buildSystem({ config: payloadConfig("lan", {}) });
    const report = await copy(world.hosts[0], system.toplevel);
    expect(report.transport).toMatchObject({ kind: "direct", dataChannels: 1, compress: false, segments: 0 });
    expect(report.transport!.rttMs).toBeLessThan(5);
    expect(report.pathsCopied).toBe((await closureOf(system.toplevel)).length);
    // the serve protocol's framing is all that is added to the NARs
    expect(report.wireBytes / report.bytesSent).toBeGreaterThan(1);
    expect(report.wireBytes / report.bytesSent).toBeLessThan(1.01);
    await expectConsistentStore(world.hosts[0], await closureOf(system.toplevel));
  });

  it("25 ms away: several channels through the spool (no more than sshd's MaxSessions allows), every path registered, no spool left", async () => {
    const target = world.hosts[1];
    // 40 MiB: enough for the spool to pay (SPOOL_MIN_BYTES)
    const system = await buildSystem({ config: payloadConfig("far", { paths: 40 }) });
    const report = await copy(target, system.toplevel, {}, { delayMs: 25 });
    // MaxSessions 4: the importer and three data channels at most (two when sshd has not yet released the session
    // that found what was missing); the other channels asked for were refused, and the copy went on without them
    expect(report.transport).toMatchObject({ kind: "spooled" });
    expect(report.transport!.dataChannels).toBeGreaterThanOrEqual(2);
    expect(report.transport!.dataChannels).toBeLessThanOrEqual(3);
    expect(report.transport!.rttMs).toBeGreaterThanOrEqual(50);
    expect(report.transport!.reason).toMatch(/^\d+\.\d ms round trip: one channel would carry only \d+ MiB\/s$/);
    const closure = await closureOf(system.toplevel);
    expect(report.pathsCopied).toBe(closure.length);
    for (const path of closure) expect((await target.exec(`nix-store --check-validity ${path}`)).exitCode, path).toBe(0);
    await expectConsistentStore(target, closure);
    expect(await spoolsOf(target)).toEqual([]);
    await expectNoCopyProcesses(target);

    const again = await copy(target, system.toplevel, {}, { delayMs: 25 });
    expect(again).toMatchObject({ pathsCopied: 0, bytesSent: 0 });
  });

  it("--compress zstd on a compressible closure: spooled even on the LAN, the wire carries a third", async () => {
    const target = world.hosts[0];
    const system = await buildSystem({ config: payloadConfig("zstd", { compressible: true }) });
    const report = await copy(target, system.toplevel, { compress: "zstd" });
    // the channels follow the round trip measured (one on an idle loopback; a loaded machine measures more)
    expect(report.transport).toMatchObject({ kind: "spooled", dataChannels: dataChannelsFor(report.transport!.rttMs), compress: true });
    expect(report.transport!.compressedSegments).toBe(report.transport!.segments);
    expect(report.wireBytes).toBeLessThan(report.bytesSent / 2.5);
    await expectConsistentStore(target, await closureOf(system.toplevel));
    expect(await spoolsOf(target)).toEqual([]);
  });

  it("auto compresses on a slow far link and not on a fast one", async () => {
    const slow = await buildSystem({ config: payloadConfig("slow link", { paths: 40, compressible: true }) });
    const slowReport = await copy(world.hosts[0], slow.toplevel, {}, { delayMs: 25, bytesPerSecond: 12_500_000 });
    expect(slowReport.transport!.kind).toBe("spooled");
    expect(slowReport.transport!.compressedSegments).toBe(slowReport.transport!.segments);
    expect(slowReport.wireBytes).toBeLessThan(slowReport.bytesSent / 2.5);

    // random bytes do not shrink: after the first samples they travel as they are
    const random = await buildSystem({ config: payloadConfig("random far", { paths: 40 }) });
    const randomReport = await copy(world.hosts[0], random.toplevel, {}, { delayMs: 25 });
    expect(randomReport.transport!.compressedSegments).toBeLessThanOrEqual(3);
    expect(randomReport.wireBytes / randomReport.bytesSent).toBeGreaterThan(0.98);
  });

  it.each([
    ["one channel (a small change far away)", "auto"],
    ["the spool's importer", "zstd"],
  ] as const)("keeps what the target has from its garbage collector until the import ends (QueryValidPaths with lock): %s", async (_how, compress) => {
    const target = world.hosts[1];
    // A first system leaves its payload on the target with no GC root; the second shares all of it but one path.
    const first = await buildSystem({ config: payloadConfig(`gc base ${compress}`, { paths: 6 }) });
    await copy(target, first.toplevel);
    const second = await buildSystem({ config: payloadConfig(`gc base ${compress}`, { paths: 6, touch: "gc" }) });
    const shared = (await closureOf(first.toplevel)).filter((p) => p.includes("lite-payload"));
    // slow enough that the collector runs while the new paths are still arriving
    const copying = copy(target, second.toplevel, { compress }, { delayMs: 25, bytesPerSecond: 1_000_000 });
    await new Promise((resolve) => setTimeout(resolve, 800));
    const gc = await target.exec("nix-store --gc 2>&1");
    expect(gc.exitCode, gc.stdout).toBe(0);
    const report = await copying;
    expect(report.transport!.kind).toBe(compress === "zstd" ? "spooled" : "direct");
    expect(report.pathsAlreadyValid).toBeGreaterThan(0);
    for (const path of await closureOf(second.toplevel)) expect((await target.exec(`nix-store --check-validity ${path}`)).exitCode, path).toBe(0);
    // the collector did run: the first system's own paths that the second does not need are gone
    expect((await target.exec(`nix-store --check-validity ${first.toplevel}`)).exitCode).not.toBe(0);
    expect(shared.length).toBeGreaterThan(0);
    await expectConsistentStore(target, await closureOf(second.toplevel));
  });
});

describe.skipIf(missing("root", "nix", "sshd", "netns", "zstd"))("a spooled copy the target's Nix refuses", () => {
  let world: TargetWorld;
  let store: LocalStore;

  beforeAll(async () => {
    // an untrusted user through the daemon: Nix refuses unsigned paths, after the data has started arriving
    world = await startTargets(1, { users: [{ name: "deployer" }], nixDaemon: true });
    store = await LocalStore.open();
  });
  afterAll(async () => {
    await store?.close();
    await world?.stop();
  });

  it("ends with Nix's own message, stops the data channels and leaves no spool", async () => {
    const target = world.hosts[0];
    const system = await buildSystem({ config: payloadConfig("refused", { paths: 8 }) });
    const host = await SshHost.connect({ host: target.address, port: 22, user: "deployer", privateKeyFile: world.clientKeyFile, knownHostsFile: world.knownHostsFile });
    try {
      const failure = await host.copyClosure(store, [system.toplevel], { compress: "zstd" }).then(() => undefined, (err: unknown) => err);
      expect(failure).toBeInstanceOf(ServeError);
      expect((failure as ServeError).message).toContain("lacks a valid signature");
      expect((failure as ServeError).command).toContain("nix-store --serve --write");
    } finally {
      await host.close();
    }
    await expectNoCopyProcesses(target);
    expect(await spoolsOf(target)).toEqual([]);
    expect((await target.exec(`nix-store --check-validity ${system.toplevel}`)).exitCode).not.toBe(0);
  });
});
