// Going back to an earlier generation of a host's system profile, through the same activation as a deployment.
import { InspectError } from "../errors";
import { SYSTEM_CLOCK } from "./clock";
import { activateSystem } from "./deploy";
import { SYSTEM_PROFILE } from "./inspection";
import { connectTo, during, inspect, replyTimeoutMs, checkSudo } from "./phases";
import type { BuiltDeployRequest, DeployResult, HostDependencies } from "./request";

/** One generation of the system profile: its number and the system it holds. */
export interface Generation {
  readonly number: number;
  readonly system: string;
}

/** Lists the system profile's generations as `NUMBER SYSTEM` lines (read-only). */
export const GENERATIONS_COMMAND =
  `for l in ${SYSTEM_PROFILE}-*-link; do [ -e "$l" ] || continue; n=\${l#${SYSTEM_PROFILE}-}; echo "\${n%-link} $(readlink -f "$l")"; done; true`;

export function parseGenerations(output: string): Generation[] {
  return output.split("\n").flatMap((line) => {
    const match = /^(\d{1,9}) (\/nix\/store\/[0-9a-z]{32}-[^\s/]{1,200})$/.exec(line.trim());
    return match === null ? [] : [{ number: Number(match[1]), system: match[2]! }];
  }).sort((a, b) => a.number - b.number);
}

/** The generation a rollback goes to, or why there is none (nothing is changed then). */
export type RollbackChoice =
  | { readonly ok: true; readonly generation: Generation }
  | { readonly ok: false; readonly reason: string };

/**
 * `to` given: that generation; otherwise the newest one older than the profile's current generation (what
 * `nixos-rebuild switch --rollback` goes to). `system`, when given, is what the generation must hold (a push going
 * back to what a host ran before it).
 */
export function chooseRollback(generations: readonly Generation[], current: number | undefined, options: { readonly to?: number; readonly system?: string } = {}): RollbackChoice {
  const listed = generations.length === 0 ? "it has none" : `it has ${generations.map((g) => g.number).join(", ")}`;
  let generation: Generation | undefined;
  if (options.to !== undefined) {
    generation = generations.find((g) => g.number === options.to);
    if (generation === undefined) return { ok: false, reason: `there is no generation ${options.to} of ${SYSTEM_PROFILE} (${listed})` };
  } else {
    if (current === undefined) return { ok: false, reason: `${SYSTEM_PROFILE} points at no generation` };
    generation = [...generations].reverse().find((g) => g.number < current);
    if (generation === undefined) return { ok: false, reason: `there is no generation before the current one (${current}) of ${SYSTEM_PROFILE} (${listed})` };
  }
  if (options.system !== undefined && generation.system !== options.system) {
    return { ok: false, reason: `generation ${generation.number} holds ${generation.system}, not ${options.system} (the profile changed since)` };
  }
  return { ok: true, generation };
}

/** No generation to roll back to: refused before anything changed. */
export class NoSuchGenerationError extends InspectError {}

/**
 * Puts a host back on an earlier generation (the previous one, or `to`): connect, inspect, list the generations, then
 * the same detached, locked activation as a deployment — `nix-env --switch-generation` instead of a new generation,
 * with the request's health checks and confirmation. A host whose profile and running system already are that
 * generation is left alone (up to date).
 */
export async function rollbackHost(
  request: BuiltDeployRequest,
  deps: HostDependencies,
  options: { readonly to?: number; readonly system?: string } = {},
): Promise<DeployResult> {
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const startedAt = clock.now();
  const action = request.action ?? "switch";
  const emit = request.onEvent ?? (() => undefined);
  let host = await connectTo(request, deps, emit);
  try {
    emit({ type: "phase", phase: "inspect" });
    const before = await inspect(host, replyTimeoutMs(request));
    emit({ type: "target", target: before });
    const listed = await during("inspect", `listing the generations of ${host.name}`, () => host.run(GENERATIONS_COMMAND, { timeoutMs: replyTimeoutMs(request), maxOutputBytes: 1024 * 1024 }));
    const choice = chooseRollback(parseGenerations(listed.stdout), before.profileGeneration, options);
    if (!choice.ok) {
      throw new NoSuchGenerationError(`cannot roll ${host.name} back: ${choice.reason}; nothing was changed`, {
        command: GENERATIONS_COMMAND, hint: "`cdktf-nixos status` shows each host's generation; pick one with --to-generation N",
      });
    }
    const { generation } = choice;
    const result = (upToDate: boolean, report?: { previousGeneration?: number; newGeneration?: number; previousSystem?: string; healthChecks?: DeployResult["healthChecks"] }): DeployResult => ({
      host: host.name, action, system: before.system, upToDate, pathsCopied: 0, pathsInClosure: 0, bytesSent: 0, wireBytes: 0,
      previousSystem: report?.previousSystem ?? before.currentSystem, newSystem: generation.system,
      previousGeneration: report?.previousGeneration ?? before.profileGeneration, newGeneration: report?.newGeneration ?? generation.number,
      keys: [], ...(report?.healthChecks !== undefined ? { healthChecks: report.healthChecks } : {}), durationMs: clock.now() - startedAt,
    });
    if (before.profileGeneration === generation.number && before.currentSystem === generation.system && !request.reactivate) {
      emit({ type: "up-to-date", state: before });
      return result(true);
    }
    const user = request.target.user ?? "root";
    if (user !== "root") await checkSudo(host, user, replyTimeoutMs(request));
    const activated = await activateSystem(host, before, generation.system, request, deps, emit, { switchGeneration: generation.number });
    host = activated.host;
    emit({ type: "activated", report: activated.report });
    return result(activated.report.upToDate === true, activated.report);
  } finally {
    await host.close();
  }
}
