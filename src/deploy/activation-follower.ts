// Follows the detached activation script on the target to its end through its state files (see activation.ts).
import { ActivateError, ConfirmError, HealthCheckError, HostStateUnknownError, LockError, RollbackError, type HealthCheckResult } from "../errors";
import { runHealthChecks, type HealthPlan } from "./health";
import { ACTIVATION_DIR, CONFIRM_SCRIPT_GONE, UNSAFE_STATE_DIR_EXIT, type ActivationPlan } from "./activation";
import { factsNeeded, interpretActivation, previousSystem, type ActivationFacts } from "./interpret-activation";
import { parseActivationState, type ActivationState } from "./activation-state";
import type { Host, RunResult } from "./host";
import { INSPECT_COMMAND, parseInspection, type TargetSystem } from "./inspection";
import { unsafeDirReasons } from "./safe-dir";
import { DEFAULT_SETTINGS } from "../spec/settings";

import { sleep, withDeadline, type Clock } from "./clock";
import type { ActivationReport, BuiltDeployRequest, DeployEvent } from "./request";
import { TargetSession, Unreachable } from "./target-session";

/** How many reads of the state files in a row may end without their exit status 0 before the state counts as unknown. */
const INCOMPLETE_READS = 5;

/**
 * Every deadline of following one activation, from its plan and request: one pure function, so the deadlines that
 * interact (lock, activation, confirmation, reconnecting, each read) are decided and tested in one place.
 */
export function activationDeadlines(plan: ActivationPlan, activationTimeoutSeconds: number) {
  const activationMs = activationTimeoutSeconds * 1000;
  const confirmMs = plan.confirm === undefined ? undefined : plan.confirm.timeoutSeconds * 1000;
  return {
    activationMs,
    /** How often the state files are read. */
    pollMs: 300,
    /** Starting the detached script is one quick command. */
    startBoundMs: 30_000,
    /** One read of the state files; a confirmed activation's reads stay within its window. */
    readBoundMs: Math.min(15_000, confirmMs ?? 15_000),
    /** The lock and the start state: the lock timeout, plus time for the script to notice and say it gave up. */
    startWaitMs: plan.lockTimeoutSeconds * 1000 + 15_000,
    /**
     * Until when a lost connection is worth reconnecting for, while waiting until `phaseDeadline`: a confirmed
     * activation's host counts down once activation ends, so only for most of that window (a confirmation still needs
     * a round trip); otherwise the phase's own deadline.
     */
    reconnectUntil: (phaseDeadline: number, now: number) => (confirmMs === undefined ? phaseDeadline : Math.min(phaseDeadline, now + confirmMs * 0.8)),
    /** Reconnecting for the confirmation: stop with a fifth of the countdown left. */
    confirmRetryMs: confirmMs === undefined ? 0 : confirmMs * 0.8,
    /** The confirmation command, and each read after a refused one: within the countdown. */
    confirmBoundMs: confirmMs ?? 0,
  };
}

/**
 * Runs the plan's detached activation script and follows it to the end through its state files: the lock, the
 * start state, the exit status, the script's own rollback and, for a confirmed activation, the confirmation over a
 * new connection. What the host ended in is interpreted by interpretActivation; nothing is assumed.
 */
