import { randomBytes } from "node:crypto";
import {
  ActivateError,
  BuildError,
  ConfirmError,
  ConnectError,
  CopyError,
  DeployError,
  InspectError,
  RollbackError,
  TransportError,
  type DeployPhase,
} from "../errors";
import type { CopyProgress, CopyReport } from "../nix/serve/copy";
import { ServeError } from "../nix/serve/session";
import type { StoreSource } from "../nix/store-source";
import type { LocalSystem, SystemSource } from "../nix/system";
import { shellQuote } from "../shell";
import { planActivation, type ActivationPlan } from "./activation";
import type { Action } from "./goal";
import type { Host } from "./host";
import { INSPECT_COMMAND, parseInspection, SYSTEM_PROFILE, type TargetSystem } from "./inspection";
import type { TargetSpec } from "./target-spec";

/** What orchestration needs from the world; the defaults wire in local Nix and ssh2. */
export interface DeployDependencies {
  /** Evaluate and build the system locally. */
  build(source: SystemSource): Promise<LocalSystem>;
  /** Evaluate only, for building on the target. */
  instantiate(source: SystemSource): Promise<LocalSystem & { readonly drvPath: string }>;
  openStore(): Promise<StoreSource>;
  connect(target: TargetSpec): Promise<Host>;
}

export type DeployEvent =
  | { readonly type: "phase"; readonly phase: DeployPhase; readonly detail?: string }
  | { readonly type: "built"; readonly system: LocalSystem }
  | { readonly type: "target"; readonly target: TargetSystem }
  | { readonly type: "copy-progress"; readonly progress: CopyProgress }
  | { readonly type: "copied"; readonly report: CopyReport }
  | { readonly type: "activated"; readonly report: ActivationReport }
  | { readonly type: "rolled-back"; readonly toSystem?: string };

export interface ActivationReport {
  readonly action: Action;
  readonly previousGeneration?: number;
  readonly newGeneration?: number;
  readonly previousSystem?: string;
  readonly newSystem: string;
  /** What switch-to-configuration printed (for dry-activate: what it would do). */
  readonly output: string;
}

export interface DeployRequest {
  readonly source: SystemSource;
  readonly target: TargetSpec;
  /** @default "switch" */
  readonly action?: Action;
  readonly useSubstitutes?: boolean;
  /** Copy the derivation closure and build on the target (for a target of another architecture). */
  readonly buildOnTarget?: boolean;
  readonly installBootloader?: boolean;
  /**
   * Deploy onto a host that does not look like NixOS yet (no /etc/NIXOS, no /run/current-system).
   * @default false
   */
  readonly allowNonNixos?: boolean;
  /**
   * Roll the target back to its previous generation when activation fails.
   * @default true
   */
  readonly rollback?: boolean;
  /**
   * Confirm switch/test over a new connection within this many seconds, or the host rolls itself back.
   * @default - no confirmation
   */
  readonly confirmTimeoutSeconds?: number;
  /**
   * How long activation may take (switch-to-configuration, or a confirmed activation's exit status) before the
   * deployment gives up on it, like deploy-rs's activation timeout.
   * @default 600
   */
  readonly activationTimeoutSeconds?: number;
  readonly onEvent?: (event: DeployEvent) => void;
}

export interface DeployResult {
  readonly host: string;
  readonly action: Action;
  readonly system: string;
  readonly pathsCopied: number;
  readonly pathsInClosure: number;
  readonly bytesSent: number;
  readonly previousSystem?: string;
  readonly newSystem: string;
  readonly previousGeneration?: number;
  readonly newGeneration?: number;
  readonly durationMs: number;
}

export const DEFAULT_ACTIVATION_TIMEOUT_SECONDS = 600;
/** How often a confirmed activation's exit status is read. */
const STATUS_POLL_MS = 300;

/**
 * Builds (or instantiates) the system, checks the target, copies the missing paths and activates it by the plan. On
 * a failed activation the target is put back on the generation it had before.
 */
