import type { CompressMode } from "../nix/serve/copy-policy";
import {
  deployBuilt,
  previewDeploy,
  type BuiltDeployRequest,
  type DeployEvent,
  type DeployPreview,
  type DeployResult,
  type HostDependencies,
} from "../deploy/deploy";
import { KeySpecError, checkKeySpecs, loadKeys } from "../deploy/keys";
import { ConnectError, DeployError, exitCodeOf, worstExitCode, EXIT_CODES } from "../errors";
import { redactor, type Redact } from "../redact";
import type { FleetBuildMember, FleetBuildResult } from "../nix/fleet-build";
import type { FleetHost } from "./inventory";

export interface PushSettings {
  /** Hosts deployed at once. */
  readonly parallel: number;
  /** Only say what would happen on each host. */
  readonly dryRun: boolean;
  /** Start no further host once one has failed. */
  readonly failFast: boolean;
  /** Overrides every deployment's keepGenerations. */
  readonly keepGenerations?: number;
  /** Overrides every deployment's compress. */
  readonly compress?: CompressMode;
  /** Data channels a far host's copy may use at most. */
  readonly maxChannels?: number;
  readonly reactivate: boolean;
  readonly lockTimeoutSeconds: number;
  readonly activationTimeoutSeconds: number;
  /** How long a host may leave a question unanswered (see DeployRequest.replyTimeoutSeconds). @default 60 */
  readonly replyTimeoutSeconds?: number;
  /** EC2 endpoint for the console host keys (default: AWS, or AWS_ENDPOINT_URL_EC2). */
  readonly ec2Endpoint?: string;
}

/** One selected host of a push, decided before anything is built or contacted. */
export type PlannedHost =
  | { readonly name: string; readonly ready: true; readonly build: FleetBuildMember; readonly request: BuiltDeployRequest }
  | { readonly name: string; readonly ready: false; readonly reason: string };

/**
 * The pure plan of a push: for every selected host, what it is built from and how it is deployed, with the
 * deployment's own settings (action, confirmation, user, port, keys) and the values Terraform applied.
 */
export function planPush(hosts: readonly FleetHost[], settings: PushSettings): PlannedHost[] {
  return hosts.map((host): PlannedHost => {
    if (!host.applied.created) return { name: host.name, ready: false, reason: host.applied.reason };
    const spec = host.spec;
    const applied = host.applied;
    return {
      name: host.name,
      ready: true,
      build: {
        name: host.name,
        configuration: spec.source.configuration,
        nixPath: spec.source.nixPath ?? {},
        flake: spec.source.flake,
        moduleArgs: applied.moduleArgs,
        buildOnTarget: spec.buildOnTarget,
      },
      request: {
        target: {
          host: applied.host,
          user: spec.user,
          port: spec.port,
          privateKeyFile: spec.sshPrivateKeyFile,
          knownHostsFile: spec.knownHostsFile,
          acceptNewHostKey: spec.acceptNewHostKey,
          hostKeyFromEc2Console: applied.instanceId === undefined
            ? undefined
            : { instanceId: applied.instanceId, region: applied.region, endpoint: settings.ec2Endpoint ?? spec.ec2Endpoint },
        },
        action: spec.action,
        useSubstitutes: spec.useSubstitutes,
        compress: settings.compress ?? spec.compress,
        maxChannels: settings.maxChannels,
        buildOnTarget: spec.buildOnTarget,
        confirmTimeoutSeconds: spec.confirmTimeoutSeconds > 0 ? spec.confirmTimeoutSeconds : undefined,
        lockTimeoutSeconds: settings.lockTimeoutSeconds,
        activationTimeoutSeconds: settings.activationTimeoutSeconds,
        replyTimeoutSeconds: settings.replyTimeoutSeconds,
        keepGenerations: settings.keepGenerations ?? spec.keepGenerations,
        reactivate: settings.reactivate,
      },
    };
  });
}

/**
 * Reads the keys of every ready host on this machine (a file or command shared by several hosts is read once), before
 * anything is built or contacted. A dry run uploads no key, so it reads none (no secret is needed for it, no key
 * command runs): it only checks the specs. Throws a KeySpecError naming the host's key when one cannot be read.
 */
export async function withKeys(plan: readonly PlannedHost[], hosts: readonly FleetHost[], options: { readonly dryRun: boolean }): Promise<PlannedHost[]> {
  const cache = new Map<string, Promise<Buffer>>();
  const specs = new Map(hosts.map((h) => [h.name, h.spec.keys]));
  return Promise.all(plan.map(async (host) => {
    if (!host.ready) return host;
    try {
      if (options.dryRun) {
        checkKeySpecs(specs.get(host.name) ?? []);
        return host;
      }
      return { ...host, request: { ...host.request, keys: await loadKeys(specs.get(host.name) ?? [], cache) } };
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
