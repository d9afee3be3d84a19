/** The phases of a deployment; every failure names the one it happened in. */
export type DeployPhase = "connect" | "evaluate" | "build" | "copy" | "activate" | "confirm" | "rollback";

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
}

/** A failure of one deployment phase, carrying the failed command and its stderr. */
export class DeployError extends Error {
  readonly phase: DeployPhase;
  readonly command?: string;
  readonly stderr?: string;
  readonly exitCode?: number;
  readonly hint?: string;

  constructor(phase: DeployPhase, message: string, details: DeployErrorDetails = {}) {
    super(message, details.cause === undefined ? undefined : { cause: details.cause });
    this.name = new.target.name;
    this.phase = phase;
    this.command = details.command;
    this.stderr = details.stderr;
    this.exitCode = details.exitCode;
    this.hint = details.hint;
  }

  /** The message with command, stderr and hint, as the CLI prints it. */
  describe(): string {
    const lines = [`${this.phase} failed: ${this.message}`];
    if (this.command !== undefined) lines.push(`  command: ${this.command}`);
    if (this.exitCode !== undefined) lines.push(`  exit code: ${this.exitCode}`);
    if (this.stderr !== undefined && this.stderr.trim() !== "") {
      lines.push("  stderr:", ...this.stderr.trimEnd().split("\n").map((l) => `    ${l}`));
    }
    if (this.hint !== undefined) lines.push(`  hint: ${this.hint}`);
    return lines.join("\n");
  }
}

export class ConnectError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("connect", message, details);
  }
}
export class EvaluateError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("evaluate", message, details);
  }
}
export class BuildError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("build", message, details);
  }
}
export class CopyError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("copy", message, details);
  }
}
export class ActivateError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("activate", message, details);
  }
}
export class ConfirmError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("confirm", message, details);
  }
}
export class RollbackError extends DeployError {
  constructor(message: string, details?: DeployErrorDetails) {
    super("rollback", message, details);
  }
}