export async function deploy(request: DeployRequest, deps: DeployDependencies): Promise<DeployResult> {
  const started = Date.now();
  const action = request.action ?? "switch";
  const emit = request.onEvent ?? (() => undefined);

  emit({ type: "phase", phase: request.buildOnTarget ? "evaluate" : "build" });
  const local = request.buildOnTarget ? await deps.instantiate(request.source) : await deps.build(request.source);
  emit({ type: "built", system: local });

  emit({ type: "phase", phase: "connect", detail: request.target.host });
  const host = await during("connect", `connecting to ${request.target.host}`, () => deps.connect(request.target));
  try {
    emit({ type: "phase", phase: "inspect" });
    const before = await inspect(host);
    emit({ type: "target", target: before });
    checkTarget(host, before, local, request);

    emit({ type: "phase", phase: "copy" });
    const copy = await copyTo(host, local, request, deps, emit);
    emit({ type: "copied", report: copy });

    if (request.buildOnTarget && local.drvPath !== undefined) {
      emit({ type: "phase", phase: "build", detail: `${local.drvPath} on ${host.name}` });
      await realiseOnTarget(host, local.drvPath, local.outPath);
    }

    const plan = planActivation({
      before,
      toplevel: local.outPath,
      action,
      user: request.target.user ?? "root",
      installBootloader: request.installBootloader,
      confirmTimeoutSeconds: request.confirmTimeoutSeconds,
      id: randomBytes(6).toString("hex"),
    });
    emit({ type: "phase", phase: "activate", detail: action });
    const activation = await activateWithRollback(host, plan, before, request, emit);
    emit({ type: "activated", report: activation });

    return {
      host: host.name,
      action,
      system: local.system,
      pathsCopied: copy.pathsCopied,
      pathsInClosure: copy.pathsInClosure,
      bytesSent: copy.bytesSent,
      previousSystem: activation.previousSystem,
      newSystem: activation.newSystem,
      previousGeneration: activation.previousGeneration,
      newGeneration: activation.newGeneration,
      durationMs: Date.now() - started,
    };
  } finally {
    await host.close();
  }
}

/** Refuses, before anything is copied, a target that cannot run what was built. */
function checkTarget(host: Host, target: TargetSystem, local: LocalSystem, request: DeployRequest): void {
  if (!target.nix) {
    throw new InspectError(`${host.name} has no nix-store on its PATH`, {
      hint: "the target must be a NixOS host (or have Nix installed) for the closure to be copied to it",
    });
  }
  if (target.system !== local.system) {
    throw new InspectError(`${host.name} is ${target.system} but the system was built for ${local.system}`, {
      hint: request.buildOnTarget
        ? "the configuration's nixpkgs.hostPlatform / system must match the target's architecture"
        : `set the configuration's system to ${target.system}, or pass --build-on-target to build it there`,
    });
  }
  if (!target.nixos && !request.allowNonNixos) {
    throw new InspectError(`${host.name} does not look like NixOS (no /etc/NIXOS, no /run/current-system)`, {
      hint: "deploy onto a NixOS image, or pass --allow-non-nixos if this host is meant to become NixOS",
    });
  }
}

async function inspect(host: Host): Promise<TargetSystem> {
  const result = await during("inspect", `inspecting ${host.name}`, () => host.run(INSPECT_COMMAND));
  if (result.exitCode !== 0) {
    throw new InspectError(`could not inspect ${host.name}`, { command: INSPECT_COMMAND, stderr: result.stderr, exitCode: result.exitCode });
  }
  return parseInspection(result.stdout);
}

