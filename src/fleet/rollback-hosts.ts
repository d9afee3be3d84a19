// `rollback`: selected hosts of a stack back to an earlier generation, each through the same checked activation.
import { ConnectError, DeployError, exitCodeOf, worstExitCode } from "../errors";
import type { DeployEvent, HostDependencies } from "../deploy/request";
import { rollbackHost } from "../deploy/rollback";
import { recordOutcomes, type PlannedHost, type PushEvent, type PushReport } from "./push";
import { eachAtMost } from "../pool";

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
  const { outcomes, finish, ready } = recordOutcomes(plan, onEvent);
  await eachAtMost(options.parallel, ready, async (host) => {
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
  });
  const hosts = plan.map((h) => outcomes.get(h.name)!);
  return { dryRun: false, hosts, exitCode: worstExitCode(hosts.map((h) => h.exitCode)), durationMs: Date.now() - started, buildMs: 0 };
}
