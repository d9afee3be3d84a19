/**
 * The phases of a deployment: one vocabulary for progress events, errors and exit codes. A leaf module, so `nix/`,
 * `deploy/` and `cli/` can all name phases without depending on each other.
 */
export const PHASES = ["evaluate", "build", "connect", "inspect", "copy", "keys", "lock", "activate", "health", "confirm", "rollback"] as const;
export type DeployPhase = (typeof PHASES)[number];

/**
 * Exit codes, documented in the README: scripts and Terraform can tell what failed. Evaluation and build share 4
 * (the system could not be produced); connect and inspect share 3 (the host cannot be reached or used).
 */
export const EXIT_CODES = {
  ok: 0,
  failure: 1,
  usage: 2,
  connect: 3,
  inspect: 3,
  evaluate: 4,
  build: 4,
  copy: 5,
  activate: 6,
  confirm: 7,
  rollback: 8,
  /** Another deployment held the host's lock past --lock-timeout; nothing was changed. */
  lock: 9,
  /** The host could not be reached again after the connection was lost mid-activation: its state is unknown. */
  unknown: 10,
  /** A key could not be uploaded (its user or group is missing on the host, the disk is full, …). */
  keys: 11,
  /** A health check failed after activation: the new system was not confirmed and the host rolled back. */
  health: 12,
  /** Interrupted (Ctrl-C, SIGTERM), as shells report SIGINT. */
  interrupted: 130,
} as const satisfies Record<DeployPhase | "ok" | "failure" | "usage" | "unknown" | "interrupted", number>;

/**
 * Input that cannot be acted on — a flag, a project, a host selection, a key spec, a file given to us — found before
 * anything was built, contacted or written. One family for every command: the CLI prints the message alone and
 * exits 2 (EXIT_CODES.usage); subclasses only say where the input came from.
 */
export class UserInputError extends Error {
  constructor(message: string, options?: { readonly cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}

/** What a host was found running, for reports of failures as well as successes. */
export interface HostState {
  readonly currentSystem?: string;
  readonly profileGeneration?: number;
  readonly profileSystem?: string;
}

/** A systemd unit that failed on the host, with its last journal lines. */
export interface FailedUnit {
  readonly name: string;
  readonly journal: readonly string[];
}

/** What one health check of a new system found. */
export interface HealthCheckResult {
  readonly name: string;
  readonly outcome: "passed" | "failed" | "skipped";
  /** Attempts made (0 when skipped). */
  readonly attempts: number;
  /** What the last attempt saw, in words: "exit 0", "status 503 …", "degraded; failed units: web.service". */
  readonly saw: string;
  /** The systemd check's failed units, with their last journal lines. */
  readonly failedUnits?: readonly FailedUnit[];
}

export interface DeployErrorDetails {
  /** The command that failed, as the user could run it (never containing secrets). */
  readonly command?: string;
  /** What the failed command wrote to stderr, verbatim. */
  readonly stderr?: string;
  /** The exit code of the failed command, when there was one. */
  readonly exitCode?: number;
  /** What the user can do about it. */
  readonly hint?: string;
  readonly cause?: unknown;
  /** What the host runs after the failure, when it could be read. */
  readonly hostState?: HostState;
  /** systemd units that were failed right after activating, with their last journal lines. */
  readonly failedUnits?: readonly FailedUnit[];
  /** The health checks run before the failure, the failed one last. */
  readonly healthChecks?: readonly HealthCheckResult[];
}

/** How much of a failed command's stderr (an activation's log) a report shows: its end, where the reason is. */
export const STDERR_TAIL_LINES = 40;

/** A failure of one deployment phase, carrying the failed command and its stderr. */
export class DeployError extends Error {
  readonly phase: DeployPhase;
  readonly command?: string;
  readonly stderr?: string;
  readonly exitCode?: number;
  readonly hint?: string;
  readonly hostState?: HostState;
  readonly failedUnits?: readonly FailedUnit[];
  readonly healthChecks?: readonly HealthCheckResult[];

  constructor(phase: DeployPhase, message: string, details: DeployErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.phase = phase;
    this.command = details.command;
    this.stderr = details.stderr;
    this.exitCode = details.exitCode;
    this.hint = details.hint;
    this.hostState = details.hostState;
    this.failedUnits = details.failedUnits;
    this.healthChecks = details.healthChecks;
  }

  /** The process exit code this failure ends a deployment with. */
  get exitCodeOfDeployment(): number {
    return EXIT_CODES[this.phase];
  }

  /**
   * The error in full, as the CLI prints it: message, command, the last STDERR_TAIL_LINES lines of stderr, hint.
   * `stderrShownFor` names a host whose report already showed the same stderr (said once).
   */
  describe(options: { readonly stderrShownFor?: string } = {}): string {
    const lines = [`${this.phase} failed: ${this.message}`];
    if (this.command !== undefined) lines.push(`  command: ${this.command}`);
    if (this.exitCode !== undefined) lines.push(`  exit code: ${this.exitCode}`);
    if (this.stderr !== undefined && this.stderr.trim() !== "") {
      if (options.stderrShownFor !== undefined) {
        lines.push(`  stderr: the same as ${options.stderrShownFor}'s above`);
      } else {
        const all = this.stderr.trimEnd().split("\n");
        const tail = all.slice(-STDERR_TAIL_LINES);
        lines.push(tail.length < all.length ? `  stderr (its last ${tail.length} of ${all.length} lines):` : "  stderr:");
        for (const line of tail) lines.push(`    ${line}`);
      }
    }
    if (this.healthChecks !== undefined && this.healthChecks.length > 0) lines.push(...describeHealthChecks(this.healthChecks));
    if (this.failedUnits !== undefined && this.failedUnits.length > 0) lines.push(...describeFailedUnits(this.failedUnits));
    if (this.hostState !== undefined) lines.push(`  the host now runs: ${describeHostState(this.hostState)}`);
    if (this.hint !== undefined) lines.push(`  hint: ${this.hint}`);
    return lines.join("\n");
  }
}

/** Failed units as a report shows them: each name, then its last journal lines, indented. */
export function describeFailedUnits(units: readonly FailedUnit[]): string[] {
  return [
    `  failed units: ${units.map((u) => u.name).join(", ")}`,
    ...units.flatMap((u) => u.journal.length === 0 ? [] : [`    ${u.name}, its last journal lines:`, ...u.journal.map((l) => `      ${l}`)]),
  ];
}

/** Health checks as a report shows them: one line each. */
export function describeHealthChecks(checks: readonly HealthCheckResult[]): string[] {
  return [
    "  health checks:",
    ...checks.map((c) => `    ${c.outcome === "passed" ? "✓" : c.outcome === "failed" ? "✗" : "-"} ${c.name}: ${c.outcome === "skipped" ? "skipped, " : ""}${c.saw}` +
      (c.attempts > 1 ? ` (${c.attempts} attempts)` : "")),
  ];
}

export function describeHostState(state: HostState): string {
  const running = state.currentSystem ?? "no system (/run/current-system is missing)";
  const profile = state.profileGeneration === undefined ? "no system profile" : `profile generation ${state.profileGeneration}` +
    (state.profileSystem !== undefined && state.profileSystem !== state.currentSystem ? ` (boot default ${state.profileSystem})` : "");
  return `${running}, ${profile}`;
}

/** The error class of one phase: `new ActivateError(message, details)`. */
function phaseError(phase: DeployPhase) {
  return class extends DeployError {
    constructor(message: string, details?: DeployErrorDetails) {
      super(phase, message, details);
    }
  };
}

export class EvaluateError extends phaseError("evaluate") {}
export class BuildError extends phaseError("build") {}
export class ConnectError extends phaseError("connect") {}
/** The host was reached but cannot take this system (architecture, not NixOS, no Nix). */
export class InspectError extends phaseError("inspect") {}
export class CopyError extends phaseError("copy") {}
export class ActivateError extends phaseError("activate") {}
export class ConfirmError extends phaseError("confirm") {}
export class RollbackError extends phaseError("rollback") {}
export class LockError extends phaseError("lock") {}
/** A health check of the new system failed: it was not confirmed (the report says whether the host rolled back). */
export class HealthCheckError extends phaseError("health") {}
/** A key could not be uploaded to the host. */
export class KeysError extends phaseError("keys") {}

/**
 * The connection was lost mid-activation and the host could not be reached again in time: nobody can say what it
 * runs. The activation goes on (and rolls back on failure) on the host by itself.
 */
export class HostStateUnknownError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("activate", message, details);
  }