async function copyTo(
  host: Host,
  local: LocalSystem,
  request: DeployRequest,
  deps: DeployDependencies,
  emit: (event: DeployEvent) => void,
): Promise<CopyReport> {
  const roots = request.buildOnTarget && local.drvPath !== undefined ? [local.drvPath] : [local.outPath];
  let store: StoreSource | undefined;
  try {
    store = await deps.openStore();
    return await host.copyClosure(store, roots, {
      useSubstitutes: request.useSubstitutes,
      onProgress: (progress) => emit({ type: "copy-progress", progress }),
    });
  } catch (err) {
    if (err instanceof DeployError) throw err;
    if (err instanceof ServeError) {
      throw new CopyError(err.message, {
        command: err.command,
        stderr: err.stderr,
        exitCode: err.exitCode ?? undefined,
        hint: copyHint(err.stderr, request.target.user ?? "root"),
        cause: err,
      });
    }
    throw new CopyError(`copying to ${host.name} failed: ${(err as Error).message}`, {
      cause: err,
      hint: err instanceof TransportError ? "paths already copied stay valid on the target; run the deploy again to copy the rest" : undefined,
    });
  } finally {
    await store?.close();
  }
}

function copyHint(stderr: string, user: string): string | undefined {
  if (stderr.includes("lacks a valid signature")) {
    return `the target's Nix does not trust '${user}' to import unsigned paths: add it to nix.settings.trusted-users ` +
      "on the target, sign the closure (nix store sign) with a key the target trusts, or deploy as root";
  }
  if (stderr.includes("importing paths is not allowed")) return "the remote nix-store was started without --write";
  if (/command not found|No such file/.test(stderr)) return "nix-store is not on the PATH of non-interactive SSH sessions on the target";
  return undefined;
}

async function realiseOnTarget(host: Host, drvPath: string, outPath: string): Promise<void> {
  const command = `nix-store --realise ${shellQuote(drvPath)}`;
  const result = await during("build", `building on ${host.name}`, () => host.run(command));
  if (result.exitCode !== 0) {
    throw new BuildError(`building ${drvPath} on ${host.name} failed`, { command, stderr: result.stderr, exitCode: result.exitCode });
  }
  const built = result.stdout.trim().split("\n");
  if (!built.includes(outPath)) {
    throw new BuildError(`building ${drvPath} on ${host.name} produced ${built.join(", ")}, expected ${outPath}`, { command });
  }
}

async function activateWithRollback(
  host: Host,
  plan: ActivationPlan,
  before: TargetSystem,
  request: DeployRequest,
  emit: (event: DeployEvent) => void,
): Promise<ActivationReport> {
  const deadlineMs = (request.activationTimeoutSeconds ?? DEFAULT_ACTIVATION_TIMEOUT_SECONDS) * 1000;
  let failure: ActivationFailed;
  try {
    return plan.confirm ? await activateConfirmed(host, plan, before, deadlineMs) : await activatePlain(host, plan, before, deadlineMs);
  } catch (err) {
    if (!(err instanceof ActivationFailed)) throw err;
    failure = err;
  }
  const error = failure.error;
  if (request.rollback === false) {
    throw new ActivateError(`${error.message}; ${host.name} was left as it is (--no-rollback)`, errorDetails(error));
  }
  if (plan.rollback.length === 0) {
    throw new ActivateError(`${error.message}; ${host.name} had no earlier system to roll back to`, errorDetails(error));
  }
  emit({ type: "phase", phase: "rollback", detail: plan.rollbackTo });
  for (const command of plan.rollback) {
    let result;
    try {
      result = await withDeadline(host.run(command), deadlineMs);
    } catch (err) {
      throw new RollbackError(`activation failed and rolling back to ${plan.rollbackTo} did not finish: ${(err as Error).message}`, {
        command,
        cause: err,
        hint: rollbackHint(error, host),
      });
    }
    if (result.exitCode !== 0) {
      throw new RollbackError(`activation failed and rolling back to ${plan.rollbackTo} failed too`, {
        command,
        stderr: result.stderr,
        exitCode: result.exitCode,
        hint: rollbackHint(error, host),
      });
    }
  }
  emit({ type: "rolled-back", toSystem: plan.rollbackTo });
  throw new ActivateError(`${error.message}; ${host.name} was rolled back to ${plan.rollbackTo}`, errorDetails(error));
}

