// Follows the detached activation script on the target to its end through its state files (see activation.ts).
import { ActivateError, ConfirmError, HostStateUnknownError, LockError, RollbackError, type HostState } from "../errors";
import { ACTIVATION_DIR, CONFIRM_SCRIPT_GONE, MISSING_TOOL_STATUS, UNSAFE_STATE_DIR_EXIT, parseActivationState, rollbackTarget, type ActivationPlan, type ActivationState } from "./activation";
import type { Host, RunResult } from "./host";
import { INSPECT_COMMAND, parseInspection, type TargetSystem } from "./inspection";
import { unsafeDirReasons } from "./safe-dir";
import { DEFAULT_SETTINGS } from "../spec/settings";

import { sleep, withDeadline, type Clock } from "./clock";
import type { ActivationReport, BuiltDeployRequest, DeployEvent } from "./request";
import { TargetSession, Unreachable } from "./target-session";

/** How often a confirmed activation's exit status is read. */
const STATUS_POLL_MS = 300;

/** How long one read of the activation's state may take before the connection counts as lost. */
const READ_BOUND_MS = 15_000;
/** Starting the detached script is one quick command. */
const START_BOUND_MS = 30_000;
/** Beyond the lock timeout, for the script to notice and say it gave up. */
const LOCK_SLACK_MS = 15_000;

/**
 * Runs the plan's detached activation script and follows it to the end through its state files: the lock, the
 * start state, the exit status, the script's own rollback and, for a confirmed activation, the confirmation over a
 * new connection. Every report is read from the host; nothing is assumed.
 */