export async function activate(
  host: Host,
  plan: ActivationPlan,
  inspected: TargetSystem,
  request: BuiltDeployRequest,
  emit: (event: DeployEvent) => void,
  clock: Clock,
  health?: HealthPlan,
): Promise<{ report: ActivationReport; host: Host }> {
  const session = new TargetSession(host, emit, clock);
  const deadlines = activationDeadlines(plan, request.activationTimeoutSeconds ?? DEFAULT_SETTINGS.activationTimeoutSeconds);
  const { activationMs, readBoundMs } = deadlines;
  const name = host.name;
  const what = `'${plan.action}' of ${plan.toplevel} on ${name}`;
  const previous = plan.rollbackTo ?? "its previous system";

  const readState = async (phaseDeadline: number): Promise<ActivationState> => {
    for (let tries = 1; ; tries++) {
      const read = await session.read(plan.readState, { readBoundMs, reconnectUntil: () => deadlines.reconnectUntil(phaseDeadline, clock.now()) });
      if (read.exitCode === 0) {
        const state = parseActivationState(read.stdout);
        if (state.garbled.length > 0) {
          throw new HostStateUnknownError(`the state files of ${what} hold what no activation writes (${state.garbled.join(", ")}); ` +
            "what the host did cannot be told from them", { hint: `look at ${ACTIVATION_DIR} on ${name}: who else writes there?` });
        }
        return state;
      }
      // the read ends with `true`: another exit status (a signal) means its output may stop anywhere — read again
      if (tries >= INCOMPLETE_READS) {
        throw new HostStateUnknownError(`the state files of ${what} could not be read (exit ${read.exitCode}, ${tries} times)`, {
          command: plan.readState, stderr: read.stderr, hint: `read ${plan.logFile} on ${name}`,
        });
      }
      await sleep(clock, deadlines.pollMs);
    }
  };
  let lockReported = false;
  let seenRunning = false;
  let goneOnce = false;
  let last: ActivationState | undefined;
  /**
   * Polls the state files until `until` holds (the state), or says why it stopped short: the deadline passed, the
   * state files vanished (the host restarted: they live in /run), or the script stopped without finishing.
   */
  const waitFor = async (until: (state: ActivationState) => boolean, deadline: number, timeout: ActivationFacts["stopped"]): Promise<ActivationFacts["stopped"]> => {
    for (;;) {
      const state = await readState(deadline);
      last = state;
      if (state.waitingFor !== undefined && state.before === undefined && !lockReported) {
        lockReported = true;
        emit({ type: "lock-wait", holder: state.waitingFor });
      }
      if (until(state)) return undefined;
      const rebooted = inspected.bootId !== undefined && state.bootId !== undefined && state.bootId !== inspected.bootId;
      if (state.running && !rebooted) seenRunning = true;
      else if (seenRunning || rebooted) return "restarted";
      // gone only when two reads in a row say so: one read can race the script's own last steps
      if (state.running && !state.alive && !state.done) {
        if (goneOnce) return "script-gone";
        goneOnce = true;
      } else goneOnce = false;
      if (clock.now() >= deadline) return timeout;
      await sleep(clock, Math.min(deadlines.pollMs, Math.max(deadline - clock.now(), 0)));
    }
  };
  /** Follows the script's own rollback (after a rejected confirmation) to its end, or says why it stopped short. */
  const followRollback = async () => ({ stopped: await waitFor((s) => s.done, clock.now() + activationMs, "rollback-timeout"), state: last });
  /** Best effort: what the host runs now, for the report. */
  const hostState = async (): Promise<TargetSystem | undefined> => {
    const result = await session.read(INSPECT_COMMAND, { readBoundMs, reconnectUntil: () => clock.now() + readBoundMs }).catch(() => undefined);
    return result === undefined || result.exitCode !== 0 ? undefined : parseInspection(result.stdout);
  };
  /** Best effort, for the report: a file's tail (the log, the failed units' journal), or nothing. */
  const readTail = async (command: string) =>
    (await session.read(command, { readBoundMs, reconnectUntil: () => clock.now() }).catch(() => undefined))?.stdout ?? "";
  const unknown = (doing: string, err: Error) => new HostStateUnknownError(
    `lost the connection to ${name} ${doing} and could not reconnect: ${err.message}`,
    {
      cause: err,
      hint: `whether ${name} switched is unknown. The activation runs on by itself there (and rolls back if it fails): ` +
        `read ${plan.logFile} on it, or deploy again once it is reachable (the next deploy waits for it to finish)`,
    },
  );

  try {
    await start(session, plan, what, clock, deadlines.startBoundMs, () => readState(clock.now() + activationMs).catch((e: Error) => {
      throw unknown("while starting the activation", e);
    }));
    emit({ type: "activation-started", id: plan.id, logFile: plan.logFile });

    // The lock and the state the script starts from; then the exit status; then, after a failure, the rollback.
    let stopped = await waitFor((s) => s.before !== undefined || s.status !== undefined, clock.now() + deadlines.startWaitMs, "start-timeout");
    if (stopped === undefined && last?.status === undefined) {
      stopped = await waitFor((s) => s.status !== undefined, clock.now() + activationMs, "status-timeout");
    }
    const failedStatus = last?.status?.kind === "exited" && !plan.keptExitCodes.includes(last.status.code);
    if (stopped === undefined && failedStatus && plan.rollback) {
      emit({ type: "phase", phase: "rollback", detail: previousSystem(plan, last) });
      stopped = await waitFor((s) => s.done, clock.now() + activationMs, "rollback-timeout");
    }
    // Confirm over a new connection first (proof that the new system still lets us in): the host counts down.
    let healthChecks: HealthCheckResult[] | undefined;
    if (stopped === undefined && last?.status?.kind === "exited" && plan.keptExitCodes.includes(last.status.code) && plan.confirm !== undefined) {
      healthChecks = await confirm(session, plan, what, previousSystem(plan, last), activationMs, emit, clock, deadlines, health, followRollback);
    }
    const needed = factsNeeded(last, stopped, plan);
    const hostNow = needed.hostNow ? await hostState() : undefined;
    const facts: ActivationFacts = {
      state: last, stopped, hostNow, log: needed.log ? await readTail(plan.readLog) : "", inspected,
      ...(needed.journal ? { journal: await readTail(plan.readJournal) } : {}),
    };
    const verdict = interpretActivation({
      plan, name, rollbackDeclined: request.rollback === false, activationSeconds: activationMs / 1000, startWaitSeconds: deadlines.startWaitMs / 1000,
    }, facts);
    if (verdict.kind === "failed") {
      if (verdict.rolledBackTo !== undefined) emit({ type: "rolled-back", toSystem: verdict.rolledBackTo });
      throw verdict.error;
    }
    return { host: session.host, report: healthChecks === undefined ? verdict.report : { ...verdict.report, healthChecks } };
  } catch (err) {
    await session.close().catch(() => undefined);
    if (!(err instanceof Unreachable)) throw err;
    if (plan.confirm !== undefined) {
      throw new ConfirmError(
        `${name} did not take a new SSH connection after '${plan.action}' started (${err.message}); it rolls itself ` +
          `back to ${previous} ${plan.confirm.timeoutSeconds} s after activating unless confirmed`,
        { cause: err, hint: "check what the new configuration does to sshd, the firewall and the network" },
      );
    }
    throw unknown(`during '${plan.action}'`, err);
  }
}