function errorDetails(error: DeployError) {
  return { command: error.command, stderr: error.stderr, exitCode: error.exitCode, hint: error.hint, cause: error };
}

function rollbackHint(error: DeployError, host: Host): string {
  return `the activation error was: ${error.message}. Log in to ${host.name} and activate a known-good ` +
    "generation (nixos-rebuild switch --rollback)";
}

/** An activation that ran and failed on the target, so rolling back is meaningful (unlike a lost connection). */
class ActivationFailed extends Error {
  constructor(readonly error: ActivateError) {
    super(error.message);
  }
}

async function activatePlain(host: Host, plan: ActivationPlan, before: TargetSystem, deadlineMs: number): Promise<ActivationReport> {
  const output: string[] = [];
  for (const command of plan.steps) {
    const result = await activationStep(host, command, plan, deadlineMs);
    output.push(result.stdout, result.stderr);
    if (result.exitCode !== 0) {
      throw new ActivationFailed(new ActivateError(`'${plan.action}' of ${plan.toplevel} on ${host.name} exited with code ${result.exitCode}`, {
        command,
        stderr: result.stderr,
        exitCode: result.exitCode,
        hint: /sudo: .*password/.test(result.stderr)
          ? "the login user needs passwordless sudo for nix-env and switch-to-configuration on the target"
          : undefined,
      }));
    }
  }
  // Activated: what follows only reports. The host runs the new system whatever this read returns.
  const after = await withDeadline(host.run(INSPECT_COMMAND), deadlineMs).catch(() => undefined);
  return activationReport(plan, before, after === undefined ? undefined : parseInspection(after.stdout), output.join(""));
}

/** One command of an activation, bounded; a lost connection or a timeout leaves the outcome unknown, and says so. */
async function activationStep(host: Host, command: string, plan: ActivationPlan, deadlineMs: number) {
  try {
    return await withDeadline(host.run(command), deadlineMs);
  } catch (err) {
    throw new ActivateError(`'${plan.action}' of ${plan.toplevel} on ${host.name} did not finish: ${(err as Error).message}`, {
      command,
      cause: err,
      hint: `whether ${host.name} switched is unknown: check /run/current-system and ${SYSTEM_PROFILE} on it before ` +
        "deploying again",
    });
  }
}

/**
 * Activates in the background on the target, then confirms over a new connection: a system that locks us out
 * (sshd, firewall, network) is rolled back by the target itself when the confirmation does not come.
 */
