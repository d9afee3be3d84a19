import { previousSystemOf } from "./activation";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import { DeployError, InspectError, KeysError } from "../errors";
import { diffClosures } from "../nix/closure-diff";
import type { LocalSystem } from "../nix/system";
import { shellQuote } from "../shell";
import { planActivation } from "./activation";
import { isUpToDate } from "../spec/goal";
import type { Host } from "./host";
import { uploadKeys, type KeyReport, type LoadedKey } from "./keys";
import { DEFAULT_SETTINGS } from "../spec/settings";

import { SYSTEM_CLOCK } from "./clock";
import type { ActivationReport, BuiltDeployRequest, DeployDependencies, DeployEvent, DeployPreview, DeployRequest, DeployResult, HostDependencies } from "./request";
import type { TargetSystem } from "./inspection";
import { checkArrived, connectTo, copyRoots, copyTo, during, inspectFor, realiseOnTarget, replyTimeoutMs } from "./phases";
import { activate } from "./activation-follower";
import { cachePublicKey, fetchFromCache, uploadClosure, type CacheFetchReport } from "./cache";
import { buildOnBuildHost, type BuiltOnHost } from "./build-host";
import { healthPlanOf, healthPlanSeconds } from "./health";

export type { ActivationReport, BuiltDeployRequest, DeployDependencies, DeployEvent, DeployPreview, DeployRequest, DeployResult, HostDependencies } from "./request";
export { SUDO_CHECK_COMMAND, arrivedCommand } from "./phases";

/**
 * Builds (or instantiates) the system, checks the target, copies the missing paths and activates it by the plan. On
 * a failed activation the target is put back on the generation it had before.
 */
export async function deploy(request: DeployRequest, deps: DeployDependencies): Promise<DeployResult> {
  const started = (deps.clock ?? SYSTEM_CLOCK).now();
  const emit = request.onEvent ?? (() => undefined);
  // the cache's key is read before anything is built: a key that cannot be read is the user's to fix first
  const cache = request.cache === undefined ? undefined : { ...request.cache, publicKey: await cachePublicKey(request.cache) };
  const instantiateOnly = request.buildOnTarget === true || request.buildHost !== undefined;
  emit({ type: "phase", phase: instantiateOnly ? "evaluate" : "build" });
  const local = instantiateOnly ? await deps.instantiate(request.source) : await deps.build(request.source);
  let builder: BuiltOnHost | undefined;
  if (request.buildHost !== undefined) {
    emit({ type: "phase", phase: "build", detail: `on the build host ${request.buildHost.host}` });
    builder = await buildOnBuildHost(request.buildHost, [local], deps, {
      cache: cache === undefined ? undefined : { substituter: cache.substituter, publicKey: cache.publicKey },
      replyTimeoutMs: replyTimeoutMs(request),
      onNotice: (message) => emit({ type: "notice", message }),
    });
  }
  try {
    // the outputs come from the build host's store, when there is one: they never enter this machine's
    const hostDeps = builder === undefined ? deps : { ...deps, openStore: builder.openStore };
    emit({ type: "built", system: local });
    if (cache !== undefined && !request.buildOnTarget) {
      emit({ type: "phase", phase: "copy", detail: `uploading to ${cache.url}` });
      const uploaded = await uploadClosure(cache, [local.outPath], hostDeps.openStore, { ...deps, onProgress: (progress) => emit({ type: "cache-progress", progress }) });
      emit({ type: "cache-uploaded", report: uploaded });
    }
    return await deployBuilt(local, { ...request, cache }, hostDeps, started);
  } finally {
    await builder?.close();
  }
}

/**
 * Deploys `local` to the request's target: connect, inspect, skip when the host already is what the action would
 * make it (unless `reactivate`), copy, activate. `deploy` after its build, and `push` once per host after one build
 * for the whole fleet.
 */
