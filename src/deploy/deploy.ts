import type { StoreSource } from "../nix/store-source";
import { shellQuote } from "../shell";
import { rollbackCommands } from "./activation";
import { ActivateError, DeployError, RollbackError } from "./errors";
import type { Action, ActivationReport, CopyProgress, CopyReport, Host, TargetSystem } from "./host";
import type { SystemSource, TargetSpec } from "./plan";

/** A system built (or, with buildOnTarget, only instantiated) on this machine. */
export interface LocalSystem {
  readonly drvPath?: string;
  /** The toplevel store path; for buildOnTarget it is the output the target will build. */
  readonly outPath: string;
  /** Nix system double the toplevel is for, e.g. "x86_64-linux". */
  readonly system: string;
}

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
  | { readonly type: "phase"; readonly phase: "evaluate" | "build" | "connect" | "inspect" | "copy" | "realise" | "activate" | "rollback"; readonly detail?: string }
  | { readonly type: "built"; readonly system: LocalSystem }
  | { readonly type: "target"; readonly target: TargetSystem }
  | { readonly type: "copy-progress"; readonly progress: CopyProgress }
  | { readonly type: "copied"; readonly report: CopyReport }
  | { readonly type: "activated"; readonly report: ActivationReport }
  | { readonly type: "rolled-back"; readonly toSystem?: string };

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

/**
 * Builds (or instantiates) the system, checks the target, copies the missing paths and activates. On a failed
 * activation the target is put back on the generation it had before.
 */
export async function deploy(request: DeployRequest, deps: DeployDependencies): Promise<DeployResult> {
  const started = Date.now();
  const action = request.action ?? "switch";
  const emit = request.onEvent ?? (() => undefined);

  emit({ type: "phase", phase: request.buildOnTarget ? "evaluate" : "build" });
  const local = request.buildOnTarget ? await deps.instantiate(request.source) : await deps.build(request.source);
  emit({ type: "built", system: local });

  emit({ type: "phase", phase: "connect", detail: request.target.host });
  const host = await deps.connect(request.target);
  try {
    emit({ type: "phase", phase: "inspect" });
    const target = await host.currentSystem();
    emit({ type: "target", target });
    checkTarget(host, target, local, request);

    const store = await deps.openStore();
    let copy: CopyReport;
    try {
      emit({ type: "phase", phase: "copy" });
      const roots = request.buildOnTarget && local.drvPath !== undefined ? [local.drvPath] : [local.outPath];
      copy = await host.copyClosure(store, roots, {
        useSubstitutes: request.useSubstitutes,
        onProgress: (progress) => emit({ type: "copy-progress", progress }),
      });
    } finally {
      await store.close();
    }
    emit({ type: "copied", report: copy });

    if (request.buildOnTarget && local.drvPath !== undefined) {
      emit({ type: "phase", phase: "realise", detail: local.drvPath });
      await realiseOnTarget(host, local.drvPath, local.outPath);
    }

    emit({ type: "phase", phase: "activate", detail: action });
    const activation = await activateWithRollback(host, local.outPath, action, target, request, emit);
    emit({ type: "activated", report: activation });

    return {
      host: host.name,
      action,
      system: local.system,
      pathsCopied: copy.pathsCopied,
      pathsInClosure: copy.pathsInClosure,
      bytesSent: copy.bytesSent,
      previousSystem: activation.previousSystem ?? target.currentSystem,
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
export function checkTarget(host: Host, target: TargetSystem, local: LocalSystem, request: DeployRequest): void {
  if (target.system !== local.system) {
    throw new DeployError("connect", `${host.name} is ${target.system} but the system was built for ${local.system}`, {
      hint: request.buildOnTarget
        ? "the configuration's nixpkgs.hostPlatform / system must match the target's architecture"
        : `set the configuration's system to ${target.system}, or pass --build-on-target to build it there`,
    });
  }
  if (!target.nixos && !request.allowNonNixos) {
    throw new DeployError("connect", `${host.name} does not look like NixOS (no /etc/NIXOS, no /run/current-system)`, {
      hint: "deploy onto a NixOS image, or pass --allow-non-nixos if this host is meant to become NixOS",
    });
  }
}

async function realiseOnTarget(host: Host, drvPath: string, outPath: string): Promise<void> {
  const command = `nix-store --realise ${shellQuote(drvPath)}`;
  const result = await host.run(command);
  if (result.exitCode !== 0) {
    throw new DeployError("build", `building ${drvPath} on ${host.name} failed`, {
      command,
      stderr: result.stderr,
      exitCode: result.exitCode,
    });
  }
  const built = result.stdout.trim().split("\n");
  if (!built.includes(outPath)) {
    throw new DeployError("build", `building ${drvPath} on ${host.name} produced ${built.join(", ")}, expected ${outPath}`, {
      command,
    });
  }
}

async function activateWithRollback(
  host: Host,
  toplevel: string,
  action: Action,
  before: TargetSystem,
  request: DeployRequest,
  emit: (event: DeployEvent) => void,
): Promise<ActivationReport> {
  try {
    return await host.activate(toplevel, action, {
      installBootloader: request.installBootloader,
      confirmTimeoutSeconds: request.confirmTimeoutSeconds,
    });
  } catch (err) {
    if (!(err instanceof ActivateError) || request.rollback === false) throw err;
    const commands = rollbackCommands(action, before, {
      sudo: request.target.user !== undefined && request.target.user !== "root",
      systemd: before.systemd,
      installBootloader: request.installBootloader,
    });
    if (commands.length === 0) throw err;
    const previous = action === "boot" ? before.profileSystem : before.currentSystem ?? before.profileSystem;
    emit({ type: "phase", phase: "rollback", detail: previous });
    for (const command of commands) {
      const result = await host.run(command);
      if (result.exitCode !== 0) {
        throw new RollbackError(`activation failed and rolling back to ${previous} failed too`, {
          command,
          stderr: result.stderr,
          exitCode: result.exitCode,
          hint: `the activation error was: ${err.message}. Log in to ${host.name} and activate a known-good ` +
            "generation (nixos-rebuild switch --rollback)",
        });
      }
    }
    emit({ type: "rolled-back", toSystem: previous });
    throw new ActivateError(`${err.message}; ${host.name} was rolled back to ${previous}`, {
      command: err.command,
      stderr: err.stderr,
      exitCode: err.exitCode,
      hint: err.hint,
      cause: err,
    });
  }
}
