/**
 * What Nix's build log says about progress, from the lines `nix-store --realise` writes to stderr:
 * "these 3 derivations will be built:" and "building '/nix/store/…-name.drv'...".
 */
export interface BuildProgress {
  /** Derivations Nix announced it will build (0 until it says). */
  readonly total: number;
  /** Derivations started so far. */
  readonly started: number;
  /** Name of the derivation started last, e.g. "nixos-system-web-25.05". */
  readonly current?: string;
}

export const NO_BUILD_PROGRESS: BuildProgress = { total: 0, started: 0 };

/** The progress after one more log line; undefined when the line says nothing about it. */
export function advanceBuildProgress(progress: BuildProgress, line: string): BuildProgress | undefined {
  const announced = /^these (\d+) derivations? will be built:/.exec(line) ?? (/^this derivation will be built:/.test(line) ? [line, "1"] : null);
  if (announced !== null) return { ...progress, total: progress.total + Number(announced[1]) };
  const building = /^building '\/nix\/store\/[0-9a-z]{32}-(.+)\.drv'/.exec(line);
  if (building !== null) return { ...progress, started: progress.started + 1, current: building[1] };
  return undefined;
}

/**
 * Follows a build log line by line: for a line that starts a derivation, says which and how many of how many
 * ("nixos-system-web-25.05 (3 of 3)"); undefined for every other line.
 */
export function buildProgressTracker(): (line: string) => string | undefined {
  let progress = NO_BUILD_PROGRESS;
  return (line) => {
    const next = advanceBuildProgress(progress, line);
    if (next === undefined) return undefined;
    const started = next.started > progress.started;
    progress = next;
    return started ? `${next.current} (${next.started} of ${Math.max(next.total, next.started)})` : undefined;
  };
}
