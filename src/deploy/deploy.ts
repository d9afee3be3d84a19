import type { CompressMode, TransportReport } from "../nix/serve/copy-policy";
import { randomBytes } from "node:crypto";
import { hostname } from "node:os";
import {
  ActivateError,
  BuildError,
  ConfirmError,
  ConnectError,
  CopyError,
  DeployError,
  HostStateUnknownError,
  InspectError,
  KeysError,
  LockError,
  RollbackError,
  TransportError,
  type DeployPhase,
  type HostState,
} from "../errors";
import type { CopyProgress, CopyReport } from "../nix/serve/copy";
import { ServeError } from "../nix/serve/session";
import { diffClosures, type ClosureChange } from "../nix/closure-diff";
import type { StoreSource } from "../nix/store-source";
import type { LocalSystem, SystemSource } from "../nix/system";
import { shellQuote } from "../shell";
import {
  ACTIVATION_DIR, CONFIRM_SCRIPT_GONE, MISSING_TOOL_STATUS, UNSAFE_STATE_DIR_EXIT, parseActivationState, planActivation, rollbackTarget, type ActivationPlan, type ActivationState,
} from "./activation";
import { isUpToDate, type Action } from "../spec/goal";
import type { Host, RunResult } from "./host";
import { uploadKeys, type KeyReport, type LoadedKey } from "./keys";
import { INSPECT_COMMAND, parseInspection, type TargetSystem } from "./inspection";
import { unsafeDirReasons } from "./safe-dir";
import type { TargetSpec } from "../spec/target";
import { DEFAULT_SETTINGS } from "../spec/settings";

/** What orchestration needs from the world; the defaults wire in local Nix and ssh2. */
export interface DeployDependencies {
  /** Evaluate and build the system locally. */
  build(source: SystemSource): Promise<LocalSystem>;
  /** Evaluate only, for building on the target. */
  instantiate(source: SystemSource): Promise<LocalSystem & { readonly drvPath: string }>;
  openStore(): Promise<StoreSource>;
  /** `onNotice` hears what the connection did that the user should know (e.g. a replaced host key). */
  connect(target: TargetSpec, onNotice?: (message: string) => void): Promise<Host>;
  /**
   * What is wrong with how `target` would be logged in to (an unreadable or passphrase-protected key, no ssh-agent),
   * checked before anything is built; undefined when nothing is.
   */
  checkLogin?(target: TargetSpec): Promise<string | undefined>;
}

export type DeployEvent =
  | { readonly type: "phase"; readonly phase: DeployPhase; readonly detail?: string }
  | { readonly type: "built"; readonly system: LocalSystem }
  | { readonly type: "target"; readonly target: TargetSystem }
  /** The host already is what the action would make it: nothing (more) is copied or activated. */
  | { readonly type: "up-to-date"; readonly state: HostState }
  | { readonly type: "copy-progress"; readonly progress: CopyProgress }
  | { readonly type: "copied"; readonly report: CopyReport }
  | { readonly type: "activated"; readonly report: ActivationReport }
  | { readonly type: "rolled-back"; readonly toSystem?: string }
  /** About to write these keys (names only), before or after activation. */
  | { readonly type: "keys-uploading"; readonly names: readonly string[]; readonly uploadAt: LoadedKey["uploadAt"] }
  /** Keys written on the host, as each one is (names, paths and content hashes; never the content). */
  | { readonly type: "keys-uploaded"; readonly keys: readonly KeyReport[] }
  /** The detached activation runs on the target; from here on it finishes without us. */
  | { readonly type: "activation-started"; readonly id: string; readonly logFile: string }
  | { readonly type: "lock-wait"; readonly holder: string }
  | { readonly type: "reconnecting"; readonly reason: string }
  | { readonly type: "notice"; readonly message: string };

export interface ActivationReport {
  readonly action: Action;
  readonly previousGeneration?: number;
  readonly newGeneration?: number;
  readonly previousSystem?: string;
  readonly newSystem: string;
  /** What switch-to-configuration printed (for dry-activate: what it would do). */
  readonly output: string;
  /**
   * The host already was what the action would make it when the activation got the lock (another deployment of the
   * same system finished first): nothing was activated.
   */
  readonly upToDate?: boolean;
}

