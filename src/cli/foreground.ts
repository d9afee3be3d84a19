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
 * when a signal ended it). Ctrl-C and Ctrl-\ reach it from the terminal, so we only wait for it, as a shell does; a
 * TERM or HUP sent to us alone (a CI job cancelled, a closed terminal) is passed on, so the program never outlives us
 * unasked (a test driver then shuts its machines down).
 */
export function runForeground(program: string, args: readonly string[], env: NodeJS.ProcessEnv): Promise<number> {
  const child = spawn(program, args, { stdio: "inherit", env });
  const ignore = () => undefined;
  const forward = (signal: NodeJS.Signals) => child.kill(signal);
  process.on("SIGINT", ignore).on("SIGQUIT", ignore).on("SIGTERM", forward).on("SIGHUP", forward);
  return new Promise<number>((resolve, reject) => {
    child.on("error", reject);
    child.on("close", (code, signal) => resolve(code ?? 128 + (signal === null ? 0 : constants.signals[signal] ?? 0)));
  }).finally(() => process.off("SIGINT", ignore).off("SIGQUIT", ignore).off("SIGTERM", forward).off("SIGHUP", forward));
}