/** Starts the detached script. A connection lost before the answer leaves it open whether it started: look. */
async function start(
  session: TargetSession,
  plan: ActivationPlan,
  what: string,
  clock: Clock,
  startBoundMs: number,
  readState: () => Promise<ActivationState>,
): Promise<void> {
  const name = session.host.name;
  let started: RunResult | undefined;
  try {
    started = await withDeadline(clock, session.host.run(plan.start), startBoundMs);
  } catch (err) {
    if (!(await readState()).running) {
      throw new ActivateError(`could not start ${what}: ${(err as Error).message}; nothing was changed`, { cause: err });
    }
  }
  if (started !== undefined && started.exitCode === UNSAFE_STATE_DIR_EXIT) {
    const why = unsafeDirReasons(started.stderr)[0] ?? `${ACTIVATION_DIR} is not root's own`;
    throw new LockError(`the deployment's state directory on ${name} is not root's own: ${why}; nothing was changed`, {
      command: `start of ${what}`,
      stderr: started.stderr,
      exitCode: started.exitCode,
      hint: `another user could point the lock and status files in it at any file root writes: look at who made ${ACTIVATION_DIR}, ` +
        "then remove it as root (it holds nothing but the state of activations; a reboot clears it)",
    });
  }
  if (started !== undefined && started.exitCode !== 0) {
    throw new ActivateError(`could not start ${what}`, {
      command: `${plan.toplevel}/bin/switch-to-configuration ${plan.action}`,
      stderr: started.stderr,
      exitCode: started.exitCode,
      hint: /sudo: .*password/.test(started.stderr)
        ? "the login user needs passwordless sudo on the target (nix-env, switch-to-configuration)"
        : undefined,
    });
  }
}

