import { ActivateError, ConfirmError, HostStateUnknownError, LockError, RollbackError, type DeployError, type HostState } from "../errors";
import { ACTIVATION_DIR, type TargetSystem } from "./inspection";
import { UNITS_FAILED_EXIT, rollbackTarget, type ActivationPlan } from "./activation";
import { parseJournal, type ActivationState } from "./activation-state";
import type { ActivationReport } from "./request";

/** What the follower saw of an activation by the time it stopped waiting. */
export interface ActivationFacts {
  /** The last state read (undefined when none was read before the wait ran out). */
  readonly state?: ActivationState;
  /**
   * Why following stopped short of a final state: a wait's deadline passed (`start`: the lock and the start state;
   * `status`: switch-to-configuration; `rollback`: the script's rollback), the host restarted (its state in /run is
   * gone), or the script stopped without finishing.
   */
  readonly stopped?: "start-timeout" | "status-timeout" | "rollback-timeout" | "restarted" | "script-gone";
  /** What the activation wrote (its log's tail), when it was read. */
  readonly log: string;
  /** The failed units' journal lines (the journal file's tail), when there were failed units. */
  readonly journal?: string;
  /** What the host runs now, when it was read. */
  readonly hostNow?: TargetSystem;
  /** The host as inspected before the deployment touched it. */
  readonly inspected: HostState;
}

export interface InterpretContext {
  readonly plan: ActivationPlan;
  /** The host, as messages name it. */
  readonly name: string;
  /** The request asked for no rollback (`--no-rollback`). */
  readonly rollbackDeclined: boolean;
  readonly activationSeconds: number;
  readonly startWaitSeconds: number;
}

/** The host's reports, or the typed error that says what it is in. */
export type ActivationVerdict =
  /** Activated; a confirmed activation still has to be confirmed. */
  | { readonly kind: "activated"; readonly report: ActivationReport; readonly previous: string }
  /** Another deployment made the host what this one would while it waited for the lock: nothing was done. */
  | { readonly kind: "up-to-date"; readonly report: ActivationReport }
  /** Failed; `rolledBackTo` when the script put the host back. */
  | { readonly kind: "failed"; readonly error: DeployError; readonly rolledBackTo?: string };

/** The system a failed (or unconfirmed) activation goes back to, in words: as recorded under the lock, else as inspected. */
export function previousSystem(plan: ActivationPlan, state: ActivationState | undefined): string {
  return (state?.before !== undefined ? rollbackTarget(plan.action, state.before) : plan.rollbackTo) ?? "its previous system";
}

/** What the follower must read before interpreting: the log, and what the host runs now. */
export function factsNeeded(
  state: ActivationState | undefined,
  stopped: ActivationFacts["stopped"],
  plan: Pick<ActivationPlan, "keptExitCodes">,
): { readonly log: boolean; readonly hostNow: boolean; readonly journal: boolean } {
  const journal = (state?.failedUnits?.length ?? 0) > 0;
  if (stopped === "start-timeout") return { log: false, hostNow: false, journal: false };
  if (stopped !== undefined) return { log: stopped === "script-gone" || stopped === "rollback-timeout", hostNow: true, journal };
  const status = state?.status;
  if (status?.kind === "up-to-date") return { log: true, hostNow: false, journal: false };
  if (status?.kind === "exited") {
    return { log: true, hostNow: !plan.keptExitCodes.includes(status.code) || state?.after === undefined, journal };
  }
  return { log: false, hostNow: true, journal: false };
}

/**
 * The pure interpretation of an activation's final state: every outcome the host can end in, with what to report
 * (the generations and systems it recorded under the lock) or the typed error that says what the host runs now.
 */
