import {
  deployBuilt,
  previewDeploy,
  type BuiltDeployRequest,
  type DeployEvent,
  type DeployPreview,
  type DeployResult,
  type HostDependencies,
} from "../deploy/deploy";
import { loadKeys } from "../deploy/keys";
import { KeySpecError, checkKeySpecs, type KeySpec } from "../spec/key-spec";
import { ConnectError, DeployError, UserInputError, exitCodeOf, worstExitCode, EXIT_CODES } from "../errors";
import { knownHostsFileProblem } from "../deploy/ssh/known-hosts";
import { redactor, type Redact } from "../redact";
import type { FleetBuildMember, FleetBuildResult } from "../nix/fleet-build";
import { resolveInventory, type FleetHost } from "./inventory";
import { loadStack, readStackState, type SynthMode } from "./project";
import { selectHosts } from "./selection";
import type { TargetSpec } from "../spec/target";
import { deployRequestOf } from "../spec/request";
import type { SettingOverrides } from "../spec/settings";
import type { ResolvedHealthCheck } from "../spec/health-check";
import { rollbackHost } from "../deploy/rollback";
import { cachePublicKey, uploadClosure, type CacheDependencies, type CacheUploadReport } from "../deploy/cache";
import { buildOnBuildHost, type BuiltOnHost } from "../deploy/build-host";
import type { CacheUploadProgress } from "../nix/binary-cache/upload";
import { eachAtMost } from "../pool";
import { NO_WAVES, byName, inWaves, planWaves, waveCapacity, type WaveOptions } from "./waves";

export interface PushSettings {
  /** Hosts deployed at once. */
  readonly parallel: number;
  /** Only say what would happen on each host. */
  readonly dryRun: boolean;
  /** Start no further host once one has failed. */
  readonly failFast: boolean;
  /** Settings given on the command line: each replaces every selected deployment's own. */
  readonly overrides: SettingOverrides;
  /** Health checks added to every selected deployment's own (`--health-check`). */
  readonly addHealthChecks?: readonly ResolvedHealthCheck[];
  /** A rollout in waves (canary, batch size, failures allowed). @default NO_WAVES: every host at once */
  readonly waves?: WaveOptions;
}

/** One selected host of a push, decided before anything is built or contacted. */
export type PlannedHost =
  | { readonly name: string; readonly ready: true; readonly build: FleetBuildMember; readonly request: BuiltDeployRequest; readonly keys: readonly KeySpec[] }
  | { readonly name: string; readonly ready: false; readonly reason: string };

/**
 * The pure plan of a push: for every selected host, what it is built from and how it is deployed — the deployment's
 * own settings with the command line's overrides and the values Terraform applied, mapped as `cdktf deploy` maps them
 * (deployRequestOf).
 */
export function planPush(hosts: readonly FleetHost[], settings: Pick<PushSettings, "overrides" | "addHealthChecks">): PlannedHost[] {
  return hosts.map((host): PlannedHost => {
    if (!host.applied.created) return { name: host.name, ready: false, reason: host.applied.reason };
    const spec = host.spec;
    const applied = host.applied;
    const added = settings.addHealthChecks ?? [];
    const overrides = added.length === 0 ? settings.overrides : { ...settings.overrides, healthChecks: [...spec.healthChecks, ...added] };
    const mapped = deployRequestOf(spec, applied, overrides);
    return {
      name: host.name,
      ready: true,
      build: {
        name: host.name,
        configuration: spec.source.configuration,
        nixPath: spec.source.nixPath ?? {},
        flake: spec.source.flake,
        moduleArgs: applied.moduleArgs,
        // evaluated only here: the target or the build host builds it
        buildOnTarget: mapped.request.buildOnTarget || mapped.request.buildHost !== undefined,
      },
      request: mapped.request,
      keys: mapped.keys,
    };
  });
}

/**
 * Reads the keys of every ready host on this machine (a file or command shared by several hosts is read once), before
 * anything is built or contacted. A dry run uploads no key, so it reads none (no secret is needed for it, no key
 * command runs): it only checks the specs. Throws a KeySpecError naming the host's key when one cannot be read.
 */