async function confirm(
  session: TargetSession,
  plan: ActivationPlan,
  what: string,
  previous: string,
  activationMs: number,
  emit: (event: DeployEvent) => void,
  clock: Clock,
  deadlines: ReturnType<typeof activationDeadlines>,
  health: HealthPlan | undefined,
  followRollback: () => Promise<{ stopped: ActivationFacts["stopped"]; state: ActivationState | undefined }>,
): Promise<HealthCheckResult[] | undefined> {
  const { timeoutSeconds, command } = plan.confirm!;
  emit({ type: "phase", phase: health === undefined ? "confirm" : "health", detail: health === undefined ? `within ${timeoutSeconds} s` : `then confirm, within ${timeoutSeconds} s` });
  let confirmation: Host;
  try {
    // The target's countdown started when activation ended, no later than now; confirming still needs a round trip
    // after connecting, so stop retrying with a fifth of the countdown left.
    confirmation = await session.host.reconnect({ retryForMs: deadlines.confirmRetryMs });
  } catch (err) {
    throw new ConfirmError(
      `${session.host.name} did not take a new SSH connection after '${plan.action}'; it rolls itself back to ${previous} ` +
        `${timeoutSeconds} s after activating`,
      { cause: err, stderr: (err as Error).message, hint: "check what the new configuration does to sshd, the firewall and the network" },
    );
  }
  await session.adopt(confirmation);
  // The checks run over the new connection, inside the window; one that fails makes the host roll back now.
  let checks: HealthCheckResult[] | undefined;
  if (health !== undefined) {
    checks = await runHealthChecks(health, { host: confirmation, clock, onResult: (result) => emit({ type: "health-check", result }) });
    const failed = checks.find((c) => c.outcome === "failed");
    if (failed !== undefined) await reject(confirmation, plan, what, previous, failed, checks, emit, clock, deadlines, followRollback);
    emit({ type: "phase", phase: "confirm", detail: "health checks passed" });
  }
  let confirmed: RunResult;
  try {
    confirmed = await withDeadline(clock, confirmation.run(command), deadlines.confirmBoundMs);
  } catch (err) {
    throw new ConfirmError(`confirming ${what} failed: ${(err as Error).message}; unless it got through, the host ` +
      `rolls itself back to ${previous}`, { cause: err, command });
  }
  if (confirmed.exitCode === 0) return checks;
  // The host decided first (it is rolling back), or no script watches the activation any more. Report what the host
  // did, not what it should do.
  const readBoundMs = deadlines.confirmBoundMs;
  let state: ActivationState | undefined;
  for (const deadline = clock.now() + activationMs; clock.now() < deadline; await sleep(clock, deadlines.pollMs)) {
    const read = await withDeadline(clock, confirmation.run(plan.readState), readBoundMs).catch(() => undefined);
    state = read === undefined ? undefined : parseActivationState(read.stdout);
    if (state === undefined || state.done || !state.alive) break;
  }
  if (confirmed.exitCode === CONFIRM_SCRIPT_GONE || (state !== undefined && !state.done && !state.alive && !state.decided)) {
    throw new ConfirmError(`${what} was not confirmed: its activation script stopped (killed, or its unit stopped) before the ` +
      `confirmation, so nothing rolls it back: ${session.host.name} runs it unconfirmed`, {
      command,
      hint: `check the host, then deploy again (or roll back with nixos-rebuild switch --rollback); its log is ${plan.logFile}`,
    });
  }
  const rolledBack = state?.rolledBack?.kind === "exited" && state.rolledBack.code === 0;
  const outcome = rolledBack ? `it rolled back to ${previous}` : state?.done
    ? `rolling back to ${previous} failed (${state.rolledBack?.kind === "exited" ? `exit ${state.rolledBack.code}` : "nothing to roll back to"})`
    : `it is rolling back to ${previous}`;
  if (rolledBack) emit({ type: "rolled-back", toSystem: previous });
  throw new ConfirmError(`the confirmation of ${what} came too late: ${outcome}`, {
    command,
    stderr: confirmed.stderr,
    hint: `raise the confirmation timeout (${timeoutSeconds} s) if activation is slow`,
  });
}


