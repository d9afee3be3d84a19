import { shellQuote } from "../shell";
import type { Action, TargetSystem } from "./host";

/** The system profile nixos-rebuild manages. */
export const SYSTEM_PROFILE = "/nix/var/nix/profiles/system";

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
  const setProfile = action === "switch" || action === "boot";
  return [...(setProfile ? [setProfileCommand(toplevel, context)] : []), switchCommand(toplevel, action, context)];
}

/**
 * The commands that undo a failed activation: the profile back on the generation it had, and the system that ran
 * before activated again with the same action. Empty when the target had nothing to go back to.
 */
export function rollbackCommands(action: Action, before: TargetSystem, context: ActivationContext): string[] {
  if (action === "dry-activate") return [];
  const commands: string[] = [];
  if ((action === "switch" || action === "boot") && before.profileGeneration !== undefined) {
    commands.push(switchGenerationCommand(before.profileGeneration, context));
  }
  const previous = action === "boot" ? before.profileSystem : before.currentSystem ?? before.profileSystem;
  if (previous !== undefined) commands.push(switchCommand(previous, action, context));
  return commands;
}

/** Generation number of a profile link target such as `system-42-link`. */
export function parseGeneration(linkTarget: string): number | undefined {
  const match = /(?:^|\/)system-(\d+)-link$/.exec(linkTarget.trim());
  return match ? Number(match[1]) : undefined;
}

/** One remote command that reports what currentSystem needs as `key=value` words (store paths have no spaces). */
export const INSPECT_COMMAND = [
  "echo machine=$(uname -m)",
  "command -v nix-store >/dev/null 2>&1 && echo nix=1 || echo nix=0",
  "test -e /etc/NIXOS && echo nixos=1 || echo nixos=0",
  "test -d /run/systemd/system && echo systemd=1 || echo systemd=0",
  "test -e /run/current-system && echo current=$(readlink -f /run/current-system)",
  `test -e ${SYSTEM_PROFILE} && echo profile=$(readlink ${SYSTEM_PROFILE}) profileSystem=$(readlink -f ${SYSTEM_PROFILE})`,
  "true",
].join("; ");

const MACHINE_TO_SYSTEM: Record<string, string> = {
  x86_64: "x86_64-linux",
  aarch64: "aarch64-linux",
  arm64: "aarch64-linux",
  i686: "i686-linux",
  armv7l: "armv7l-linux",
  riscv64: "riscv64-linux",
};

/** Reads INSPECT_COMMAND's output. */
export function parseInspection(output: string): TargetSystem & { readonly nix: boolean } {
  const values = new Map<string, string>();
  for (const word of output.split(/\s+/)) {
    const eq = word.indexOf("=");
    if (eq > 0) values.set(word.slice(0, eq), word.slice(eq + 1));
  }
  const machine = values.get("machine") ?? "";
  const current = values.get("current") || undefined;
  const profileSystem = values.get("profileSystem") || undefined;
  return {
    system: MACHINE_TO_SYSTEM[machine] ?? `${machine}-linux`,
    nix: values.get("nix") === "1",
    nixos: values.get("nixos") === "1" || current !== undefined,
    systemd: values.get("systemd") === "1",
    currentSystem: current,
    profileGeneration: parseGeneration(values.get("profile") ?? ""),
    profileSystem,
  };
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
