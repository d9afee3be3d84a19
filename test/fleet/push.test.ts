import { existsSync, mkdtempSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import type { Host } from "../../src/deploy/host";
import { KeySpecError } from "../../src/spec/key-spec";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import type { DeploymentManifest, DeploymentSpec } from "../../src/spec/manifest";
import { ConnectError, EXIT_CODES, worstExitCode } from "../../src/errors";
import { isApplied, resolveInventory, type FleetHost } from "../../src/fleet/inventory";
import { planPush, push, withKeys, type PushDependencies, type PushEvent, type PushSettings } from "../../src/fleet/push";
import type { FleetBuildMember } from "../../src/nix/fleet-build";
import { FakeHost, NEW, OLD, READ_LOG, READ_STATE, activationState, healthyHost, inspection } from "../deploy/fake-host";
import { deploymentSpec as spec } from "./deployment-spec";

const applied = (name: string, input: Record<string, unknown>) =>
  ({ address: `terraform_data.${name}_Deployment_Resource_AB12`, values: { input } });

const settings: PushSettings = { parallel: 10, dryRun: false, failFast: false, overrides: {} };

describe("resolveInventory", () => {
  const manifest: DeploymentManifest = {
    version: 4,
    stack: "fleet",
    synthesis: { projectDir: "/work/app", sources: {} },
    deployments: [
      spec("web1", { nixosArgs: { appAddress: "${aws_instance.app_Instance_CD34.private_ip}", port: 8080, greeting: "${var.greeting}" } }),
      spec("db", { host: "203.0.113.9", instanceId: undefined, region: undefined, nixosArgs: { newValue: "${var.added_later}" } }),
      spec("cache"),
    ],
  };

  it("takes literals from the synthesized stack and Terraform values from what was applied", () => {
    const hosts = resolveInventory(manifest, {
      values: {
        root_module: {
          resources: [
            applied("web1", { target: "root@198.51.100.1", nixos_args: { appAddress: "10.0.0.5", port: 80, greeting: "hi" }, instance_id: "i-0123456789abcdef0", region: "eu-central-1" }),
            applied("db", { target: "root@203.0.113.9", nixos_args: {}, instance_id: "", region: "" }),
          ],
        },
      },
    });
    expect(hosts.map((h) => h.name)).toEqual(["web1", "db", "cache"]);
    // port is a literal in the code now (8080), whatever was applied before (80)
    expect(hosts[0].applied).toEqual({
      created: true, host: "198.51.100.1", moduleArgs: { appAddress: "10.0.0.5", port: 8080, greeting: "hi" },
      instanceId: "i-0123456789abcdef0", region: "eu-central-1",
    });
    expect(hosts[0].tags).toEqual({ role: "web" });
    expect(hosts[1].applied).toEqual({ created: false, reason: "nixosArgs.newValue not applied yet — run cdktf deploy" });
    expect(hosts[2].applied).toEqual({ created: false, reason: "not created — run cdktf deploy" });
  });

  it("reads an applied empty string as a module argument's value (as vm and test do), and as no instance id", () => {
    const hosts = resolveInventory(manifest, { values: { root_module: { resources: [
      applied("web1", { target: "root@198.51.100.1", nixos_args: { appAddress: "10.0.0.5", greeting: "" }, instance_id: "", region: "eu-central-1" }),
    ] } } });
    expect(hosts[0].applied).toEqual({ created: false, reason: "instanceId not applied yet — run cdktf deploy" });
    expect(isApplied("", "module-argument")).toBe(true);
    expect([isApplied("", "deployment-field"), isApplied(null, "module-argument"), isApplied(undefined, "module-argument")]).toEqual([false, false, false]);
  });

  it("reads an empty state (nothing applied) as nothing created", () => {
    expect(resolveInventory(manifest, {}).map((h) => h.applied.created)).toEqual([false, false, false]);
  });

  it("tells a cdktn-nixos user to run cdktn deploy", () => {
    expect(resolveInventory(manifest, {}, "cdktn")[0].applied).toEqual({ created: false, reason: "not created — run cdktn deploy" });
  });
});

function readyHost(name: string, overrides: Partial<DeploymentSpec> = {}): FleetHost {
  return {
    name,
    spec: spec(name, overrides),
    tags: {},
    applied: { created: true, host: `${name}.example`, moduleArgs: { greeting: "hi" }, instanceId: "i-0123456789abcdef0", region: "eu-central-1" },
  };
}

describe("planPush", () => {
  it("deploys each host with its deployment's own settings and the applied values; push flags override them only when given", () => {
    const [web, cache] = planPush([readyHost("web1", { keepGenerations: 3, confirmTimeoutSeconds: 0, action: "boot" }),
      { ...readyHost("cache"), applied: { created: false, reason: "not created — run cdktf deploy" } }],
    { overrides: { ec2Endpoint: "http://127.0.0.1:4566" } });
    expect(web).toEqual({
      name: "web1",
      ready: true,
      build: {
        name: "web1", configuration: "/work/app/nixos/web1.nix", nixPath: { nixpkgs: "/work/nixpkgs" }, flake: undefined,
        moduleArgs: { greeting: "hi" }, buildOnTarget: false,
      },
      request: {
        target: {
          host: "web1.example", user: "root", port: 22, privateKeyFile: "/work/app/.cdktf-nixos/keys/fleet",
          knownHostsFile: "/work/app/.cdktf-nixos/known_hosts", acceptNewHostKey: false, jumpHost: undefined, sshCompression: false,
          // the deployment's own connect timeout (300 s), not a command line's default
          connectTimeoutSeconds: 300,
          hostKeyFromEc2Console: { instanceId: "i-0123456789abcdef0", region: "eu-central-1", endpoint: "http://127.0.0.1:4566", timeoutSeconds: 600 },
        },
        action: "boot", useSubstitutes: false, compress: "auto", maxChannels: 8, buildOnTarget: false, installBootloader: false,
        allowNonNixos: false, rollback: true, acceptFailedUnits: false, confirmTimeoutSeconds: undefined, lockTimeoutSeconds: 300, activationTimeoutSeconds: 600,
        replyTimeoutSeconds: 60, keepGenerations: 3, reactivate: false, healthChecks: [], systemdHealthCheck: true,
      },
      keys: [],
    });
    expect(cache).toEqual({ name: "cache", ready: false, reason: "not created — run cdktf deploy" });
    const overridden = planPush([readyHost("web1", { keepGenerations: 3 })], { overrides: { keepGenerations: 1, connectTimeoutSeconds: 5 } })[0];
    expect(overridden.ready && [overridden.request.keepGenerations, overridden.request.target.connectTimeoutSeconds]).toEqual([1, 5]);
  });
});

describe("withKeys", () => {
  it("reads every key for a real push, none for a dry run (no secret needed, no key command run), and checks the specs of both", async () => {
    const dir = mkdtempSync(join(tmpdir(), "push-keys-"));
    try {
      const ran = join(dir, "ran");
      const keys = [{ name: "db", file: join(dir, "absent-in-ci") }, { name: "api", command: ["sh", "-c", `echo ran > ${ran}; echo token`] }];
      const host = readyHost("web1", { keys });
      const plan = planPush([host], settings);
      expect(await withKeys(plan, { dryRun: true })).toEqual(plan);
      expect(existsSync(ran)).toBe(false);
      await expect(withKeys(plan, { dryRun: false })).rejects.toThrow(new KeySpecError(`web1: key "db": file ${join(dir, "absent-in-ci")} does not exist`));
      const bad = readyHost("web1", { keys: [{ name: "db", file: "x", destDir: "/run/current-system" }] });
      await expect(withKeys(planPush([bad], settings), { dryRun: true })).rejects.toThrow(
        new KeySpecError(`web1: key "db": /run/current-system/db is in /run/current-system, which NixOS manages (it links into the Nix store)`));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A fleet of fake hosts: `hosts[name]` answers for that name's address; the build makes NEW for each member. */
function fleet(hosts: Record<string, Host | Error>, options: { delayMs?: number } = {}) {
  let running = 0;
  let peak = 0;
  const built: FleetBuildMember[][] = [];
  const deps: PushDependencies = {
    buildFleet: async (members) => {
      built.push([...members]);
      return new Map(members.map((m) => [m.name, { ok: true, system: { drvPath: `${NEW}.drv`, outPath: NEW, system: "x86_64-linux" } }]));
    },
    openStore: async () => ({ closure: async () => [], dumpPath: async () => undefined, close: async () => undefined }),
    connect: async (target) => {
      running++;
      peak = Math.max(peak, running);
      try {
        await new Promise((r) => setTimeout(r, options.delayMs ?? 0));
        const host = hosts[target.host.replace(/\.example$/, "")];
        if (host instanceof Error) throw host;
        return host;
      } finally {
        running--;
      }
    },
  };
  return { deps, built, peak: () => peak };
}

const upToDateHost = () => new FakeHost([[INSPECT_COMMAND, { stdout: inspection({ currentSystem: NEW, profileSystem: NEW, profileGeneration: 7 }) }]]);

describe("push", () => {
  it("builds once for all hosts, deploys the changed ones, reports the others up to date and the not created", async () => {
    const world = fleet({ web1: healthyHost(), web2: upToDateHost() });
    const events: PushEvent[] = [];
    const plan = planPush([readyHost("web1"), readyHost("web2"), { ...readyHost("cache"), applied: { created: false, reason: "not created — run cdktf deploy" } }], settings);
    const report = await push(plan, settings, world.deps, (e) => events.push(e));
    expect(world.built).toHaveLength(1);
    expect(world.built[0].map((m) => m.name)).toEqual(["web1", "web2"]);
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([["web1", "deployed"], ["web2", "up-to-date"], ["cache", "not-created"]]);
    expect(report.hosts[0].result).toMatchObject({ previousGeneration: 4, newGeneration: 5, upToDate: false, newSystem: NEW });
    expect(report.hosts[1].result).toMatchObject({ upToDate: true, previousGeneration: 7, newGeneration: 7, pathsCopied: 0 });
    // the not-created host fails the push: it was selected and not deployed
    expect(report.exitCode).toBe(EXIT_CODES.connect);
    expect(events.filter((e) => e.type === "host" && e.host === "web2").map((e) => e.type === "host" && e.event.type))
      .toEqual(["phase", "phase", "target", "up-to-date"]);
  });

  it("one host failing does not stop the others; the exit code is the worst host's", async () => {
    const failing = new FakeHost([
      [INSPECT_COMMAND, { stdout: inspection() }],
      [READ_STATE, { stdout: activationState({ status: "1", rolledBack: "0", done: true }) }],
      [READ_LOG, { stdout: "boom\n" }],
    ]);
    const world = fleet({ web1: new ConnectError("cannot reach web1"), web2: failing, app: healthyHost() });
    const report = await push(planPush([readyHost("web1"), readyHost("web2"), readyHost("app")], settings), settings, world.deps);
    expect(report.hosts.map((h) => [h.name, h.status, h.exitCode])).toEqual([
      ["web1", "failed", EXIT_CODES.connect], ["web2", "failed", EXIT_CODES.activate], ["app", "deployed", 0],
    ]);
    expect(report.exitCode).toBe(EXIT_CODES.activate);
  });

  it("--fail-fast starts no further host after a failure; --parallel bounds how many run at once", async () => {
    const world = fleet({ web1: new ConnectError("cannot reach web1"), web2: healthyHost(), app: healthyHost() }, { delayMs: 20 });
    const failFast = { ...settings, failFast: true, parallel: 1 };
    const report = await push(planPush([readyHost("web1"), readyHost("web2"), readyHost("app")], failFast), failFast, world.deps);
    // hosts go in name order: app first
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([["web1", "failed"], ["web2", "skipped"], ["app", "deployed"]]);
    expect(report.hosts[1].reason).toBe("not started: another host failed (--fail-fast)");

    const many = Object.fromEntries(Array.from({ length: 7 }, (_, i) => [`h${i}`, healthyHost()]));
    const bounded = fleet(many, { delayMs: 20 });
    const three = { ...settings, parallel: 3 };
    const result = await push(planPush(Object.keys(many).map((n) => readyHost(n)), three), three, bounded.deps);
    expect(result.hosts.every((h) => h.status === "deployed")).toBe(true);
    expect(bounded.peak()).toBe(3);
  });

  it("--dry-run previews every host without copying or activating", async () => {
    const web1 = new FakeHost([
      [INSPECT_COMMAND, { stdout: inspection() }],
      [/^nix-store --query --requisites /, { stdout: `${OLD}\n/nix/store/${"d".repeat(32)}-tool-1.0\n` }],
    ]);
    const world = fleet({ web1, web2: upToDateHost() });
    world.deps.openStore = async () => ({
      closure: async () => [
        { path: `/nix/store/${"e".repeat(32)}-tool-2.0`, narHash: "sha256:x", references: [], narSize: 1000, registrationTime: 0, ultimate: false, sigs: [] },
        { path: NEW, narHash: "sha256:y", references: [], narSize: 500, registrationTime: 0, ultimate: false, sigs: [] },
      ],
      dumpPath: async () => undefined,
      close: async () => undefined,
    });
    const dry = { ...settings, dryRun: true };
    const report = await push(planPush([readyHost("web1"), readyHost("web2")], dry), dry, world.deps);
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([["web1", "would-deploy"], ["web2", "up-to-date"]]);
    // nixos-system-old → nixos-system-new reads as "nixos-system" with output "new", as diff-closures reads it: no change
    expect(report.hosts[0].preview).toMatchObject({ pathsToSend: 2, bytesToSend: 1500, previousGeneration: 4, changes: [
      { name: "tool", before: ["1.0"], after: ["2.0"] },
    ] });
    expect(web1.copies).toBe(0);
    expect(web1.log.some((c) => /switch-to-configuration|nix-env/.test(c))).toBe(false);
    expect(report.exitCode).toBe(0);

    // with --reactivate a host that runs its system would be activated again, and the dry run says so
    const again = { ...dry, overrides: { reactivate: true } };
    const upToDate = fleet({ web2: new FakeHost([
      [INSPECT_COMMAND, { stdout: inspection({ currentSystem: NEW, profileSystem: NEW, profileGeneration: 7 }) }],
      [/^nix-store --query --requisites /, { stdout: `${NEW}
` }],
    ]) });
    const reactivated = await push(planPush([readyHost("web2")], again), again, upToDate.deps);
    expect(reactivated.hosts.map((h) => [h.name, h.status])).toEqual([["web2", "would-deploy"]]);
  });
});

describe("worstExitCode", () => {
  it("is 0 when all hosts are, else the worst by severity, not the largest number", () => {
    expect(worstExitCode([0, 0])).toBe(0);
    expect(worstExitCode([EXIT_CODES.lock, EXIT_CODES.activate, EXIT_CODES.connect])).toBe(EXIT_CODES.activate);
    expect(worstExitCode([EXIT_CODES.connect, EXIT_CODES.unknown, EXIT_CODES.rollback])).toBe(EXIT_CODES.unknown);
    expect(worstExitCode([EXIT_CODES.failure, EXIT_CODES.build])).toBe(EXIT_CODES.build);
  });
});

describe("push in waves", () => {
  const failingHost = () => new FakeHost([
    [INSPECT_COMMAND, { stdout: inspection() }],
    [READ_STATE, { stdout: activationState({ status: "1", rolledBack: "0", done: true }) }],
    [READ_LOG, { stdout: "boom\n" }],
  ]);
  const names = ["h1", "h2", "h3", "h4", "h5", "h6"];
  const waves = { canary: 1, batchSize: { count: 2 }, maxFailures: 0, rollbackCompletedOnFailure: false };

  it("deploys a canary, then batches in name order; a failed wave stops the rollout and later waves stay untouched", async () => {
    const world = fleet({ h1: healthyHost(), h2: healthyHost(), h3: failingHost(), h4: healthyHost(), h5: healthyHost(), h6: healthyHost() });
    const events: PushEvent[] = [];
    const inWaves = { ...settings, waves };
    const report = await push(planPush(names.map((n) => readyHost(n)), inWaves), inWaves, world.deps, (e) => events.push(e));
    expect(report.hosts.map((h) => [h.name, h.status, h.wave])).toEqual([
      ["h1", "deployed", 1], ["h2", "deployed", 2], ["h3", "failed", 2], ["h4", "skipped", undefined], ["h5", "skipped", undefined], ["h6", "skipped", undefined],
    ]);
    expect(report.halted).toBe("wave 2 failed: h3 (1 failed, --max-failures 0)");
    expect(report.hosts[3].reason).toBe("not started: the rollout stopped (wave 2 failed: h3 (1 failed, --max-failures 0))");
    expect(report.exitCode).toBe(EXIT_CODES.activate);
    expect(events.filter((e) => e.type === "wave").map((e) => e.type === "wave" && [e.wave, e.capacity])).toEqual([[1, 1], [2, 2]]);
  });

  it("goes on past failures up to --max-failures; hosts up to date take no place in a wave", async () => {
    const world = fleet({ h1: upToDateHost(), h2: healthyHost(), h3: failingHost(), h4: healthyHost(), h5: upToDateHost(), h6: healthyHost() });
    const tolerant = { ...settings, parallel: 1, waves: { ...waves, maxFailures: 1 } };
    const report = await push(planPush(names.map((n) => readyHost(n)), tolerant), tolerant, world.deps);
    // wave 1: h1 was up to date, so h2 is the canary; wave 2: h3 (failed), h4; wave 3: h5 up to date, h6
    expect(report.hosts.map((h) => [h.name, h.status, h.wave])).toEqual([
      ["h1", "up-to-date", undefined], ["h2", "deployed", 1], ["h3", "failed", 2], ["h4", "deployed", 2], ["h5", "up-to-date", undefined], ["h6", "deployed", 3],
    ]);
    expect(report.halted).toBeUndefined();
  });

  it("--rollback-completed-on-failure puts the hosts this push changed back on the generation they had before it", async () => {
    const world = fleet({ h1: healthyHost(), h2: healthyHost(), h3: failingHost(), h4: healthyHost(), h5: healthyHost(), h6: healthyHost() });
    const rolledBack: Array<[string, number | undefined]> = [];
    const deps: PushDependencies = {
      ...world.deps,
      rollbackHost: async (request, _deps, options) => {
        rolledBack.push([request.target.host, options?.to]);
        return { host: request.target.host, action: "switch", system: "x86_64-linux", upToDate: false, pathsCopied: 0, pathsInClosure: 0, bytesSent: 0, wireBytes: 0, newSystem: OLD, previousGeneration: 5, newGeneration: options?.to, keys: [], durationMs: 1 };
      },
    };
    const undo = { ...settings, waves: { ...waves, rollbackCompletedOnFailure: true } };
    const report = await push(planPush(names.map((n) => readyHost(n)), undo), undo, deps);
    expect(rolledBack.sort()).toEqual([["h1.example", 4], ["h2.example", 4]]);
    expect(report.hosts.map((h) => [h.name, h.status])).toEqual([
      ["h1", "rolled-back"], ["h2", "rolled-back"], ["h3", "failed"], ["h4", "skipped"], ["h5", "skipped"], ["h6", "skipped"],
    ]);
    expect(report.hosts[0].reason).toBe("back on generation 4 (the rollout stopped)");
  });

  it("a dry run previews every host and shows the waves of those that would change", async () => {
    const world = fleet({ h1: upToDateHost(), h2: healthyHost(), h3: healthyHost(), h4: healthyHost() });
    const dry = { ...settings, dryRun: true, waves };
    const report = await push(planPush(["h1", "h2", "h3", "h4"].map((n) => readyHost(n)), dry), dry, world.deps);
    expect(report.waves).toEqual([["h2"], ["h3", "h4"]]);
    expect(report.hosts.map((h) => [h.name, h.status, h.wave])).toEqual([
      ["h1", "up-to-date", undefined], ["h2", "would-deploy", 1], ["h3", "would-deploy", 2], ["h4", "would-deploy", 2],
    ]);
  });
});
