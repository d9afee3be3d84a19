// The deploy engine's vocabulary: what a deployment is asked, what it needs from the world, what it reports.
import type { CompressMode, TransportReport } from "../nix/serve/copy-policy";
import { type DeployPhase, type FailedUnit, type HealthCheckResult, type HostState } from "../errors";
import type { CopyProgress, CopyReport } from "../nix/serve/copy";
import { type ClosureChange } from "../nix/closure-diff";
import type { StoreSource } from "../nix/store-source";
import type { LocalSystem, SystemSource } from "../nix/system";
import { type Action } from "../spec/goal";
import type { Host } from "./host";
import { type KeyReport, type LoadedKey } from "./keys";
import { type TargetSystem } from "./inspection";
import type { TargetSpec } from "../spec/target";
import type { ResolvedHealthCheck } from "../spec/health-check";

import type { Clock } from "./clock";
import type { CacheDependencies, CacheFetchReport, CacheUploadReport } from "./cache";
import type { CacheUploadProgress } from "../nix/binary-cache/upload";
import type { CacheSpec } from "../spec/cache";

/** What orchestration needs from the world; the defaults wire in local Nix and ssh2. */
export interface DeployDependencies extends CacheDependencies {
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
  /** Time for every deadline and poll. @default SYSTEM_CLOCK */
  readonly clock?: Clock;
  /** Names each activation's state files on the target. @default 12 random hex digits */
  readonly activationId?: () => string;
}

export type DeployEvent =
  | { readonly type: "phase"; readonly phase: DeployPhase; readonly detail?: string }
  | { readonly type: "built"; readonly system: LocalSystem }
  | { readonly type: "target"; readonly target: TargetSystem }
  /** The host already is what the action would make it: nothing (more) is copied or activated. */
  | { readonly type: "up-to-date"; readonly state: HostState }
  | { readonly type: "copy-progress"; readonly progress: CopyProgress }
  | { readonly type: "copied"; readonly report: CopyReport }
  /** The closure's paths the cache lacked are being uploaded (by `deploy`; push uploads for the fleet). */
  | { readonly type: "cache-progress"; readonly progress: CacheUploadProgress }
  | { readonly type: "cache-uploaded"; readonly report: CacheUploadReport }
  /** The host fetched from the cache what it could, before the direct copy. */
  | { readonly type: "cache-fetched"; readonly report: CacheFetchReport }
  | { readonly type: "activated"; readonly report: ActivationReport }
  | { readonly type: "rolled-back"; readonly toSystem?: string }
  /** About to write these keys (names only), before or after activation. */
  | { readonly type: "keys-uploading"; readonly names: readonly string[]; readonly uploadAt: LoadedKey["uploadAt"] }
  /** Keys written on the host, as each one is (names, paths and content hashes; never the content). */
  | { readonly type: "keys-uploaded"; readonly keys: readonly KeyReport[] }
  /** The detached activation runs on the target; from here on it finishes without us. */
  | { readonly type: "activation-started"; readonly id: string; readonly logFile: string }
  | { readonly type: "lock-wait"; readonly holder: string }
  /** One health check of the new system finished (passed, failed or skipped). */
  | { readonly type: "health-check"; readonly result: HealthCheckResult }
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
  /** systemd units failed right after activating (kept only when failed units are accepted), with their journal lines. */
  readonly failedUnits?: readonly FailedUnit[];
  /** The health checks the new system passed before it was confirmed (a skipped one says why). */
  readonly healthChecks?: readonly HealthCheckResult[];
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
  /** Keep a system whose only failure is failed systemd units (exit 4 of switch-to-configuration). @default false */
  readonly acceptFailedUnits?: boolean;
  /**
   * Checks the new system must pass after switch or test, before it is confirmed; a failed one rolls the host back.
   * With checks the activation is confirmed even without `confirmTimeoutSeconds`.
   * @default - none
   */
  readonly healthChecks?: readonly ResolvedHealthCheck[];
  /**
   * Whenever an activation is confirmed, check that systemd is not degraded and no unit failed (skipped without systemd).
   * @default true
   */
  readonly systemdHealthCheck?: boolean;
  /**
   * Files to put on the host outside the Nix store, read beforehand on this machine (loadKeys). Uploaded before or
   * after activation as each says; also when the host is up to date (a key may have changed); never by dry-activate.
   * @default - none
   */
  readonly keys?: readonly LoadedKey[];
  /**
   * A binary cache the closure goes through: `deploy` uploads what it lacks, the host fetches from it, and what it
   * cannot fetch is copied directly. @default - copied directly
   */
  readonly cache?: CacheSpec;
  /** Builds there instead of on this machine. @default - built here */
  readonly buildHost?: TargetSpec;
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
  /** What the host fetched from the binary cache before the direct copy (pathsCopied counts only the copy). */
  readonly cacheFetch?: CacheFetchReport;
  readonly previousSystem?: string;
  readonly newSystem: string;
  readonly previousGeneration?: number;
  readonly newGeneration?: number;
  /** Keys uploaded (names, paths and content hashes). */
  readonly keys: readonly KeyReport[];
  /** What dry-activate says it would start, stop, restart and reload; only for dry-activate. */
  readonly dryActivation?: string;
  /** systemd units failed after activating, which this deployment accepted (acceptFailedUnits). */
  readonly failedUnits?: readonly FailedUnit[];
  /** The health checks the new system passed before it was confirmed. */
  readonly healthChecks?: readonly HealthCheckResult[];
  readonly durationMs: number;
}


/** A deployment of a system that is already built (or, with buildOnTarget, instantiated). */
export type BuiltDeployRequest = Omit<DeployRequest, "source">;
/** What deploying a built system needs from the world. */
export type HostDependencies = Pick<DeployDependencies, "openStore" | "connect" | "checkLogin" | "clock" | "activationId">;


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
  /**
   * Through a binary cache: the host would fetch the paths it lacks from `substituter` (what the cache cannot give
   * is copied directly); `uploadedFirst` of them the cache lacks, which the push would upload once first.
   */
  readonly cache?: { readonly substituter: string; readonly uploadedFirst: number };
}