export async function withKeys(plan: readonly PlannedHost[], options: { readonly dryRun: boolean }): Promise<PlannedHost[]> {
  const cache = new Map<string, Promise<Buffer>>();
  return Promise.all(plan.map(async (host) => {
    if (!host.ready) return host;
    try {
      if (options.dryRun) {
        checkKeySpecs(host.keys);
        return host;
      }
      const keys = await loadKeys(host.keys, cache);
      const binaryCache = host.request.cache === undefined ? undefined : { ...host.request.cache, publicKey: await cachePublicKey(host.request.cache) };
      return { ...host, request: { ...host.request, keys, cache: binaryCache } };
    } catch (err) {
      throw err instanceof KeySpecError ? new KeySpecError(`${host.name}: ${err.message}`) : err;
    }
  }));
}

/** Takes every selected host's sensitive module arguments (as Terraform applied them) out of messages. */
export function fleetRedactor(hosts: readonly FleetHost[]): Redact {
  const values: Record<string, unknown> = {};
  for (const host of hosts) {
    if (!host.applied.created) continue;
    for (const name of host.spec.sensitiveArgs) values[`nixosArgs.${name}`] ??= host.applied.moduleArgs[name];
  }
  return redactor(values);
}

/** `rolled-back`: deployed, then put back on its previous generation when the rollout stopped (--rollback-completed-on-failure). */
export type HostStatus = "deployed" | "up-to-date" | "would-deploy" | "failed" | "not-created" | "skipped" | "rolled-back";

/** What a push did to one host (or, with --dry-run, would do). */
export interface HostOutcome {
  readonly name: string;
  readonly status: HostStatus;
  readonly durationMs: number;
  readonly result?: DeployResult;
  readonly preview?: DeployPreview;
  readonly error?: unknown;
  /** Why it was not deployed (not created, skipped), in words. */
  readonly reason?: string;
  /** The exit code this host alone would give: 0 for deployed, up to date or would-deploy. */
  readonly exitCode: number;
  /** The wave it was deployed in (or, in a dry run, would be); none for a host up to date, not created or not started. */
  readonly wave?: number;
  /** For rolled-back: the rollback to the generation it had before the push (its result, or why it failed). */
  readonly rollback?: { readonly result?: DeployResult; readonly error?: unknown };
}

export type PushEvent =
  | { readonly type: "fleet"; readonly phase: "evaluate-and-build"; readonly hosts: readonly string[] }
  | { readonly type: "built"; readonly host: string; readonly result: FleetBuildResult }
  | { readonly type: "host"; readonly host: string; readonly event: DeployEvent }
  | { readonly type: "host-done"; readonly outcome: HostOutcome }
  /** A wave starts with these hosts (more join it as hosts in it turn out up to date). */
  | { readonly type: "wave"; readonly wave: number; readonly capacity: number }
  /** The rollout stopped: later waves are not started. */
  | { readonly type: "halted"; readonly reason: string }
  /** The fleet's closures go to a binary cache once, before any host (a dry run only looks up what it lacks). */
  | { readonly type: "cache-upload"; readonly cache: string; readonly hosts: readonly string[] }
  | { readonly type: "cache-progress"; readonly cache: string; readonly progress: CacheUploadProgress }
  | { readonly type: "cache-uploaded"; readonly report: CacheUploadReport }
  /** These hosts' systems are built on a build host (`user@host:port`), and then were. */
  | { readonly type: "build-host"; readonly buildHost: string; readonly hosts: readonly string[] }
  | { readonly type: "built-on-build-host"; readonly buildHost: string; readonly hosts: readonly string[] };

export interface PushReport {
  readonly dryRun: boolean;
  readonly hosts: readonly HostOutcome[];
  /** 0 when every host was deployed, up to date (or would deploy); else the worst host's code. */
  readonly exitCode: number;
  readonly durationMs: number;
  /** Of durationMs, the fleet's one evaluation and build. */
  readonly buildMs: number;
  /** Why the rollout stopped before every host was tried (a wave failed). */
  readonly halted?: string;
  /** A dry run in waves: the hosts each wave would change, in order. */
  readonly waves?: readonly (readonly string[])[];
  /** Each binary cache the push went through: what was uploaded to it (a dry run: what it lacks). */
  readonly caches?: readonly CacheUploadReport[];
}