export async function activate(
  host: Host,
  plan: ActivationPlan,
  inspected: TargetSystem,
  request: BuiltDeployRequest,
  emit: (event: DeployEvent) => void,
  clock: Clock,
): Promise<{ report: ActivationReport; host: Host }> {
  const session = new TargetSession(host, emit, clock);
  const activationMs = (request.activationTimeoutSeconds ?? DEFAULT_SETTINGS.activationTimeoutSeconds) * 1000;
  const confirmMs = plan.confirm === undefined ? undefined : plan.confirm.timeoutSeconds * 1000;
  // A confirmed activation's host counts down once activation ends: a connection lost then is only worth
  // reconnecting for most of that window (a confirmation still needs a round trip). Otherwise the activation
  // deadline bounds it.
  const reconnectWindow = (phaseDeadline: number) => () =>
    confirmMs === undefined ? phaseDeadline : Math.min(phaseDeadline, clock.now() + confirmMs * 0.8);
  const readBoundMs = Math.min(READ_BOUND_MS, confirmMs ?? READ_BOUND_MS);
  const name = host.name;
  const what = `'${plan.action}' of ${plan.toplevel} on ${name}`;
  let previous = plan.rollbackTo ?? "its previous system";
  const switchCommand = `${plan.toplevel}/bin/switch-to-configuration ${plan.action}`;

  const readState = async (reconnectUntil: () => number) => {
    const state = parseActivationState((await session.read(plan.readState, { readBoundMs, reconnectUntil })).stdout);
    if (state.garbled.length > 0) {
      throw new HostStateUnknownError(`the state files of ${what} hold what no activation writes (${state.garbled.join(", ")}); ` +
        "what the host did cannot be told from them", { hint: `look at ${ACTIVATION_DIR} on ${name}: who else writes there?` });
    }
    return state;
  };
  let lockReported = false;
  let seenRunning = false;
  /**
   * Polls the state files until `until` holds; undefined when `deadline` passes first. The state files vanishing
   * means the host restarted (they live in /run); a script that no longer runs without having finished was stopped:
   * both are said as such, never waited out.
   */
  const waitFor = async (until: (state: ActivationState) => boolean, deadline: number): Promise<ActivationState | undefined> => {
    for (;;) {
      const state = await readState(reconnectWindow(deadline));
      if (state.waitingFor !== undefined && state.before === undefined && !lockReported) {
        lockReported = true;
        emit({ type: "lock-wait", holder: state.waitingFor });
      }
      if (until(state)) return state;
      const rebooted = inspected.bootId !== undefined && state.bootId !== undefined && state.bootId !== inspected.bootId;
      if (state.running && !rebooted) seenRunning = true;
      else if (seenRunning || rebooted) {
        const now = await hostState();
        throw new ActivateError(`${name} restarted during ${what}: the activation's state in /run is gone; it runs ` +
          `${now?.currentSystem ?? "no system"}${now?.profileGeneration === undefined ? "" : ` (its profile is generation ${now.profileGeneration})`}`, {
          command: switchCommand, hostState: now,
          hint: "nothing rolls back across a restart: deploy again to put the host on the system you want",
        });
      }
      if (state.running && !state.alive && !state.done) {
        throw new HostStateUnknownError(`the activation script of ${what} stopped before it finished (was it killed, or its unit stopped?)`, {
          command: switchCommand, stderr: await readLog(), hostState: await hostState(),
          hint: `what it started may still run, and nothing rolls it back; the next deployment waits until that has ended. Its log is ${plan.logFile} on ${name}`,
        });
      }
      if (clock.now() >= deadline) return undefined;
      await sleep(clock, Math.min(STATUS_POLL_MS, Math.max(deadline - clock.now(), 0)));
    }
  };
  /** Best effort: what the host runs now, for the report. */
  const hostState = async (): Promise<TargetSystem | undefined> => {
    const result = await session.read(INSPECT_COMMAND, { readBoundMs, reconnectUntil: () => clock.now() + readBoundMs }).catch(() => undefined);
    return result === undefined || result.exitCode !== 0 ? undefined : parseInspection(result.stdout);
  };
  const readLog = async () => (await session.read(plan.readLog, { readBoundMs, reconnectUntil: () => clock.now() }).catch(() => undefined))?.stdout ?? "";
  const unknown = (doing: string, err: Error) => new HostStateUnknownError(
    `lost the connection to ${name} ${doing} and could not reconnect: ${err.message}`,
    {
      cause: err,
      hint: `whether ${name} switched is unknown. The activation runs on by itself there (and rolls back if it fails): ` +
        `read ${plan.logFile} on it, or deploy again once it is reachable (the next deploy waits for it to finish)`,
    },
  );

  try {
    // 1. Start the script. A connection lost before the answer leaves it open whether it started: look.
    let started: RunResult | undefined;
    try {
      started = await withDeadline(clock, session.host.run(plan.start), START_BOUND_MS);
    } catch (err) {
      const state = await readState(reconnectWindow(clock.now() + activationMs)).catch((e: Error) => {
        throw unknown("while starting the activation", e);
      });
      if (!state.running) {
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
        command: switchCommand,
        stderr: started.stderr,
        exitCode: started.exitCode,
        hint: /sudo: .*password/.test(started.stderr)
          ? "the login user needs passwordless sudo on the target (nix-env, switch-to-configuration)"
          : undefined,
      });
    }
    emit({ type: "activation-started", id: plan.id, logFile: plan.logFile });

    // 2. The lock, and the state the script starts from.
    const lockWaitMs = plan.lockTimeoutSeconds * 1000 + LOCK_SLACK_MS;
    let state = await waitFor((s) => s.before !== undefined || s.status !== undefined, clock.now() + lockWaitMs);
    if (state === undefined) {
      throw new HostStateUnknownError(`${what} did not start within ${lockWaitMs / 1000} s`, {
        hint: `read ${plan.logFile} on ${name}`,
      });
    }
    if (state.status?.startsWith(MISSING_TOOL_STATUS) === true) {
      const tool = state.status.slice(MISSING_TOOL_STATUS.length);
      throw new LockError(`${name} has no ${tool} command, which the deployment lock needs; nothing was changed`, {
        hint: `install ${tool === "flock" ? "util-linux" : tool} on ${name} (NixOS has it in the system path)`,
        hostState: await hostState(),
      });
    }
    if (state.status === "locked") {
      throw new LockError(
        `${name} is locked by another deployment (${state.waitingFor ?? "unknown holder"}) for more than ` +
          `${plan.lockTimeoutSeconds} s; nothing was changed`,
        {
          hint: "deploy again once it has finished, or wait longer with --lock-timeout. The lock lives in " +
            `${ACTIVATION_DIR}/lock and is released when its holder's activation ends (or the host reboots)`,
          hostState: await hostState(),
        },
      );
    }
    const before: HostState = state.before ?? inspected;
    previous = rollbackTarget(plan.action, before) ?? "its previous system";

    // 3. The exit status of the activation.
    if (state.status === undefined) state = await waitFor((s) => s.status !== undefined, clock.now() + activationMs);
    if (state === undefined) {
      if (plan.confirm !== undefined) {
        throw new ConfirmError(
          `${what} did not finish within ${activationMs / 1000} s; it was not confirmed, so once it finishes the host ` +
            `rolls itself back to ${previous}`,
          { command: switchCommand, hint: "raise --activation-timeout if activation is this slow" },
        );
      }
      throw new HostStateUnknownError(`${what} did not finish within ${activationMs / 1000} s`, {
        command: switchCommand,
        hint: `it goes on on the host (and rolls back by itself if it fails): read ${plan.logFile} there, or raise ` +
          "--activation-timeout if activation is this slow",
      });
    }

    // Another deployment made the host what this one would, while this one waited for the lock: nothing to do.
    if (state.status === "up-to-date") {
      return {
        host: session.host,
        report: {
          action: plan.action,
          previousGeneration: before.profileGeneration,
          newGeneration: before.profileGeneration,
          previousSystem: before.currentSystem,
          newSystem: plan.toplevel,
          output: await readLog(),
          upToDate: true,
        },
      };
    }

    // 4. A failed activation: the script rolls back (or not); report what it did.
    if (state.status !== "0") {
      const failed = `${what} exited with code ${state.status}`;
      if (plan.rollback) emit({ type: "phase", phase: "rollback", detail: previous });
      const finished = await waitFor((s) => s.done, clock.now() + activationMs);
      const details = {
        command: switchCommand, stderr: await readLog(), exitCode: Number(state.status), hostState: await hostState(),
        hint: `the activation's whole log is ${plan.logFile} on ${name}`,
      };
      if (!plan.rollback) {
        throw new ActivateError(request.rollback === false ? `${failed}; ${name} was left as it is (--no-rollback)` : failed, details);
      }
      if (finished === undefined) {
        throw new HostStateUnknownError(`${failed}, and rolling back to ${previous} did not finish within ${activationMs / 1000} s`, details);
      }
      if (finished.rolledBack === "nothing") {
        throw new ActivateError(`${failed}; ${name} had no earlier system to roll back to`, details);
      }
      if (finished.rolledBack !== "0") {
        throw new RollbackError(`${failed}, and rolling back to ${previous} failed too (exit ${finished.rolledBack})`, {
          ...details,
          hint: `log in to ${name} and activate a known-good generation (nixos-rebuild switch --rollback)`,
        });
      }
      emit({ type: "rolled-back", toSystem: previous });
      throw new ActivateError(`${failed}; ${name} was rolled back to ${previous}`, details);
    }

    // 5. Confirm over a new connection: proof that the new system still lets us in.
    if (plan.confirm !== undefined) await confirm(session, plan, what, previous, activationMs, emit, clock);

    // Activated (and confirmed): what follows only reports, from what the script recorded under the lock.
    const after = state.after ?? await hostState();
    return {
      host: session.host,
      report: {
        action: plan.action,
        previousGeneration: before.profileGeneration,
        newGeneration: after?.profileGeneration,
        previousSystem: before.currentSystem,
        newSystem: plan.toplevel,
        output: await readLog(),
      },
    };
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

async function confirm(
  session: TargetSession,
  plan: ActivationPlan,
  what: string,
  previous: string,
  activationMs: number,
  emit: (event: DeployEvent) => void,
  clock: Clock,
): Promise<void> {
  const { timeoutSeconds, command } = plan.confirm!;
  emit({ type: "phase", phase: "confirm", detail: `within ${timeoutSeconds} s` });
  let confirmation: Host;
  try {
    // The target's countdown started when activation ended, no later than now; confirming still needs a round trip
    // after connecting, so stop retrying with a fifth of the countdown left.
    confirmation = await session.host.reconnect({ retryForMs: timeoutSeconds * 800 });
  } catch (err) {
    throw new ConfirmError(
      `${session.host.name} did not take a new SSH connection after '${plan.action}'; it rolls itself back to ${previous} ` +
        `${timeoutSeconds} s after activating`,
      { cause: err, stderr: (err as Error).message, hint: "check what the new configuration does to sshd, the firewall and the network" },
    );
  }
  await session.adopt(confirmation);
  let confirmed: RunResult;
  try {
    confirmed = await withDeadline(clock, confirmation.run(command), timeoutSeconds * 1000);
  } catch (err) {
    throw new ConfirmError(`confirming ${what} failed: ${(err as Error).message}; unless it got through, the host ` +
      `rolls itself back to ${previous}`, { cause: err, command });
  }
  if (confirmed.exitCode === 0) return;
  // The host decided first (it is rolling back), or no script watches the activation any more. Report what the host
  // did, not what it should do.
  const readBoundMs = timeoutSeconds * 1000;
  let state: ActivationState | undefined;
  for (const deadline = clock.now() + activationMs; clock.now() < deadline; await sleep(clock, STATUS_POLL_MS)) {
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
  const outcome = state?.rolledBack === "0" ? `it rolled back to ${previous}` : state?.done
    ? `rolling back to ${previous} failed (exit ${state.rolledBack})`
    : `it is rolling back to ${previous}`;
  if (state?.rolledBack === "0") emit({ type: "rolled-back", toSystem: previous });
  throw new ConfirmError(`the confirmation of ${what} came too late: ${outcome}`, {
    command,
    stderr: confirmed.stderr,
    hint: `raise the confirmation timeout (${timeoutSeconds} s) if activation is slow`,
  });
}

