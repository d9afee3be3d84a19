import { shellQuote } from "../shell";
import { mayConfirm, mayRollBack, setsProfile, type Action } from "./goal";
import { SYSTEM_PROFILE, type TargetSystem } from "./inspection";

export interface ActivationContext {
  /** Prefix privileged commands with `sudo -n` (the login user is not root). */
  readonly sudo: boolean;
  /** systemd is PID 1 on the target: run switch-to-configuration in its own unit. */
  readonly systemd: boolean;
  readonly installBootloader?: boolean;
}

function privileged(context: ActivationContext, words: readonly string[]): string {
  return [...(context.sudo ? ["sudo", "-n", "--"] : []), ...words].map(shellQuote).join(" ");
}

/** Points the system profile at the new toplevel (a new generation), as `nixos-rebuild switch|boot` does. */
export function setProfileCommand(toplevel: string, context: ActivationContext): string {
  return privileged(context, ["nix-env", "-p", SYSTEM_PROFILE, "--set", toplevel]);
}

/** Points the system profile back at an earlier generation without creating a new one. */
export function switchGenerationCommand(generation: number, context: ActivationContext): string {
  return privileged(context, ["nix-env", "-p", SYSTEM_PROFILE, "--switch-generation", String(generation)]);
}

/**
 * Runs switch-to-configuration like nixos-rebuild: in a transient systemd unit where systemd runs (so the switch
 * survives the SSH session being cut by a restarted sshd or network), with a clean environment otherwise.
 */
export function switchCommand(toplevel: string, action: Action, context: ActivationContext): string {
  const bootloader = context.installBootloader ? "1" : "0";
  const runner = context.systemd
    ? [
        "systemd-run", "-E", "LOCALE_ARCHIVE", "-E", `NIXOS_INSTALL_BOOTLOADER=${bootloader}`, "--collect",
        "--no-ask-password", "--pipe", "--quiet", "--same-dir", "--service-type=exec",
        "--unit=nixos-rebuild-switch-to-configuration", "--wait",
      ]
    : ["env", "-i", "PATH=/run/current-system/sw/bin:/usr/bin:/bin", `NIXOS_INSTALL_BOOTLOADER=${bootloader}`];
  return privileged(context, [...runner, `${toplevel}/bin/switch-to-configuration`, action]);
}

/** The commands of one activation, in order. */
export function activationCommands(toplevel: string, action: Action, context: ActivationContext): string[] {
  return [...(setsProfile(action) ? [setProfileCommand(toplevel, context)] : []), switchCommand(toplevel, action, context)];
}

/** The system a failed activation goes back to: the boot default for boot, the running system otherwise. */
export function rollbackTarget(action: Action, before: TargetSystem): string | undefined {
  if (!mayRollBack(action)) return undefined;
  return action === "boot" ? before.profileSystem : before.currentSystem ?? before.profileSystem;
}

/**
 * The commands that undo a failed activation: the profile back on the generation it had, and the system that ran
 * before activated again with the same action. Empty when the target had nothing to go back to.
 */
export function rollbackCommands(action: Action, before: TargetSystem, context: ActivationContext): string[] {
  const previous = rollbackTarget(action, before);
  const commands: string[] = [];
  if (mayRollBack(action) && setsProfile(action) && before.profileGeneration !== undefined) {
    commands.push(switchGenerationCommand(before.profileGeneration, context));
  }
  if (previous !== undefined) commands.push(switchCommand(previous, action, context));
  return commands;
}

/** Where confirmed activations keep their state on the target: /run, so a reboot forgets it. */
export const CONFIRM_DIR = "/run/cdktf-nixos";

/**
 * The script a confirmed activation runs on the target, detached from the SSH session (deploy-rs's "magic
 * rollback"): it activates, records the exit status, then waits `timeoutSeconds` for the deployer to confirm over a
 * new connection and rolls back by itself when no confirmation comes, e.g. because the new system cut the network.
 */