export interface PushDependencies extends HostDependencies, CacheDependencies {
  /** Puts a host back on an earlier generation (--rollback-completed-on-failure). @default rollbackHost */
  rollbackHost?: typeof rollbackHost;
  /** One evaluation and one build for every member (see nix/fleet-build). */
  buildFleet(members: readonly FleetBuildMember[]): Promise<Map<string, FleetBuildResult>>;
}

/**
 * Carries out a plan: one evaluation and build of every ready host's system, then each host through deployBuilt (or
 * previewDeploy for a dry run), at most `parallel` at once, in waves when asked (hosts in name order; a host found up
 * to date takes no place in its wave). Without waves one host's failure never stops the others (with failFast no
 * further host starts); in waves, once more hosts failed than `maxFailures` no further host starts and no later wave,
 * and with rollbackCompletedOnFailure the hosts this push changed go back to the generation they had before it.
 */
export async function push(plan: readonly PlannedHost[], settings: PushSettings, deps: PushDependencies, onEvent: (event: PushEvent) => void = () => undefined): Promise<PushReport> {
  // build hosts stay connected while hosts copy from their stores, and are let go however the push ends
  const builders = new Map<string, BuiltOnHost>();
  try {
    return await pushWithBuilders(plan, settings, deps, onEvent, builders);
  } finally {
    await Promise.all([...builders.values()].map((b) => b.close()));
  }
}