export interface DeployRequest {
  readonly source: SystemSource;
  readonly target: TargetSpec;
  /** @default "switch" */
  readonly action?: Action;
  readonly useSubstitutes?: boolean;
  /** zstd on the copy's data stream. @default "auto" */
  readonly compress?: CompressMode;
  /** Data channels a far target's copy may use at most. @default 8 */
  readonly maxChannels?: number;
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
  /**
   * How long the host may keep a question unanswered — the inspection, a store query or reply of the copy (no byte
   * moving either way), a key upload — before the deployment gives up on it (a host that takes the SSH connection and
   * never answers cannot hold a deploy, or a push, for ever).
   * @default 60
   */
  readonly replyTimeoutSeconds?: number;
  /**
   * How long to wait for another deployment to the same host to finish (deployments to one host take turns).
   * @default 300
   */
  readonly lockTimeoutSeconds?: number;
  /**
   * After a switch or boot that stays, delete all but the newest this many system generations.
   * @default - keep every generation
   */
  readonly keepGenerations?: number;
  /**
   * Activate even when the host already is what the action would make it (re-runs switch-to-configuration).
   * @default false - such a host is reported up to date and left alone
   */
  readonly reactivate?: boolean;
  /**
   * Files to put on the host outside the Nix store, read beforehand on this machine (loadKeys). Uploaded before or
   * after activation as each says; also when the host is up to date (a key may have changed); never by dry-activate.
   * @default - none
   */
  readonly keys?: readonly LoadedKey[];
  readonly onEvent?: (event: DeployEvent) => void;
}

export interface DeployResult {
  readonly host: string;
  readonly action: Action;
  readonly system: string;
  /** The host already ran the system: nothing was copied or activated (pathsInClosure is then not counted: 0). */
  readonly upToDate: boolean;
  readonly pathsCopied: number;
  readonly pathsInClosure: number;
  /** NAR bytes copied. */
  readonly bytesSent: number;
  /** Bytes written into SSH channels for the copy (less than bytesSent when compressed). */
  readonly wireBytes: number;
  /** How the copy travelled: one channel or the spool with several, compression, the measured round trip. */
  readonly copyTransport?: TransportReport;
  readonly previousSystem?: string;
  readonly newSystem: string;
  readonly previousGeneration?: number;
  readonly newGeneration?: number;
  /** Keys uploaded (names, paths and content hashes). */
  readonly keys: readonly KeyReport[];
  /** What dry-activate says it would start, stop, restart and reload; only for dry-activate. */
  readonly dryActivation?: string;
  readonly durationMs: number;
}

/** What the inspection prints is a few hundred bytes; more is not an answer to it. */
const INSPECT_MAX_OUTPUT_BYTES = 64 * 1024;
/** How often a confirmed activation's exit status is read. */
const STATUS_POLL_MS = 300;

/**
 * Builds (or instantiates) the system, checks the target, copies the missing paths and activates it by the plan. On
 * a failed activation the target is put back on the generation it had before.
 */
export async function deploy(request: DeployRequest, deps: DeployDependencies): Promise<DeployResult> {
  const started = Date.now();
  const emit = request.onEvent ?? (() => undefined);
  emit({ type: "phase", phase: request.buildOnTarget ? "evaluate" : "build" });
  const local = request.buildOnTarget ? await deps.instantiate(request.source) : await deps.build(request.source);
  emit({ type: "built", system: local });
  return deployBuilt(local, request, deps, started);
}

/** A deployment of a system that is already built (or, with buildOnTarget, instantiated). */
export type BuiltDeployRequest = Omit<DeployRequest, "source">;
/** What deploying a built system needs from the world. */
export type HostDependencies = Pick<DeployDependencies, "openStore" | "connect" | "checkLogin">;

/**
 * Deploys `local` to the request's target: connect, inspect, skip when the host already is what the action would
 * make it (unless `reactivate`), copy, activate. `deploy` after its build, and `push` once per host after one build
 * for the whole fleet.
 */
export async function deployBuilt(
  local: LocalSystem,
  request: BuiltDeployRequest,
  deps: HostDependencies,
  started = Date.now(),
): Promise<DeployResult> {
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
        durationMs: Date.now() - started,
      };
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

    const plan = planActivation({
      before,
      toplevel: local.outPath,
      action,
      user: request.target.user ?? "root",
      installBootloader: request.installBootloader,
      confirmTimeoutSeconds: request.confirmTimeoutSeconds,
      rollback: request.rollback,
      lockTimeoutSeconds: request.lockTimeoutSeconds ?? DEFAULT_SETTINGS.lockTimeoutSeconds,
      holder: `${hostname()} pid ${process.pid}`,
      id: randomBytes(6).toString("hex"),
      keepGenerations: request.keepGenerations,
      reactivate: request.reactivate,
    });
    emit({ type: "phase", phase: "activate", detail: action });
    const activated = await activate(host, plan, before, request, emit);
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
      previousSystem: activation.previousSystem,
      newSystem: activation.newSystem,
      previousGeneration: activation.previousGeneration,
      newGeneration: activation.newGeneration,
      keys: [...uploadedBefore, ...uploadedAfter],
      ...(action === "dry-activate" ? { dryActivation: afterLine(activation.output, `dry-activate of ${local.outPath}`) } : {}),
      durationMs: Date.now() - started,
    };
  } finally {
    await host.close();
  }
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

