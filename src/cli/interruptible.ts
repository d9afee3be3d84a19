import { constants } from "node:os";

/** The exit code of a process ended by `signal`, as shells report it: 128 + its number. */
export function signalExitCode(signal: string): number {
  return 128 + (constants.signals[signal as NodeJS.Signals] ?? 0);
}

/**
 * Runs a command's work so that Ctrl-C / TERM first let `onInterrupt` restore the terminal and say what the hosts are
 * left in, then exit 128 + signal, as shells report it. (Nothing local is left to clean up: module arguments reach Nix
 * on its stdin and keys the host over SSH; neither is ever written to a local file.)
 */
export async function interruptible<T>(onInterrupt: (signal: NodeJS.Signals) => void, work: () => Promise<T>): Promise<T> {
  const onSignal = (signal: NodeJS.Signals) => {
    onInterrupt(signal);
    process.exit(signalExitCode(signal));
  };
  process.once("SIGINT", onSignal).once("SIGTERM", onSignal);
  try {
    return await work();
  } finally {
    process.off("SIGINT", onSignal).off("SIGTERM", onSignal);
  }
}

/** commander's accumulator for a repeatable option (`-I a -I b`). */
export function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}