async function pushWithBuilders(
  plan: readonly PlannedHost[],
  settings: PushSettings,
  deps: PushDependencies,
  onEvent: (event: PushEvent) => void,
  builders: Map<string, BuiltOnHost>,
): Promise<PushReport> {
  const started = Date.now();
  const waves = settings.waves ?? NO_WAVES;
  const { outcomes, finish, ready } = recordOutcomes(plan, onEvent);
  let buildMs = 0;
  let halted: string | undefined;
  let dryRunWaves: string[][] | undefined;
  let caches: CacheUploadReport[] = [];
  if (ready.length > 0) {
    onEvent({ type: "fleet", phase: "evaluate-and-build", hosts: ready.map((h) => h.name) });
    const built = await deps.buildFleet(ready.map((h) => h.build));
    buildMs = Date.now() - started;
    const deployable: Deployable[] = [];
    for (const host of ready) {
      const result = built.get(host.name)!;
      onEvent({ type: "built", host: host.name, result });
      if (result.ok) deployable.push({ host, system: result.system });
      else finish({ name: host.name, status: "failed", error: result.error, durationMs: Date.now() - started, exitCode: exitCodeOf(result.error) });
    }
    deployable.sort((a, b) => byName(a.host.name, b.host.name));
    const failedBuilds = settings.dryRun ? [] : await buildOnBuildHosts(deployable, deps, onEvent, builders);
    for (const failed of failedBuilds) {
      finish({ name: failed.host.host.name, status: "failed", error: failed.error, durationMs: Date.now() - started, exitCode: exitCodeOf(failed.error) });
      deployable.splice(deployable.indexOf(failed.host), 1);
    }
    /** A host's dependencies: its closure comes from its build host's store, when it has one. */
    const depsOf = (host: ReadyHost): PushDependencies => {
      const builder = host.request.buildHost === undefined ? undefined : builders.get(buildHostKey(host.request.buildHost));
      return builder === undefined ? deps : { ...deps, openStore: builder.openStore };
    };
    const uploads = await uploadToCaches(deployable, settings.dryRun, depsOf, onEvent);
    caches = uploads.reports;
    for (const failed of uploads.failed) {
      finish({ name: failed.host.host.name, status: "failed", error: failed.error, durationMs: Date.now() - started, exitCode: exitCodeOf(failed.error) });
      deployable.splice(deployable.indexOf(failed.host), 1);
    }
    const rollout = { failed: [...outcomes.values()].filter((o) => o.status === "failed").map((o) => o.name) };
    const tooMany = () => inWaves(waves) ? rollout.failed.length > waves.maxFailures : settings.failFast && rollout.failed.length > 0;
    const deployOne = async ({ host, system }: Deployable, wave: number | undefined): Promise<HostOutcome> => {
      const hostStarted = Date.now();
      const request = { ...host.request, onEvent: (event: DeployEvent) => onEvent({ type: "host", host: host.name, event }) };
      try {
        if (settings.dryRun) {
          // a dry run builds nothing: a host built on a build host is previewed with its derivations
          const previewed = request.buildHost !== undefined ? { ...request, buildOnTarget: true } : request;
          const preview = await previewDeploy(system, previewed, deps, { cacheLacks: uploads.lacking });
          return { name: host.name, status: preview.upToDate ? "up-to-date" : "would-deploy", preview, durationMs: Date.now() - hostStarted, exitCode: 0 };
        }
        const result = await deployBuilt(system, request, depsOf(host), hostStarted);
        return { name: host.name, status: result.upToDate ? "up-to-date" : "deployed", result, durationMs: result.durationMs, exitCode: 0, ...(result.upToDate ? {} : { wave }) };
      } catch (err) {
        rollout.failed.push(host.name);
        const error = err instanceof DeployError ? err : new ConnectError(`${host.name}: ${(err as Error).message}`, { cause: err });
        return { name: host.name, status: "failed", error, durationMs: Date.now() - hostStarted, exitCode: exitCodeOf(error), wave };
      }
    };

    if (settings.dryRun) {
      // a dry run changes nothing, so every host is previewed; the waves are those of the hosts that would change
      await eachAtMost(settings.parallel, deployable, async (item) => finish(await deployOne(item, undefined)));
      if (inWaves(waves)) {
        dryRunWaves = planWaves(deployable.map((d) => d.host.name).filter((name) => outcomes.get(name)?.status === "would-deploy"), deployable.length, waves);
        dryRunWaves.forEach((names, i) => names.forEach((name) => outcomes.set(name, { ...outcomes.get(name)!, wave: i + 1 })));
      }
    } else {
      let next = 0;
      for (let wave = 1; next < deployable.length && halted === undefined; wave++) {
        const capacity = waveCapacity(wave, deployable.length, waves);
        if (inWaves(waves)) onEvent({ type: "wave", wave, capacity });
        let changed = 0;
        let running = 0;
        const worker = async () => {
          while (next < deployable.length && changed + running < capacity && !tooMany()) {
            const item = deployable[next++]!;
            running++;
            const outcome = await deployOne(item, inWaves(waves) ? wave : undefined);
            running--;
            if (outcome.status !== "up-to-date") changed++;
            finish(outcome);
          }
        };
        await Promise.all(Array.from({ length: Math.max(1, Math.min(settings.parallel, capacity, deployable.length - next)) }, worker));
        if (tooMany()) {
          halted = inWaves(waves)
            ? `wave ${wave} failed: ${rollout.failed.join(", ")} (${rollout.failed.length} failed, --max-failures ${waves.maxFailures})`
            : `${rollout.failed.join(", ")} failed (--fail-fast)`;
        }
      }
      for (const { host } of deployable.slice(next)) {
        finish({ name: host.name, status: "skipped", reason: inWaves(waves) ? `not started: the rollout stopped (${halted})` : "not started: another host failed (--fail-fast)", durationMs: 0, exitCode: EXIT_CODES.failure });
      }
      if (halted !== undefined) onEvent({ type: "halted", reason: halted });
      if (halted !== undefined && inWaves(waves) && waves.rollbackCompletedOnFailure) {
        const completed = deployable.filter(({ host }) => outcomes.get(host.name)?.status === "deployed");
        await eachAtMost(settings.parallel, completed, async ({ host }) => finish(await rollBackCompleted(host, outcomes.get(host.name)!, deps, onEvent)));
      }
    }
  }
  const hosts = plan.map((host) => outcomes.get(host.name)!);
  return {
    dryRun: settings.dryRun, hosts, exitCode: worstExitCode(hosts.map((h) => h.exitCode)), durationMs: Date.now() - started, buildMs,
    ...(halted !== undefined ? { halted } : {}), ...(dryRunWaves !== undefined ? { waves: dryRunWaves } : {}),
    ...(caches.length > 0 ? { caches } : {}),
  };
}

/**
 * Uploads the closures of every host that goes through a binary cache, once per cache (a path several hosts share is
 * uploaded once), before any host is deployed; a dry run looks up what each cache lacks. A failed upload fails the
 * hosts of that cache (they are not deployed: a cache that cannot be written is the user's to fix, not a reason to
 * push every closure through this machine's uplink unasked).
 */
