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

export interface PushSettings {
  /** Hosts deployed at once. */
  readonly parallel: number;
  /** Only say what would happen on each host. */
  readonly dryRun: boolean;
  /** Start no further host once one has failed. */
  readonly failFast: boolean;
  /** Settings given on the command line: each replaces every selected deployment's own. */
  readonly overrides: SettingOverrides;
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
export function planPush(hosts: readonly FleetHost[], settings: Pick<PushSettings, "overrides">): PlannedHost[] {
  return hosts.map((host): PlannedHost => {
    if (!host.applied.created) return { name: host.name, ready: false, reason: host.applied.reason };
    const spec = host.spec;
    const applied = host.applied;
    const mapped = deployRequestOf(spec, applied, settings.overrides);
    return {
      name: host.name,
      ready: true,
      build: {
        name: host.name,
        configuration: spec.source.configuration,
        nixPath: spec.source.nixPath ?? {},
        flake: spec.source.flake,
        moduleArgs: applied.moduleArgs,
        buildOnTarget: mapped.request.buildOnTarget,
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
      return { ...host, request: { ...host.request, keys: await loadKeys(host.keys, cache) } };
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

export type HostStatus = "deployed" | "up-to-date" | "would-deploy" | "failed" | "not-created" | "skipped";

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
}

export type PushEvent =
  | { readonly type: "fleet"; readonly phase: "evaluate-and-build"; readonly hosts: readonly string[] }
  | { readonly type: "built"; readonly host: string; readonly result: FleetBuildResult }
  | { readonly type: "host"; readonly host: string; readonly event: DeployEvent }
  | { readonly type: "host-done"; readonly outcome: HostOutcome };

export interface PushReport {
  readonly dryRun: boolean;
  readonly hosts: readonly HostOutcome[];
  /** 0 when every host was deployed, up to date (or would deploy); else the worst host's code. */
  readonly exitCode: number;
  readonly durationMs: number;
  /** Of durationMs, the fleet's one evaluation and build. */
  readonly buildMs: number;
}

export interface PushDependencies extends HostDependencies {
  /** One evaluation and one build for every member (see nix/fleet-build). */
  buildFleet(members: readonly FleetBuildMember[]): Promise<Map<string, FleetBuildResult>>;
}

/**
 * Carries out a plan: one evaluation and build of every ready host's system, then each host through
 * deployBuilt (or previewDeploy for a dry run), at most `parallel` at once. One host's failure never stops the
 * others already running; with failFast no further host starts.
 */
export async function push(plan: readonly PlannedHost[], settings: PushSettings, deps: PushDependencies, onEvent: (event: PushEvent) => void = () => undefined): Promise<PushReport> {
  const started = Date.now();
  const outcomes = new Map<string, HostOutcome>();
  const finish = (outcome: HostOutcome) => {
    outcomes.set(outcome.name, outcome);
    onEvent({ type: "host-done", outcome });
  };
  for (const host of plan) {
    if (!host.ready) finish({ name: host.name, status: "not-created", reason: host.reason, durationMs: 0, exitCode: EXIT_CODES.connect });
  }
  const ready = plan.filter((host): host is Extract<PlannedHost, { ready: true }> => host.ready);
  let buildMs = 0;
  if (ready.length > 0) {
    onEvent({ type: "fleet", phase: "evaluate-and-build", hosts: ready.map((h) => h.name) });
    const built = await deps.buildFleet(ready.map((h) => h.build));
    buildMs = Date.now() - started;
    const deployable: Array<{ host: (typeof ready)[number]; system: Extract<FleetBuildResult, { ok: true }>["system"] }> = [];
    for (const host of ready) {
      const result = built.get(host.name)!;
      onEvent({ type: "built", host: host.name, result });
      if (result.ok) deployable.push({ host, system: result.system });
      else finish({ name: host.name, status: "failed", error: result.error, durationMs: Date.now() - started, exitCode: exitCodeOf(result.error) });
    }
    let failed = [...outcomes.values()].some((o) => o.status === "failed");
    await eachAtMost(settings.parallel, deployable, () => settings.failFast && failed, async ({ host, system }) => {
      const hostStarted = Date.now();
      const request = { ...host.request, onEvent: (event: DeployEvent) => onEvent({ type: "host", host: host.name, event }) };
      try {
        if (settings.dryRun) {
          const preview = await previewDeploy(system, request, deps);
          finish({ name: host.name, status: preview.upToDate ? "up-to-date" : "would-deploy", preview, durationMs: Date.now() - hostStarted, exitCode: 0 });
        } else {
          const result = await deployBuilt(system, request, deps, hostStarted);
          finish({ name: host.name, status: result.upToDate ? "up-to-date" : "deployed", result, durationMs: result.durationMs, exitCode: 0 });
        }
      } catch (err) {
        failed = true;
        const error = err instanceof DeployError ? err : new ConnectError(`${host.name}: ${(err as Error).message}`, { cause: err });
        finish({ name: host.name, status: "failed", error, durationMs: Date.now() - hostStarted, exitCode: exitCodeOf(error) });
      }
    }, (skipped) => finish({ name: skipped.host.name, status: "skipped", reason: "not started: another host failed (--fail-fast)", durationMs: 0, exitCode: EXIT_CODES.failure }));
  }
  const hosts = plan.map((host) => outcomes.get(host.name)!);
  return { dryRun: settings.dryRun, hosts, exitCode: worstExitCode(hosts.map((h) => h.exitCode)), durationMs: Date.now() - started, buildMs };
}

/** Runs `work` for each item with at most `limit` at a time; once `stop()` holds, the rest go to `skip`. */
async function eachAtMost<T>(limit: number, items: readonly T[], stop: () => boolean, work: (item: T) => Promise<void>, skip: (item: T) => void): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) {
      const item = items[next++];
      if (stop()) skip(item);
      else await work(item);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
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