export async function deployBuilt(
  local: LocalSystem,
  request: BuiltDeployRequest,
  deps: HostDependencies,
  started?: number,
): Promise<DeployResult> {
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const startedAt = started ?? clock.now();
  const action = request.action ?? "switch";
  const emit = request.onEvent ?? (() => undefined);

  const keys = request.keys ?? [];
  const sudo = (request.target.user ?? "root") !== "root";
  const replyMs = replyTimeoutMs(request);
  const upload = async (uploadAt: LoadedKey["uploadAt"], when: string): Promise<KeyReport[]> => {
    const batch = action === "dry-activate" ? [] : keys.filter((k) => k.uploadAt === uploadAt);
    if (batch.length === 0) return [];
    emit({ type: "phase", phase: "keys", detail: `${batch.map((k) => k.name).join(", ")} ${when}` });
    emit({ type: "keys-uploading", names: batch.map((k) => k.name), uploadAt });
    return uploadKeysOn(host, batch, { sudo, when, timeoutMs: replyMs, onUploaded: (key) => emit({ type: "keys-uploaded", keys: [key] }) });
  };

  let host = await connectTo(request, deps, emit);
  try {
    const before = await inspectFor(host, local, request, emit);
    if (!request.reactivate && isUpToDate(action, before, local.outPath)) {
      emit({ type: "up-to-date", state: before });
      // the system stays; its keys may have changed
      const uploaded = [...await upload("before-activation", "before activation"), ...await upload("after-activation", "after activation")];
      return {
        host: host.name,
        action,
        system: local.system,
        upToDate: true,
        pathsCopied: 0,
        pathsInClosure: 0,
        bytesSent: 0,
        wireBytes: 0,
        previousSystem: before.currentSystem,
        newSystem: local.outPath,
        previousGeneration: before.profileGeneration,
        newGeneration: before.profileGeneration,
        keys: uploaded,
        durationMs: clock.now() - startedAt,
      };
    }

    let cacheFetch: CacheFetchReport | undefined;
    if (request.cache !== undefined && !request.buildOnTarget) {
      const cache = request.cache;
      emit({ type: "phase", phase: "copy", detail: `fetching from ${cache.substituter}` });
      const timeoutMs = (request.activationTimeoutSeconds ?? DEFAULT_SETTINGS.activationTimeoutSeconds) * 1000;
      cacheFetch = await fetchFromCache(host, local.outPath, cache.substituter, await cachePublicKey(cache), { sudo, timeoutMs });
      emit({ type: "cache-fetched", report: cacheFetch });
      if (cacheFetch.fellBack !== undefined) {
        emit({ type: "notice", message: `${host.name} could not fetch everything from ${cache.substituter} (${cacheFetch.fellBack}): copying the rest directly` });
      }
    }

    emit({ type: "phase", phase: "copy" });
    const copy = await copyTo(host, local, request, deps, emit);
    if (!request.buildOnTarget) await checkArrived(host, local.outPath, replyMs);
    emit({ type: "copied", report: copy });

    if (request.buildOnTarget && local.drvPath !== undefined) {
      emit({ type: "phase", phase: "build", detail: `${local.drvPath} on ${host.name}` });
      await realiseOnTarget(host, local.drvPath, local.outPath);
    }

    const uploadedBefore = await upload("before-activation", "before activation");

    const activated = await activateSystem(host, before, local.outPath, request, deps, emit);
    // activation may have replaced the connection; the finally below closes whichever is current
    host = activated.host;
    const activation = activated.report;
    if (activation.upToDate) {
      emit({ type: "up-to-date", state: { currentSystem: activation.previousSystem, profileGeneration: activation.newGeneration } });
    } else {
      emit({ type: "activated", report: activation });
    }
    const uploadedAfter = await upload("after-activation", "after activation");

    return {
      host: host.name,
      action,
      system: local.system,
      upToDate: activation.upToDate === true,
      pathsCopied: copy.pathsCopied,
      pathsInClosure: copy.pathsInClosure,
      bytesSent: copy.bytesSent,
      wireBytes: copy.wireBytes,
      copyTransport: copy.transport,
      ...(cacheFetch !== undefined ? { cacheFetch } : {}),
      previousSystem: activation.previousSystem,
      newSystem: activation.newSystem,
      previousGeneration: activation.previousGeneration,
      newGeneration: activation.newGeneration,
      keys: [...uploadedBefore, ...uploadedAfter],
      ...(action === "dry-activate" ? { dryActivation: afterLine(activation.output, `dry-activate of ${local.outPath}`) } : {}),
      ...(activation.failedUnits !== undefined ? { failedUnits: activation.failedUnits } : {}),
      ...(activation.healthChecks !== undefined ? { healthChecks: activation.healthChecks } : {}),
      durationMs: clock.now() - startedAt,
    };
  } finally {
    await host.close();
  }
}

/**
 * Activates `toplevel` (already in the host's store) by the request, through the detached, locked activation script,
 * with its health checks and confirmation: what a deployment does after the copy, and what a rollback does.
 */
