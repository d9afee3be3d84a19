// The phases of one deployment before activation — connect, inspect, copy, build on the target, keys — each turning a
// failure into its phase's error with a hint.
import { CompressionUnavailableError } from "../nix/serve/copy-policy";
import { BuildError, ConnectError, CopyError, DeployError, InspectError, TransportError } from "../errors";
import type { CopyReport } from "../nix/serve/copy";
import { ServeError } from "../nix/serve/session";
import type { StoreSource } from "../nix/store-source";
import type { LocalSystem } from "../nix/system";
import { shellQuote } from "../shell";
import type { Host, RunResult } from "./host";
import { INSPECT_COMMAND, parseInspection, type TargetSystem } from "./inspection";
import { DEFAULT_SETTINGS } from "../spec/settings";

import type { BuiltDeployRequest, DeployEvent, HostDependencies } from "./request";

/** What the inspection prints is a few hundred bytes; more is not an answer to it. */
export const INSPECT_MAX_OUTPUT_BYTES = 64 * 1024;

export function connectTo(request: BuiltDeployRequest, deps: HostDependencies, emit: (event: DeployEvent) => void): Promise<Host> {
  emit({ type: "phase", phase: "connect", detail: request.target.host });
  return during("connect", `connecting to ${request.target.host}`, () => deps.connect(request.target, (message) => emit({ type: "notice", message })));
}

/** What the host runs, checked against what was built before anything is copied. */
export async function inspectFor(host: Host, local: LocalSystem, request: BuiltDeployRequest, emit: (event: DeployEvent) => void): Promise<TargetSystem> {
  emit({ type: "phase", phase: "inspect" });
  const before = await inspect(host, replyTimeoutMs(request));
  emit({ type: "target", target: before });
  for (const abandoned of before.unconfirmed ?? []) {
    if (abandoned.toplevel !== before.currentSystem) continue;
    emit({
      type: "notice",
      message: `${host.name} runs ${abandoned.toplevel} unconfirmed: its activation (${abandoned.id}) was never confirmed, and its ` +
        "script was stopped before it could roll back",
    });
  }
  checkTarget(host, before, local, request);
  const user = request.target.user ?? "root";
  if (user !== "root") await checkSudo(host, user, replyTimeoutMs(request));
  return before;
}

/** The command that tells whether the login user may run commands as root without a password. */
export const SUDO_CHECK_COMMAND = "sudo -n true";

/**
 * A login user other than root activates (and writes keys) through `sudo -n`: checked before anything is copied, so
 * a user without passwordless sudo does not copy a whole closure first and fail at the end.
 */
export async function checkSudo(host: Host, user: string, timeoutMs: number): Promise<void> {
  const result = await during("inspect", `checking sudo on ${host.name}`, () => host.run(SUDO_CHECK_COMMAND, { timeoutMs }));
  if (result.exitCode !== 0) {
    throw new InspectError(`${user} cannot run commands as root without a password on ${host.name} (sudo -n true failed); nothing was copied`, {
      command: SUDO_CHECK_COMMAND,
      stderr: result.stderr,
      exitCode: result.exitCode,
      hint: `give ${user} passwordless sudo on the host (NixOS: security.sudo.wheelNeedsPassword = false and ${user} in wheel), or deploy as root`,
    });
  }
}

/** What goes to the host: the system, or with buildOnTarget its derivation. */
export function copyRoots(local: LocalSystem, request: BuiltDeployRequest): string[] {
  return request.buildOnTarget && local.drvPath !== undefined ? [local.drvPath] : [local.outPath];
}

