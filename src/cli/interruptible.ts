import { constants } from "node:os";

/** The exit code of a process ended by `signal`, as shells report it: 128 + its number. */
export function signalExitCode(signal: string): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? 0);
}

/** The command was interrupted (Ctrl-C, TERM); what the hosts were left in has been said. */
export class Interrupted extends Error {
  constructor(readonly signal: NodeJS.Signals) {
    super(`interrupted (${signal})`);
  }

  get exitCode(): number {
    return signalExitCode(this.signal);
  }
}

/**
 * Runs a command's work so that Ctrl-C / TERM first let `onInterrupt` restore the terminal and say what the hosts are
 * left in; the command then ends with Interrupted, which main() turns into 128 + signal, as shells report it, and the
 * bin exits at once (the work may still hold connections). Nothing local is left to clean up: module arguments reach
 * Nix on its stdin and keys the host over SSH; neither is ever written to a local file.
 */
export async function interruptible<T>(onInterrupt: (signal: NodeJS.Signals) => void, work: () => Promise<T>): Promise<T> {
  let onSignal: (signal: NodeJS.Signals) => void = () => undefined;
  const interrupted = new Promise<never>((_, reject) => {
    onSignal = (signal) => {
      onInterrupt(signal);
      reject(new Interrupted(signal));
    };
  });
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  try {
    return await Promise.race([work(), interrupted]);
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
}

/** commander's accumulator for a repeatable option (`-I a -I b`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