/**
 * A health check failed: tell the host (it rolls back at once instead of at the end of the window), follow its
 * rollback, and report the check and what the host ended in.
 */
async function reject(
  host: Host,
  plan: ActivationPlan,
  what: string,
  previous: string,
  failed: HealthCheckResult,
  checks: readonly HealthCheckResult[],
  emit: (event: DeployEvent) => void,
  clock: Clock,
  deadlines: ReturnType<typeof activationDeadlines>,
  followRollback: () => Promise<{ stopped: ActivationFacts["stopped"]; state: ActivationState | undefined }>,
): Promise<never> {
  const { reject: command, timeoutSeconds } = plan.confirm!;
  const saw = `health check '${failed.name}' failed (${failed.saw})`;
  const details = {
    command: failed.name, healthChecks: checks, ...(failed.failedUnits !== undefined ? { failedUnits: failed.failedUnits } : {}),
    hint: "the new system stays installed in the store; fix what the check found and deploy again, or change the check",
  };
  emit({ type: "phase", phase: "rollback", detail: previous });
  const rejected = await withDeadline(clock, host.run(command), deadlines.confirmBoundMs).catch((err: Error) => err);
  if (rejected instanceof Error || rejected.exitCode !== 0) {
    // not confirmed either way: the host rolls back when its window closes
    throw new HealthCheckError(`${what}: ${saw}; telling the host failed (${rejected instanceof Error ? rejected.message : rejected.stderr.trim()}), ` +
      `so it rolls itself back to ${previous} when its ${timeoutSeconds} s window closes`, details);
  }
  const { stopped, state } = await followRollback();
  const rolledBack = state?.rolledBack;
  if (stopped === undefined && rolledBack?.kind === "exited" && rolledBack.code === 0) {
    emit({ type: "rolled-back", toSystem: previous });
    throw new HealthCheckError(`${what}: ${saw}; ${host.name} was rolled back to ${previous}`, details);
  }
  if (stopped === undefined && rolledBack !== undefined) {
    throw new RollbackError(`${what}: ${saw}, and rolling back to ${previous} failed (${rolledBack.kind === "exited" ? `exit ${rolledBack.code}` : "nothing to roll back to"})`, {
      ...details, hint: `log in to ${host.name} and activate a known-good generation (nixos-rebuild switch --rollback); its log is ${plan.logFile}`,
    });
  }
  const why = stopped === "script-gone" ? "its activation script stopped before it finished"
    : stopped === "restarted" ? "the host restarted before it finished" : `it did not finish within ${deadlines.activationMs / 1000} s`;
  throw new HostStateUnknownError(`${what}: ${saw}; the host was told to roll back to ${previous}, but ${why}`, {
    ...details, hint: `read ${plan.logFile} on ${host.name}`,
  });
}