  override get exitCodeOfDeployment(): number {
    return EXIT_CODES.unknown;
  }
}

/**
 * The transport failed (the connection dropped, a channel could not be opened). Orchestration turns it into the
 * error of the phase it happened in, saying what is known about the host.
 */
export class TransportError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = "TransportError";
  }
}

/** The exit code for any failure: a phase's code for typed errors, 1 for anything unforeseen. */
export function exitCodeOf(err: unknown): number {
  if (err instanceof UserInputError) return EXIT_CODES.usage;
  return err instanceof DeployError ? err.exitCodeOfDeployment : EXIT_CODES.failure;
}

/**
 * Exit codes from worst to least bad, for a command over several hosts: a host whose state is unknown outranks a
 * failed rollback, which outranks a refused confirmation, a rolled-back activation, a key not uploaded, a lock, a
 * failed copy, a failed build and an unreachable host; then anything else.
 */
export const EXIT_CODE_SEVERITY: readonly number[] = [
  EXIT_CODES.unknown, EXIT_CODES.rollback, EXIT_CODES.confirm, EXIT_CODES.health, EXIT_CODES.activate, EXIT_CODES.keys, EXIT_CODES.lock,
  EXIT_CODES.copy, EXIT_CODES.build, EXIT_CODES.connect, EXIT_CODES.usage, EXIT_CODES.failure,
];

/** The exit code of several hosts' results: 0 when all are 0, else the worst by EXIT_CODE_SEVERITY. */
export function worstExitCode(codes: readonly number[]): number {
  const failed = codes.filter((code) => code !== EXIT_CODES.ok);
  if (failed.length === 0) return EXIT_CODES.ok;
  const rank = (code: number) => (EXIT_CODE_SEVERITY.includes(code) ? EXIT_CODE_SEVERITY.indexOf(code) : EXIT_CODE_SEVERITY.length);
  return failed.reduce((worst, code) => (rank(code) < rank(worst) ? code : worst));
}