async function activateConfirmed(host: Host, plan: ActivationPlan, before: TargetSystem, deadlineMs: number): Promise<ActivationReport> {
  const protocol = plan.confirm!;
  const started = await activationStep(host, protocol.start, plan, deadlineMs);
  if (started.exitCode !== 0) {
    throw new ActivationFailed(new ActivateError(`could not start '${plan.action}' of ${plan.toplevel} on ${host.name}`, {
      command: protocol.start, stderr: started.stderr, exitCode: started.exitCode,
    }));
  }
  const previous = plan.rollbackTo ?? "its previous system";
  const status = await waitForStatus(host, protocol.readStatus, Date.now() + deadlineMs, protocol.timeoutSeconds * 1000);
  if (status.kind === "timeout") {
    throw new ConfirmError(
      `'${plan.action}' of ${plan.toplevel} on ${host.name} did not finish within ${deadlineMs / 1000} s; it was not confirmed, ` +
        `so once it finishes the host rolls itself back to ${previous}`,
      { command: `${plan.toplevel}/bin/switch-to-configuration ${plan.action}`, hint: "raise --activation-timeout if activation is this slow" },
    );
  }
  if (status.kind === "exited" && status.code !== "0") {
    const log = await withDeadline(host.run(protocol.readLog), deadlineMs).catch(() => undefined);
    throw new ActivationFailed(new ActivateError(`'${plan.action}' of ${plan.toplevel} on ${host.name} exited with code ${status.code}`, {
      command: `${plan.toplevel}/bin/switch-to-configuration ${plan.action}`,
      stderr: log?.stdout,
      exitCode: Number(status.code),
    }));
  }
  const timeout = protocol.timeoutSeconds;
  let confirmation: Host;
  try {
    // The target's countdown starts when activation ends, no later than now; confirming still needs a round trip
    // after connecting, so stop retrying with a fifth of the countdown left.
    confirmation = await host.reconnect({ retryForMs: timeout * 800 });
  } catch (err) {
    throw new ConfirmError(
      `${host.name} did not take a new SSH connection after '${plan.action}'; it rolls itself back to ${previous} ` +
        `${timeout} s after activating`,
      { cause: err, stderr: (err as Error).message, hint: "check what the new configuration does to sshd, the firewall and the network" },
    );
  }
  try {
    const confirmed = await withDeadline(confirmation.run(protocol.confirm), timeout * 1000).catch((err: Error) => {
      throw new ConfirmError(`confirming on ${host.name} failed: ${err.message}; it rolls itself back to ${previous}`, { cause: err });
    });
    if (confirmed.exitCode !== 0 || confirmed.stdout.trim() !== "0") {
      throw new ConfirmError(`the confirmation reached ${host.name} too late: it rolled back to ${previous}`, {
        command: protocol.confirm,
        stderr: confirmed.stderr,
        hint: `raise the confirmation timeout (${timeout} s) if activation is slow`,
      });
    }
    // Confirmed: what follows only reports. The host runs the new system whatever these reads return.
    const after = await withDeadline(confirmation.run(INSPECT_COMMAND), deadlineMs).catch(() => undefined);
    const log = await withDeadline(confirmation.run(protocol.readLog), deadlineMs).catch(() => undefined);
    return activationReport(plan, before, after === undefined ? undefined : parseInspection(after.stdout), log?.stdout ?? "");
  } finally {
    await confirmation.close();
  }
}

type ActivationStatus = { readonly kind: "exited"; readonly code: string } | { readonly kind: "lost" } | { readonly kind: "timeout" };

/**
 * Polls for a confirmed activation's exit status until the deadline. A read that gets no answer within `readTimeoutMs`
 * (the confirmation window) counts as a cut session: the new system may have broken it, and waiting longer would only
 * let the host's own countdown run out.
 */
async function waitForStatus(host: Host, readStatus: string, deadline: number, readTimeoutMs: number): Promise<ActivationStatus> {
  while (Date.now() < deadline) {
    let read;
    try {
      read = await withDeadline(host.run(readStatus), Math.max(Math.min(deadline - Date.now(), readTimeoutMs), 1));
    } catch {
      // Only a new connection can tell what happened.
      return { kind: "lost" };
    }
    const code = read.stdout.trim();
    if (code !== "") return { kind: "exited", code };
    await sleep(Math.min(STATUS_POLL_MS, Math.max(deadline - Date.now(), 0)));
  }
  return { kind: "timeout" };
}

function activationReport(plan: ActivationPlan, before: TargetSystem, after: TargetSystem | undefined, output: string): ActivationReport {
  return {
    action: plan.action,
    previousGeneration: before.profileGeneration,
    newGeneration: after?.profileGeneration,
    previousSystem: before.currentSystem,
    newSystem: plan.toplevel,
    output,
  };
}

/** Runs `step`, turning a transport failure into the error of the phase it happened in. */
async function during<T>(phase: "connect" | "inspect" | "build", doing: string, step: () => Promise<T>): Promise<T> {
  try {
    return await step();
  } catch (err) {
    if (err instanceof DeployError) throw err;
    const message = `${doing} failed: ${(err as Error).message}`;
    if (phase === "build") throw new BuildError(message, { cause: err });
    if (phase === "inspect") throw new InspectError(message, { cause: err });
    throw new ConnectError(message, { cause: err });
  }
}

/** Resolves like `promise`, or rejects once `ms` have passed. */
function withDeadline<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms / 1000} s`)), ms);
    timer.unref();
  });
  return Promise.race([promise, deadline]).finally(() => clearTimeout(timer));
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}