async function uploadToCaches(deployable: readonly Deployable[], dryRun: boolean, depsOf: (host: ReadyHost) => PushDependencies, onEvent: (event: PushEvent) => void) {
  const groups = new Map<string, Deployable[]>();
  for (const item of deployable) {
    const cache = item.host.request.cache;
    // a dry run builds nothing, so what a build host would build is not known to be missing from the cache yet
    if (cache === undefined || item.host.request.buildOnTarget || (dryRun && item.host.request.buildHost !== undefined)) continue;
    // what was built on a build host goes up from its store
    const from = item.host.request.buildHost === undefined ? "" : buildHostKey(item.host.request.buildHost);
    const key = JSON.stringify([cache.url, cache.signingKeyFile, cache.pushCommand, from]);
    groups.set(key, [...(groups.get(key) ?? []), item]);
  }
  const reports: CacheUploadReport[] = [];
  const failed: { host: Deployable; error: DeployError }[] = [];
  const lacking = new Set<string>();
  for (const members of groups.values()) {
    const spec = members[0]!.host.request.cache!;
    onEvent({ type: "cache-upload", cache: spec.url, hosts: members.map((m) => m.host.name) });
    try {
      const roots = [...new Set(members.map((m) => m.system.outPath))];
      const deps = depsOf(members[0]!.host);
      const report = await uploadClosure(spec, roots, deps.openStore, { ...deps, dryRun, onProgress: (progress) => onEvent({ type: "cache-progress", cache: spec.url, progress }) });
      for (const path of report.missing ?? []) lacking.add(path);
      reports.push(report);
      onEvent({ type: "cache-uploaded", report });
    } catch (err) {
      const error = err instanceof DeployError ? err : new ConnectError((err as Error).message, { cause: err });
      for (const host of members) failed.push({ host, error });
    }
  }
  return { reports, failed, lacking };
}

/** A plan's outcomes as they come (each also told to `onEvent`), starting with its hosts not created; and its ready hosts. */
export function recordOutcomes(plan: readonly PlannedHost[], onEvent: (event: PushEvent) => void) {
  const outcomes = new Map<string, HostOutcome>();
  const finish = (outcome: HostOutcome) => {
    outcomes.set(outcome.name, outcome);
    onEvent({ type: "host-done", outcome });
  };
  for (const host of plan) {
    if (!host.ready) finish({ name: host.name, status: "not-created", reason: host.reason, durationMs: 0, exitCode: EXIT_CODES.connect });
  }
  return { outcomes, finish, ready: readyHosts(plan) };
}

export type ReadyHost = Extract<PlannedHost, { ready: true }>;

export function readyHosts(plan: readonly PlannedHost[]): ReadyHost[] {
  return plan.filter((host): host is ReadyHost => host.ready);
}

type Deployable = { readonly host: Extract<PlannedHost, { ready: true }>; readonly system: Extract<FleetBuildResult, { ok: true }>["system"] };

/** A host this push changed goes back to the generation it had before, through the same checked activation. */
async function rollBackCompleted(host: Deployable["host"], outcome: HostOutcome, deps: PushDependencies, onEvent: (event: PushEvent) => void): Promise<HostOutcome> {
  const before = outcome.result!.previousGeneration;
  const started = Date.now();
  const request = { ...host.request, onEvent: (event: DeployEvent) => onEvent({ type: "host", host: host.name, event }) };
  if (before === undefined) {
    return { ...outcome, reason: "kept: it had no generation before this push to go back to" };
  }
  try {
    const result = await (deps.rollbackHost ?? rollbackHost)(request, deps, { to: before });
    return { ...outcome, status: "rolled-back", reason: `back on generation ${before} (the rollout stopped)`, rollback: { result }, durationMs: outcome.durationMs + Date.now() - started };
  } catch (err) {
    const error = err instanceof DeployError ? err : new ConnectError(`${host.name}: ${(err as Error).message}`, { cause: err });
    return { ...outcome, status: "failed", error, reason: `rolling back to generation ${before} failed`, rollback: { error }, exitCode: exitCodeOf(error) };
  }
}

/** What a push is asked to do, as its command line says it. */
export interface PushOptions {
  /** The cdktf project (the directory with cdktf.json). */
  readonly projectDir: string;
  /** The stack; may be left out when one stack has NixOS deployments. */
  readonly stack?: string;
  readonly synth: SynthMode;
  /** `--on` selectors; none selects every host. */
  readonly on: readonly string[];
  readonly settings: PushSettings;
}