/** What a deployment would do to its host, found without changing anything there. */
export interface DeployPreview {
  readonly host: string;
  readonly action: Action;
  /** The toplevel that would be deployed. */
  readonly newSystem: string;
  /** The host already is what the action would make it. */
  readonly upToDate: boolean;
  /** The system the new one is compared with: what the host boots for boot, what it runs otherwise. */
  readonly previousSystem?: string;
  readonly previousGeneration?: number;
  readonly pathsInClosure: number;
  /** Paths of the closure the host lacks, and their NAR size: what a deployment would send. */
  readonly pathsToSend: number;
  readonly bytesToSend: number;
  /** Packages added, removed and changed in version between the previous system's closure and the new one. */
  readonly changes: readonly ClosureChange[];
}

/**
 * `--dry-run`: connects and inspects like a deployment, then asks the host's store which paths it lacks and lists the
 * host's current closure, but writes nothing on the host (the serve session runs without --write).
 */
export async function previewDeploy(local: LocalSystem, request: BuiltDeployRequest, deps: HostDependencies): Promise<DeployPreview> {
  const action = request.action ?? "switch";
  const emit = request.onEvent ?? (() => undefined);
  const host = await connectTo(request, deps, emit);
  try {
    const before = await inspectFor(host, local, request, emit);
    const previousSystem = action === "boot" ? before.profileSystem : before.currentSystem ?? before.profileSystem;
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
    };
  } finally {
    await host.close();
  }
}

function connectTo(request: BuiltDeployRequest, deps: HostDependencies, emit: (event: DeployEvent) => void): Promise<Host> {
  emit({ type: "phase", phase: "connect", detail: request.target.host });
  return during("connect", `connecting to ${request.target.host}`, () => deps.connect(request.target, (message) => emit({ type: "notice", message })));
}