export function confirmedActivationScript(
  id: string,
  toplevel: string,
  action: Action,
  before: TargetSystem,
  context: ActivationContext,
  timeoutSeconds: number,
): string {
  const root = { ...context, sudo: false };
  const state = `${CONFIRM_DIR}/${id}`;
  const rollback = rollbackCommands(action, before, root);
  return [
    `mkdir -p ${CONFIRM_DIR}`,
    `exec >${state}.log 2>&1 </dev/null`,
    `{ ${activationCommands(toplevel, action, root).join(" && ")}; }; echo $? >${state}.status`,
    `[ "$(cat ${state}.status)" = 0 ] || exit 0`,
    `i=0; while [ $i -lt ${timeoutSeconds} ] && [ ! -e ${state}.confirmed ]; do sleep 1; i=$((i+1)); done`,
    `[ -e ${state}.confirmed ] && exit 0`,
    `echo "no confirmation within ${timeoutSeconds} s: rolling back"`,
    `{ ${rollback.length > 0 ? rollback.join(" && ") : "true"}; }; echo $? >${state}.rolled-back`,
  ].join("\n");
}

/** Starts the confirmed activation in the background, as root, so it outlives the SSH session. */
export function startConfirmedActivationCommand(script: string, context: ActivationContext): string {
  return `${[...(context.sudo ? ["sudo", "-n", "--"] : []), "setsid", "sh", "-c", script].map(shellQuote).join(" ")} </dev/null >/dev/null 2>&1 &`;
}

export interface ActivationInput {
  /** The target as inspected before the deployment touched it. */
  readonly before: TargetSystem;
  readonly toplevel: string;
  readonly action: Action;
  /** The login user; any other than root activates through `sudo -n`. */
  readonly user: string;
  /** NIXOS_INSTALL_BOOTLOADER=1 for switch-to-configuration. */
  readonly installBootloader?: boolean;
  /** For switch and test: the host rolls itself back unless confirmed within this many seconds. */
  readonly confirmTimeoutSeconds?: number;
  /** Names this activation's state files on the target; random per deployment, passed in to keep the plan pure. */
  readonly id: string;
}

/** How a confirmed activation is started, observed and confirmed. */
export interface ConfirmProtocol {
  readonly timeoutSeconds: number;
  /** Starts the detached activation script; returns at once. */
  readonly start: string;
  /** Prints the activation's exit status once it has one, nothing before. */
  readonly readStatus: string;
  /** Prints what the activation wrote. */
  readonly readLog: string;
  /** Over a new connection: confirms, and prints the status only if the host has not rolled back yet. */
  readonly confirm: string;
}

/** Everything one activation does on the target, decided before anything runs. */
export interface ActivationPlan {
  readonly action: Action;
  readonly toplevel: string;
  /** Commands run one after the other over the session (empty when `confirm` is set: the script runs them). */
  readonly steps: readonly string[];
  /** The system a failed activation goes back to; undefined when there is none. */
  readonly rollbackTo?: string;
  /** The commands that go back; empty when there is nothing to go back to. */
  readonly rollback: readonly string[];
  /** Set for a confirmed (magic rollback) activation. */
  readonly confirm?: ConfirmProtocol;
}

/** The pure activation planner: the target's state and the request in, the exact commands out. */
export function planActivation(input: ActivationInput): ActivationPlan {
  const context: ActivationContext = {
    sudo: input.user !== "root",
    systemd: input.before.systemd,
    installBootloader: input.installBootloader,
  };
  const rollback = rollbackCommands(input.action, input.before, context);
  const base = { action: input.action, toplevel: input.toplevel, rollbackTo: rollbackTarget(input.action, input.before), rollback };
  const timeout = input.confirmTimeoutSeconds;
  if (timeout === undefined || timeout <= 0 || !mayConfirm(input.action)) {
    return { ...base, steps: activationCommands(input.toplevel, input.action, context) };
  }
  const state = `${CONFIRM_DIR}/${input.id}`;
  const script = confirmedActivationScript(input.id, input.toplevel, input.action, input.before, context, timeout);
  const touch = privileged(context, ["touch", `${state}.confirmed`]);
  return {
    ...base,
    steps: [],
    confirm: {
      timeoutSeconds: timeout,
      start: startConfirmedActivationCommand(script, context),
      readStatus: `cat ${state}.status 2>/dev/null || true`,
      readLog: `cat ${state}.log`,
      confirm: `${touch} && ! test -e ${state}.rolled-back && cat ${state}.status`,
    },
  };
}