/** Refuses, before anything is copied, a target that cannot run what was built. */
export function checkTarget(host: Host, target: TargetSystem, local: LocalSystem, request: BuiltDeployRequest): void {
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

export function replyTimeoutMs(request: BuiltDeployRequest): number {
  return (request.replyTimeoutSeconds ?? DEFAULT_SETTINGS.replyTimeoutSeconds) * 1000;
}

export async function inspect(host: Host, timeoutMs: number): Promise<TargetSystem> {
  const result = await during("inspect", `inspecting ${host.name}`, () => host.run(INSPECT_COMMAND, { timeoutMs, maxOutputBytes: INSPECT_MAX_OUTPUT_BYTES }));
  if (result.exitCode !== 0) {
    throw new InspectError(`could not inspect ${host.name}`, { command: INSPECT_COMMAND, stderr: result.stderr, exitCode: result.exitCode });
  }
  return parseInspection(result.stdout);
}

export async function copyTo(
  host: Host,
  local: LocalSystem,
  request: BuiltDeployRequest,
  deps: HostDependencies,
  emit: (event: DeployEvent) => void,
): Promise<CopyReport> {
  const roots = copyRoots(local, request);
  let store: StoreSource | undefined;
  try {
    store = await deps.openStore();
    return await host.copyClosure(store, roots, {
      useSubstitutes: request.useSubstitutes,
      compress: request.compress,
      maxChannels: request.maxChannels,
      replyTimeoutMs: replyTimeoutMs(request),
      onProgress: (progress) => emit({ type: "copy-progress", progress }),
    });
  } catch (err) {
    if (err instanceof DeployError) throw err;
    // a precondition of the host, found before anything was sent: the host cannot be used as asked, not a failed copy
    if (err instanceof CompressionUnavailableError) {
      throw new InspectError(`${host.name} cannot take the copy as asked: ${err.message}; nothing was copied`, {
        cause: err,
        hint: "install zstd where it is missing (NixOS has it in every system), or leave out --compress zstd (auto compresses when it pays)",
      });
    }
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

/** The command that tells whether `path` is really in the host's store, not only said to be by its serve protocol. */
export function arrivedCommand(path: string): string {
  return `nix-store --check-validity ${shellQuote(path)} && test -e ${shellQuote(path)}`;
}

/**
 * After the copy, the system must be in the host's store: a `nix-store --serve` (or what answers in its place) that
 * claimed paths it does not have would otherwise surface as a puzzling activation failure.
 */
export async function checkArrived(host: Host, path: string, timeoutMs: number): Promise<void> {
  const command = arrivedCommand(path);
  let result: RunResult;
  try {
    result = await host.run(command, { timeoutMs });
  } catch (err) {
    throw new CopyError(`checking that ${path} arrived on ${host.name} failed: ${(err as Error).message}`, { cause: err });
  }
  if (result.exitCode !== 0) {
    throw new CopyError(`${host.name} claimed paths it does not have: ${path} is not in its store after the copy; nothing was activated`, {
      command,
      stderr: result.stderr,
      exitCode: result.exitCode,
      hint: "its nix-store --serve said the path was there: look at what answers as nix-store on that host (a forced command, a wrapper)",
    });
  }
}

export function copyHint(stderr: string, user: string): string | undefined {
  if (stderr.includes("lacks a valid signature")) {
    return `the target's Nix does not trust '${user}' to import unsigned paths: add it to nix.settings.trusted-users ` +
      "on the target, sign the closure (nix store sign) with a key the target trusts, or deploy as root";
  }
  if (stderr.includes("importing paths is not allowed")) return "the remote nix-store was started without --write";
  if (/No space left on device/.test(stderr)) {
    return "the host's disk is full: a path is registered only once all of it has arrived, so nothing half-copied was " +
      "registered and the host runs what it ran; free space there (nix-collect-garbage -d) and deploy again";
  }
  if (/command not found|No such file/.test(stderr)) return "nix-store is not on the PATH of non-interactive SSH sessions on the target";
  return undefined;
}

export async function realiseOnTarget(host: Host, drvPath: string, outPath: string): Promise<void> {
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


/** Runs `step`, turning a transport failure into the error of the phase it happened in. */
export async function during<T>(phase: "connect" | "inspect" | "build", doing: string, step: () => Promise<T>): Promise<T> {
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

