import { cleanupStaleTargets, leftoverTargets } from "./target-hosts";

/**
 * Runs once around the world suite (in vitest's main process). Before: removes what crashed earlier runs of this
 * harness left (worlds whose owning process is dead). After: fails loudly if the suite itself left anything.
 */
export async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) return async () => {};
  const cleaned = await cleanupStaleTargets();
  if (cleaned.length > 0) console.warn(`world setup: removed leftovers of an earlier run: ${cleaned.join(", ")}`);
  return async () => {
    const left = await leftoverTargets([process.pid]);
    if (left.length === 0) return;
    await cleanupStaleTargets();
    throw new Error(`the world suite left these behind (now removed):\n  ${left.join("\n  ")}`);
  };
}
