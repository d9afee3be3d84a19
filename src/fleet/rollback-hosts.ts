// `rollback`: selected hosts of a stack back to an earlier generation, each through the same checked activation.
import { ConnectError, DeployError, EXIT_CODES, exitCodeOf, worstExitCode } from "../errors";
import type { DeployEvent, HostDependencies } from "../deploy/request";
import { rollbackHost } from "../deploy/rollback";
import type { HostOutcome, PlannedHost, PushEvent, PushReport } from "./push";

/**
 * Every ready host of the plan goes back to its previous generation (or `to`), at most `parallel` at once, with its
 * deployment's health checks and confirmation. A host without such a generation is refused (nothing changes on it).
 * The report is a push's: `rolled-back`, `up-to-date` (already on it), `failed` or `not-created` per host.
 */
export async function rollbackFleet(
  plan: readonly PlannedHost[],
  deps: HostDependencies & { readonly rollbackHost?: typeof rollbackHost },
  options: { readonly parallel: number; readonly to?: number },
  onEvent: (event: PushEvent) => void = () => undefined,
): Promise<PushReport> {
  const started = Date.now();
  const outcomes = new Map<string, HostOutcome>();
  const finish = (outcome: HostOutcome) => {
    outcomes.set(outcome.name, outcome);
    onEvent({ type: "host-done", outcome });
  };
  for (const host of plan) {
    if (!host.ready) finish({ name: host.name, status: "not-created", reason: host.reason, durationMs: 0, exitCode: EXIT_CODES.connect });
  }
  const ready = plan.filter((h): h is Extract<PlannedHost, { ready: true }> => h.ready);
  let next = 0;
  const worker = async () => {
    while (next < ready.length) {
      const host = ready[next++]!;
      const hostStarted = Date.now();
      const request = { ...host.request, onEvent: (event: DeployEvent) => onEvent({ type: "host", host: host.name, event }) };
      try {
        const result = await (deps.rollbackHost ?? rollbackHost)(request, deps, { to: options.to });
        finish({
          name: host.name, status: result.upToDate ? "up-to-date" : "rolled-back", result, durationMs: result.durationMs, exitCode: 0,
          reason: result.upToDate ? undefined : `generation ${result.previousGeneration ?? "-"} → ${result.newGeneration ?? "-"}`,
        });
      } catch (err) {
        const error = err instanceof DeployError ? err : new ConnectError(`${host.name}: ${(err as Error).message}`, { cause: err });
        finish({ name: host.name, status: "failed", error, durationMs: Date.now() - hostStarted, exitCode: exitCodeOf(error) });
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(options.parallel, ready.length) }, worker));
  const hosts = plan.map((h) => outcomes.get(h.name)!);
  return { dryRun: false, hosts, exitCode: worstExitCode(hosts.map((h) => h.exitCode)), durationMs: Date.now() - started, buildMs: 0 };
}
