import { spawn } from "node:child_process";
import { constants } from "node:os";

/** A program the command handed the terminal to (a VM, a test driver) ended with this exit code. */
export class ForegroundExit extends Error {
  constructor(readonly what: string, readonly exitCode: number) {
    super(`${what} exited with code ${exitCode}`);
  }
}

/**
 * Runs a program in the foreground with our stdin, stdout and stderr, and resolves to its exit code (128 + signal
 * when a signal ended it). Ctrl-C and Ctrl-\ reach it from the terminal; we wait for it instead of dying first,
 * as a shell does.
 */
export function runForeground(program: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const ignore = () => undefined;
  process.on("SIGINT", ignore).on("SIGQUIT", ignore);
  return new Promise<number>((resolve, reject) => {
    const child = spawn(program, args, { stdio: "inherit", env });
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal] ?? 0)));
  }).finally(() => process.off("SIGINT", ignore).off("SIGQUIT", ignore));
}