/** A push decided and checked: nothing has been built or contacted yet. */
export interface PreparedPush {
  readonly stack: string;
  /** How the stack was obtained, in words ("synthesized: …", "cdktf.out is up to date"). */
  readonly synth: string;
  /** How long a synthesis took, when one ran. */
  readonly synthMs?: number;
  readonly hosts: readonly FleetHost[];
  readonly plan: readonly PlannedHost[];
  /** Takes the selected hosts' sensitive module arguments out of messages. */
  readonly redact: Redact;
}

export interface PrepareCallbacks {
  /** A synthesis is about to start, and why (it takes seconds). */
  readonly onSynth?: (why: string) => void;
  /** Something about the stack's state worth a line. */
  readonly onNote?: (note: string) => void;
  /** How a host would be logged in to is unusable (see DeployDependencies.checkLogin). */
  readonly checkLogin?: (target: TargetSpec) => Promise<string | undefined>;
}

/**
 * The push use case up to the first build or connection: the stack (synthesized when stale), its hosts with what
 * Terraform applied, the selection, the plan with every host's keys read (none for a dry run) and how each host is
 * logged in to checked. Every input error (a UserInputError) surfaces here; `push` then carries the plan out.
 */
export async function preparePush(options: PushOptions, callbacks: PrepareCallbacks = {}): Promise<PreparedPush> {
  let synthStarted: number | undefined;
  const loaded = await loadStack(options.projectDir, options.stack, options.synth, (why) => {
    synthStarted = Date.now();
    callbacks.onSynth?.(why);
  });
  const synthMs = synthStarted === undefined ? undefined : Date.now() - synthStarted;
  const inventory = resolveInventory(loaded.manifest, await readStackState(loaded.stackDir, callbacks.onNote));
  const hosts = selectHosts(inventory, options.on);
  const plan = await withKeys(planPush(hosts, options.settings), { dryRun: options.settings.dryRun });
  for (const host of plan) {
    if (!host.ready) continue;
    const problem = knownHostsFileProblem(host.request.target.knownHostsFile) ?? await callbacks.checkLogin?.(host.request.target);
    if (problem !== undefined) throw new UserInputError(`${host.name}: ${problem}`);
  }
  return { stack: loaded.stack, synth: loaded.synth, synthMs, hosts, plan, redact: fleetRedactor(hosts) };
}

function buildHostKey(target: TargetSpec): string {
  return `${target.user ?? "root"}@${target.host}:${target.port ?? 22}`;
}

/**
 * Builds every host that has a build host there, once per build host (all its hosts' derivations in one build), before
 * anything is uploaded or deployed, each into `built` (the caller closes them). A failed build fails that build host's
 * hosts only; returns them.
 */
async function buildOnBuildHosts(deployable: readonly Deployable[], deps: PushDependencies, onEvent: (event: PushEvent) => void, built: Map<string, BuiltOnHost>) {
  const groups = new Map<string, Deployable[]>();
  for (const item of deployable) {
    const target = item.host.request.buildHost;
    if (target === undefined) continue;
    groups.set(buildHostKey(target), [...(groups.get(buildHostKey(target)) ?? []), item]);
  }
  const failed: { host: Deployable; error: DeployError }[] = [];
  await Promise.all([...groups].map(async ([key, members]) => {
    const request = members[0]!.host.request;
    onEvent({ type: "build-host", buildHost: key, hosts: members.map((m) => m.host.name) });
    try {
      const cache = request.cache?.publicKey === undefined ? undefined : { substituter: request.cache.substituter, publicKey: request.cache.publicKey };
      built.set(key, await buildOnBuildHost(request.buildHost!, members.map((m) => m.system), deps, {
        cache, replyTimeoutMs: (request.replyTimeoutSeconds ?? 60) * 1000,
      }));
      onEvent({ type: "built-on-build-host", buildHost: key, hosts: members.map((m) => m.host.name) });
    } catch (err) {
      const error = err instanceof DeployError ? err : new ConnectError((err as Error).message, { cause: err });
      for (const host of members) failed.push({ host, error });
    }
  }));
  return failed;
}
