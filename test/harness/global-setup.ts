import { randomUUID } from "node:crypto";
import { cleanupStaleTargets, leftoverTargets, RUN_ID_ENV } from "./target-hosts";

/**
 * Runs once around the world suite (in vitest's main process). Before: removes what crashed earlier runs of this
 * harness left (worlds whose owning process is dead). After: fails loudly if the suite itself left anything, even
 * while a worker that leaked it is still shutting down (its worlds carry this run's id, inherited by the workers).
 */
export async function setup(): Promise<() => Promise<void>> {
  if (process.getuid?.() !== 0) return async () => {};
  const cleaned = await cleanupStaleTargets();
  if (cleaned.length > 0) console.warn(`world setup: removed leftovers of an earlier run: ${cleaned.join(", ")}`);
  const runId = randomUUID();
  process.env[RUN_ID_ENV] = runId;
  return async () => {
    const left = await leftoverTargets([process.pid], runId);
    if (left.length === 0) return;
    await cleanupStaleTargets(runId);
    throw new Error(`the world suite left these behind (now removed):\n  ${left.join("\n  ")}`);
  };
}