export async function activateSystem(
  host: Host,
  before: TargetSystem,
  toplevel: string,
  request: BuiltDeployRequest,
  deps: HostDependencies,
  emit: (event: DeployEvent) => void,
  options: { readonly switchGeneration?: number } = {},
): Promise<{ host: Host; report: ActivationReport }> {
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const action = request.action ?? "switch";
  const health = healthPlanOf({ ...request, action }, before);
  const plan = planActivation({
    before,
    toplevel,
    action,
    user: request.target.user ?? "root",
    installBootloader: request.installBootloader,
    confirmTimeoutSeconds: request.confirmTimeoutSeconds,
    rollback: request.rollback,
    lockTimeoutSeconds: request.lockTimeoutSeconds ?? DEFAULT_SETTINGS.lockTimeoutSeconds,
    holder: `${hostname()} pid ${process.pid}`,
    id: deps.activationId?.() ?? randomBytes(6).toString("hex"),
    keepGenerations: request.keepGenerations,
    reactivate: request.reactivate,
    acceptFailedUnits: request.acceptFailedUnits,
    healthCheckSeconds: healthPlanSeconds(health),
    switchGeneration: options.switchGeneration,
  });
  emit({ type: "phase", phase: "activate", detail: action });
  return activate(host, plan, before, request, emit, clock, health);
}

/** What a log says after `line` (the script's own lines before it are not the activation's output). */
function afterLine(log: string, line: string): string {
  const lines = log.split("\n");
  const index = lines.indexOf(line);
  return index < 0 ? log : lines.slice(index + 1).join("\n");
}

/** Uploads a batch of keys; a transport failure becomes a KeysError that says what the host was left with. */
async function uploadKeysOn(
  host: Host,
  keys: readonly LoadedKey[],
  options: { sudo: boolean; when: string; timeoutMs: number; onUploaded: (key: KeyReport) => void },
): Promise<KeyReport[]> {
  const when = options.when;
  try {
    return await uploadKeys(host, keys, options);
  } catch (err) {
    if (err instanceof DeployError) throw err;
    throw new KeysError(`uploading keys to ${host.name} ${when} failed: ${(err as Error).message}`, {
      cause: err,
      hint: "a key is written whole or not at all: keys not yet uploaded are as they were; deploy again",
    });
  }
}

/**
 * `--dry-run`: connects and inspects like a deployment, then asks the host's store which paths it lacks and lists the
 * host's current closure, but writes nothing on the host (the serve session runs without --write).
 */
export async function previewDeploy(
  local: LocalSystem,
  request: BuiltDeployRequest,
  deps: HostDependencies,
  options: { readonly cacheLacks?: ReadonlySet<string> } = {},
): Promise<DeployPreview> {
  const action = request.action ?? "switch";
  const emit = request.onEvent ?? (() => undefined);
  const host = await connectTo(request, deps, emit);
  try {
    const before = await inspectFor(host, local, request, emit);
    const previousSystem = previousSystemOf(action, before);
    // --reactivate activates a host that already runs the system: a dry run says it would
    const upToDate = request.reactivate !== true && isUpToDate(action, before, local.outPath);
    const roots = copyRoots(local, request);
    const store = await deps.openStore();
    const plan = await during("inspect", `querying the store of ${host.name}`, () => host.planCopy(store, roots, { replyTimeoutMs: replyTimeoutMs(request) }))
      .finally(() => store.close());
    let previousClosure: string[] = [];
    if (previousSystem !== undefined) {
      const command = `nix-store --query --requisites ${shellQuote(previousSystem)}`;
      const listed = await during("inspect", `listing the closure of ${previousSystem} on ${host.name}`, () => host.run(command, { timeoutMs: replyTimeoutMs(request) }));
      if (listed.exitCode !== 0) {
        throw new InspectError(`could not list the closure of ${previousSystem} on ${host.name}`, { command, stderr: listed.stderr, exitCode: listed.exitCode });
      }
      previousClosure = listed.stdout.split("\n").filter((line) => line.startsWith("/"));
    }
    const newClosure = request.buildOnTarget ? [] : plan.closure.map((info) => info.path);
    return {
      host: host.name,
      action,
      newSystem: local.outPath,
      upToDate,
      previousSystem,
      previousGeneration: before.profileGeneration,
      pathsInClosure: plan.pathsInClosure,
      pathsToSend: plan.send.length,
      bytesToSend: plan.bytesToSend,
      changes: upToDate || request.buildOnTarget ? [] : diffClosures(previousClosure, newClosure),
      ...(request.cache !== undefined && !request.buildOnTarget && !upToDate
        ? { cache: { substituter: request.cache.substituter, uploadedFirst: plan.send.filter((info) => options.cacheLacks?.has(info.path) === true).length } }
        : {}),
    };
  } finally {
    await host.close();
  }
}

