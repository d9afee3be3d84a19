import type { StoreSource } from "../nix/store-source";

/** What switch-to-configuration is asked to do; nixos-rebuild's vocabulary. */
export type Action = "switch" | "boot" | "test" | "dry-activate";
export const ACTIONS: readonly Action[] = ["switch", "boot", "test", "dry-activate"];

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

/** What the target is, read before anything is copied. */
export interface TargetSystem {
  /** Nix system double of the target, e.g. "x86_64-linux". */
  readonly system: string;
  /** Whether the target looks like NixOS (/etc/NIXOS or a /run/current-system with switch-to-configuration). */
  readonly nixos: boolean;
  /** Whether systemd is PID 1 (/run/systemd/system exists), as nixos-rebuild checks. */
  readonly systemd: boolean;
  /** Store path /run/current-system points at, if any. */
  readonly currentSystem?: string;
  /** Generation number /nix/var/nix/profiles/system points at, if any. */
  readonly profileGeneration?: number;
  /** Store path of that generation, if any. */
  readonly profileSystem?: string;
}

export interface CopyOptions {
  /** Let the target substitute missing paths from its binary caches (nix-copy-closure --use-substitutes). */
  readonly useSubstitutes?: boolean;
  readonly onProgress?: (progress: CopyProgress) => void;
}

export interface CopyProgress {
  readonly pathsDone: number;
  readonly pathsTotal: number;
  readonly bytesSent: number;
  readonly bytesTotal: number;
  readonly currentPath?: string;
}

export interface CopyReport {
  /** Closure size of what was asked for. */
  readonly pathsInClosure: number;
  /** Paths the target already had. */
  readonly pathsAlreadyValid: number;
  readonly pathsCopied: number;
  /** NAR bytes sent to the target. */
  readonly bytesSent: number;
  readonly durationMs: number;
}

export interface ActivateOptions {
  /** NIXOS_INSTALL_BOOTLOADER=1 for switch-to-configuration. */
  readonly installBootloader?: boolean;
  /**
   * For switch and test: activate detached from the session and require a confirmation over a new SSH connection
   * within this many seconds, or the host rolls itself back (deploy-rs's magic rollback).
   */
  readonly confirmTimeoutSeconds?: number;
}

export interface ActivationReport {
  readonly action: Action;
  readonly previousGeneration?: number;
  readonly newGeneration?: number;
  readonly previousSystem?: string;
  readonly newSystem: string;
  readonly output: string;
}

/**
 * Everything orchestration needs from a target. Orchestration only sees this seam; ssh2 lives behind it.
 */
export interface Host {
  /** How the host is named in messages, e.g. "root@10.0.0.5:22". */
  readonly name: string;
  run(command: string): Promise<RunResult>;
  currentSystem(): Promise<TargetSystem>;
  copyClosure(source: StoreSource, paths: readonly string[], options?: CopyOptions): Promise<CopyReport>;
  activate(toplevel: string, action: Action, options?: ActivateOptions): Promise<ActivationReport>;
  close(): Promise<void>;
}
