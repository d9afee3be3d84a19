// A push in waves: how many hosts each wave changes, pure (push.ts carries it out).
import { UserInputError } from "../errors";

/** `--batch-size N` or `--batch-size P%`. */
export type BatchSize = { readonly count: number } | { readonly percent: number };

export interface WaveOptions {
  /** The first wave changes this many hosts alone; 0 is no canary. */
  readonly canary: number;
  /** Each later wave; undefined: all the rest at once. */
  readonly batchSize?: BatchSize;
  /** Hosts that may fail before the rollout stops (counted over the whole push). */
  readonly maxFailures: number;
  /** When the rollout stops, put the hosts it already changed back on what they ran before it. */
  readonly rollbackCompletedOnFailure: boolean;
}

export const NO_WAVES: WaveOptions = { canary: 0, maxFailures: 0, rollbackCompletedOnFailure: false };

/** A rollout in waves was asked for: failures then stop it (without waves, every host is tried). */
export function inWaves(options: WaveOptions): boolean {
  return options.canary > 0 || options.batchSize !== undefined;
}

export function parseBatchSize(text: string): BatchSize {
  const percent = /^(\d{1,3})%$/.exec(text);
  if (percent !== null && Number(percent[1]) >= 1 && Number(percent[1]) <= 100) return { percent: Number(percent[1]) };
  if (/^\d{1,6}$/.test(text) && Number(text) >= 1) return { count: Number(text) };
  throw new UserInputError(`--batch-size '${text}' is not a number of hosts (at least 1) or a percentage from 1% to 100%`);
}

/** `--canary N` / `--max-failures N`: a whole number from 0. */
export function parseHostCount(flag: string, text: string): number {
  if (!/^\d{1,6}$/.test(text)) throw new UserInputError(`${flag} '${text}' is not a whole number of hosts from 0`);
  return Number(text);
}

/**
 * How many hosts wave `wave` (from 1) changes: the canary, then the batch size (a percentage of `total`, the hosts
 * the push may change, rounded up, at least 1). Hosts found up to date take no place in a wave.
 */
export function waveCapacity(wave: number, total: number, options: WaveOptions): number {
  if (wave === 1 && options.canary > 0) return options.canary;
  const batch = options.batchSize;
  if (batch === undefined) return Number.POSITIVE_INFINITY;
  return "count" in batch ? batch.count : Math.max(1, Math.ceil((batch.percent / 100) * total));
}

/**
 * The waves of the hosts that need a change, in name order (what `--dry-run` shows and a push does); percentages are
 * of `total`, every host the push may change (up to date or not, as a push cannot know beforehand).
 */
export function planWaves(names: readonly string[], total: number, options: WaveOptions): string[][] {
  const sorted = [...names].sort(byName);
  const waves: string[][] = [];
  for (let next = 0; next < sorted.length;) {
    const size = Math.min(waveCapacity(waves.length + 1, total, options), sorted.length - next);
    waves.push(sorted.slice(next, next + size));
    next += size;
  }
  return waves;
}

/** Name order, as people sort host names (web-2 before web-10). */
export function byName(a: string, b: string): number {
  return a.localeCompare(b, "en", { numeric: true });
}