export function interpretActivation(context: InterpretContext, facts: ActivationFacts): ActivationVerdict {
  const { plan, name } = context;
  const what = `'${plan.action}' of ${plan.toplevel} on ${name}`;
  const switchCommand = `${plan.toplevel}/bin/switch-to-configuration ${plan.action}`;
  const state = facts.state;
  const before: HostState = state?.before ?? facts.inspected;
  const previous = previousSystem(plan, state);
  const failed = (error: DeployError, rolledBackTo?: string): ActivationVerdict => ({ kind: "failed", error, rolledBackTo });
  const now = facts.hostNow;

  switch (facts.stopped) {
    case "start-timeout":
      return failed(new HostStateUnknownError(`${what} did not start within ${context.startWaitSeconds} s`, { hint: `read ${plan.logFile} on ${name}` }));
    case "restarted":
      return failed(new ActivateError(`${name} restarted during ${what}: the activation's state in /run is gone; it runs ` +
        `${now?.currentSystem ?? "no system"}${now?.profileGeneration === undefined ? "" : ` (its profile is generation ${now.profileGeneration})`}`, {
        command: switchCommand, hostState: now,
        hint: "nothing rolls back across a restart: deploy again to put the host on the system you want",
      }));
    case "script-gone":
      return failed(new HostStateUnknownError(`the activation script of ${what} stopped before it finished (was it killed, or its unit stopped?)`, {
        command: switchCommand, stderr: facts.log, hostState: now,
        hint: `what it started may still run, and nothing rolls it back; the next deployment waits until that has ended. Its log is ${plan.logFile} on ${name}`,
      }));
    case "status-timeout":
      if (plan.confirm !== undefined) {
        return failed(new ConfirmError(
          `${what} did not finish within ${context.activationSeconds} s; it was not confirmed, so once it finishes the host ` +
            `rolls itself back to ${previous}`,
          { command: switchCommand, hint: "raise --activation-timeout if activation is this slow" },
        ));
      }
      return failed(new HostStateUnknownError(`${what} did not finish within ${context.activationSeconds} s`, {
        command: switchCommand,
        hint: `it goes on on the host (and rolls back by itself if it fails): read ${plan.logFile} there, or raise ` +
          "--activation-timeout if activation is this slow",
      }));
    case "rollback-timeout":
    case undefined:
      break;
  }

  const status = state?.status;
  if (status === undefined) {
    // a final state always has a status; without one the follower stopped too early
    return failed(new HostStateUnknownError(`${what} left no status on ${name}`, { hint: `read ${plan.logFile} on ${name}` }));
  }
  switch (status.kind) {
    case "missing-tool":
      return failed(new LockError(`${name} has no ${status.tool} command, which the deployment lock needs; nothing was changed`, {
        hint: `install ${status.tool === "flock" ? "util-linux" : status.tool} on ${name} (NixOS has it in the system path)`,
        hostState: now,
      }));
    case "locked":
      return failed(new LockError(
        `${name} is locked by another deployment (${state?.waitingFor ?? "unknown holder"}) for more than ` +
          `${plan.lockTimeoutSeconds} s; nothing was changed`,
        {
          hint: "deploy again once it has finished, or wait longer with --lock-timeout. The lock lives in " +
            `${ACTIVATION_DIR}/lock and is released when its holder's activation ends (or the host reboots)`,
          hostState: now,
        },
      ));
    case "up-to-date":
      return {
        kind: "up-to-date",
        report: {
          action: plan.action,
          previousGeneration: before.profileGeneration,
          newGeneration: before.profileGeneration,
          previousSystem: before.currentSystem,
          newSystem: plan.toplevel,
          output: facts.log,
          upToDate: true,
        },
      };
    case "exited":
      break;
  }

  const failedUnits = parseJournal(state?.failedUnits ?? [], facts.journal ?? "");
  if (plan.keptExitCodes.includes(status.code)) {
    const after = state?.after ?? now;
    return {
      kind: "activated",
      previous,
      report: {
        action: plan.action,
        previousGeneration: before.profileGeneration,
        newGeneration: after?.profileGeneration,
        previousSystem: before.currentSystem,
        newSystem: plan.toplevel,
        output: facts.log,
        ...(failedUnits.length > 0 ? { failedUnits } : {}),
      },
    };
  }

  const unitsFailed = status.code === UNITS_FAILED_EXIT && failedUnits.length > 0;
  const message = `${what} exited with code ${status.code}` +
    (unitsFailed ? ` (units failed: ${failedUnits.map((u) => u.name).join(", ")})` : "");
  const details = {
    command: switchCommand, stderr: facts.log, exitCode: status.code, hostState: now,
    ...(failedUnits.length > 0 ? { failedUnits } : {}),
    hint: `the activation's whole log is ${plan.logFile} on ${name}` +
      (status.code === UNITS_FAILED_EXIT ? "; to keep a system whose only failure is failed units, deploy with --accept-failed-units" : ""),
  };
  if (!plan.rollback) {
    return failed(new ActivateError(context.rollbackDeclined ? `${message}; ${name} was left as it is (--no-rollback)` : message, details));
  }
  const rolledBack = state?.rolledBack;
  if (facts.stopped === "rollback-timeout" || rolledBack === undefined) {
    return failed(new HostStateUnknownError(`${message}, and rolling back to ${previous} did not finish within ${context.activationSeconds} s`, details));
  }
  if (rolledBack.kind === "nothing") return failed(new ActivateError(`${message}; ${name} had no earlier system to roll back to`, details));
  if (rolledBack.code !== 0) {
    return failed(new RollbackError(`${message}, and rolling back to ${previous} failed too (exit ${rolledBack.code})`, {
      ...details,
      hint: `log in to ${name} and activate a known-good generation (nixos-rebuild switch --rollback)`,
    }));
  }
  return failed(new ActivateError(`${message}; ${name} was rolled back to ${previous}`, details), previous);
}