/** What the host runs, checked against what was built before anything is copied. */
async function inspectFor(host: Host, local: LocalSystem, request: BuiltDeployRequest, emit: (event: DeployEvent) => void): Promise<TargetSystem> {
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
async function checkSudo(host: Host, user: string, timeoutMs: number): Promise<void> {
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
function copyRoots(local: LocalSystem, request: BuiltDeployRequest): string[] {
  return request.buildOnTarget && local.drvPath !== undefined ? [local.drvPath] : [local.outPath];
}

/** Refuses, before anything is copied, a target that cannot run what was built. */
function checkTarget(host: Host, target: TargetSystem, local: LocalSystem, request: BuiltDeployRequest): void {
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

function replyTimeoutMs(request: BuiltDeployRequest): number {
  return (request.replyTimeoutSeconds ?? DEFAULT_SETTINGS.replyTimeoutSeconds) * 1000;
}

async function inspect(host: Host, timeoutMs: number): Promise<TargetSystem> {
  const result = await during("inspect", `inspecting ${host.name}`, () => host.run(INSPECT_COMMAND, { timeoutMs, maxOutputBytes: INSPECT_MAX_OUTPUT_BYTES }));
  if (result.exitCode !== 0) {
    throw new InspectError(`could not inspect ${host.name}`, { command: INSPECT_COMMAND, stderr: result.stderr, exitCode: result.exitCode });
  }
  return parseInspection(result.stdout);
}

async function copyTo(
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
async function checkArrived(host: Host, path: string, timeoutMs: number): Promise<void> {
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

function copyHint(stderr: string, user: string): string | undefined {
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

/**
 * The connection to the target during activation: reads are bounded, and a lost or silent connection is replaced by
 * a new one (same host key checks) for as long as the caller allows. Only read-only commands go through `read`, so
 * repeating one after a reconnect is harmless.
 */
class TargetSession {
  constructor(public host: Host, private readonly emit: (event: DeployEvent) => void) {}

  /**
   * Runs `command`, reconnecting while the host cannot be reached, until `reconnectUntil()` (epoch ms, asked when
   * the connection fails).
   */
  async read(command: string, options: { readBoundMs: number; reconnectUntil: () => number }): Promise<RunResult> {
    for (;;) {
      let failure: Error;
      try {
        return await withDeadline(this.host.run(command), options.readBoundMs);
      } catch (err) {
        failure = err as Error;
      }
      await this.replace(failure, options.reconnectUntil());
    }
  }

  /** A new connection instead of the current one, which failed with `failure`. */
  async replace(failure: Error, until: number): Promise<void> {
    const retryForMs = until - Date.now();
    if (retryForMs <= 0) throw new Unreachable(failure.message);
    this.emit({ type: "reconnecting", reason: failure.message });
    let next: Host;
    try {
      next = await this.host.reconnect({ retryForMs });
    } catch (err) {
      throw new Unreachable(`${failure.message}; reconnecting failed: ${(err as Error).message}`);
    }
    await this.adopt(next);
  }

  /** Continues on `next` (a newer connection to the same host) and closes the current one. */
  async adopt(next: Host): Promise<void> {
    const old = this.host;
    this.host = next;
    await old.close().catch(() => undefined);
  }

  close(): Promise<void> {
    return this.host.close();
  }
}

/** The host could not be reached again within the allowed time. */
class Unreachable extends Error {}

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
async function activate(
  host: Host,
  plan: ActivationPlan,
  inspected: TargetSystem,
  request: BuiltDeployRequest,
  emit: (event: DeployEvent) => void,
): Promise<{ report: ActivationReport; host: Host }> {
  const session = new TargetSession(host, emit);
  const activationMs = (request.activationTimeoutSeconds ?? DEFAULT_SETTINGS.activationTimeoutSeconds) * 1000;
  const confirmMs = plan.confirm === undefined ? undefined : plan.confirm.timeoutSeconds * 1000;
  // A confirmed activation's host counts down once activation ends: a connection lost then is only worth
  // reconnecting for most of that window (a confirmation still needs a round trip). Otherwise the activation
  // deadline bounds it.
  const reconnectWindow = (phaseDeadline: number) => () =>
    confirmMs === undefined ? phaseDeadline : Math.min(phaseDeadline, Date.now() + confirmMs * 0.8);
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
      if (Date.now() >= deadline) return undefined;
      await sleep(Math.min(STATUS_POLL_MS, Math.max(deadline - Date.now(), 0)));
    }
  };
  /** Best effort: what the host runs now, for the report. */
  const hostState = async (): Promise<TargetSystem | undefined> => {
    const result = await session.read(INSPECT_COMMAND, { readBoundMs, reconnectUntil: () => Date.now() + readBoundMs }).catch(() => undefined);
    return result === undefined || result.exitCode !== 0 ? undefined : parseInspection(result.stdout);
  };
  const readLog = async () => (await session.read(plan.readLog, { readBoundMs, reconnectUntil: () => Date.now() }).catch(() => undefined))?.stdout ?? "";
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
      started = await withDeadline(session.host.run(plan.start), START_BOUND_MS);
    } catch (err) {
      const state = await readState(reconnectWindow(Date.now() + activationMs)).catch((e: Error) => {
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
    let state = await waitFor((s) => s.before !== undefined || s.status !== undefined, Date.now() + lockWaitMs);
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
    if (state.status === undefined) state = await waitFor((s) => s.status !== undefined, Date.now() + activationMs);
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
      const finished = await waitFor((s) => s.done, Date.now() + activationMs);
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
    if (plan.confirm !== undefined) await confirm(session, plan, what, previous, activationMs, emit);

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
    confirmed = await withDeadline(confirmation.run(command), timeoutSeconds * 1000);
  } catch (err) {
    throw new ConfirmError(`confirming ${what} failed: ${(err as Error).message}; unless it got through, the host ` +
      `rolls itself back to ${previous}`, { cause: err, command });
  }
  if (confirmed.exitCode === 0) return;
  // The host decided first (it is rolling back), or no script watches the activation any more. Report what the host
  // did, not what it should do.
  const readBoundMs = timeoutSeconds * 1000;
  let state: ActivationState | undefined;
  for (const deadline = Date.now() + activationMs; Date.now() < deadline; await sleep(STATUS_POLL_MS)) {
    const read = await withDeadline(confirmation.run(plan.readState), readBoundMs).catch(() => undefined);
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
