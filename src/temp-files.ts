import { rmSync } from "node:fs";

/**
 * Temporary directories that must not outlive the process, even when a signal ends it before the `finally` that
 * removes them runs. A leaf module: whoever creates one registers it, the CLI's signal handler removes them all.
 */
const live = new Set<string>();

export function trackTempDir(path: string): void {
  live.add(path);
}

export function untrackTempDir(path: string): void {
  live.delete(path);
}

/** Removes every directory still registered; synchronous, for signal handlers that exit right after. */
export function removeTrackedTempDirs(): void {
  for (const path of live) {
    rmSync(path, { recursive: true, force: true });
    live.delete(path);
  }
}
