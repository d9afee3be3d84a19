// `status`: what each host of a stack runs against what the stack declares, read-only.
import { EXIT_CODES } from "../errors";
import { LAST_ACTIVATION_FILE } from "../deploy/activation";
import { INSPECT_COMMAND, parseInspection, type TargetSystem } from "../deploy/inspection";
import { failedUnitsCommand } from "../deploy/activation-state";
import type { HostDependencies } from "../deploy/request";
import { withDeadline } from "../deploy/clock";
import { SYSTEM_CLOCK } from "../deploy/clock";
import { evaluateFleet as evaluateFleetWithNix, type EvaluatedSystem, type FleetMember } from "../nix/fleet-evaluation";
import { isUpToDate, type Action } from "../spec/goal";
import { readyHosts, type PlannedHost } from "./push";
import { eachAtMost } from "../pool";

/** A host's state against the stack, as `status` reports it (and its `--json` writes it). */
export type FleetHostState =
  /** It runs (and, for switch and boot, boots) what the stack declares. */
  | "up-to-date"
  /** Its boot default is the declared system, but it runs another one: a reboot (or a switch) is pending. */
  | "pending"
  /** It runs something the stack does not declare (a manual change, a rollback, a deploy of another revision). */
  | "drifted"
  | "unreachable"
  /** Terraform has not created its instance (or host). */
  | "not-created";

/** What the script recorded about the last activation that got the host's lock (see LAST_ACTIVATION_FILE). */
export interface LastActivation {
  /** ISO 8601, UTC, the host's clock. */
  readonly at: string;
  readonly action: string;
  readonly system: string;
  /** "activated", "rolled back", "failed (exit N)", "up to date", … */
  readonly outcome: string;
  /** The deploying machine and process ("laptop pid 4242"). */
  readonly by: string;
}

export interface HostStatusReport {
  readonly name: string;
  readonly state: FleetHostState;
  /** What the stack builds for it now. */
  readonly declaredSystem?: string;
  readonly runningSystem?: string;
  readonly bootSystem?: string;
  readonly generation?: number;
  readonly failedUnits: readonly string[];
  readonly lastActivation?: LastActivation;
  /** Why it is unreachable or not created. */
  readonly reason?: string;
}

export interface StatusReport {
  readonly hosts: readonly HostStatusReport[];
  /** 0: every host up to date; STATUS_EXIT_CODES otherwise. */
  readonly exitCode: number;
}

/** `status`'s exit codes, documented in the README. */
export const STATUS_EXIT_CODES = {
  upToDate: EXIT_CODES.ok,
  /** A host could not be reached (within its connect timeout). Outranks drift: what it runs is unknown. */
  unreachable: EXIT_CODES.connect,
  /** Every host was reached, and at least one is drifted, pending or not created. */
  notUpToDate: 13,
} as const;

/** Pure: a reached host's state from what it runs and boots, against the declared system and the deployment's action. */
export function classifyHost(action: Action, declared: string, host: Pick<TargetSystem, "currentSystem" | "profileSystem">): FleetHostState {
  // a dry-activate deployment never makes the host anything: whether it runs the declared system is judged as for switch
  if (isUpToDate(action === "dry-activate" ? "switch" : action, host, declared)) return "up-to-date";
  if (host.profileSystem === declared && host.currentSystem !== declared) return "pending";
  return "drifted";
}

export function statusExitCode(hosts: readonly Pick<HostStatusReport, "state">[]): number {
  if (hosts.some((h) => h.state === "unreachable")) return STATUS_EXIT_CODES.unreachable;
  return hosts.every((h) => h.state === "up-to-date") ? STATUS_EXIT_CODES.upToDate : STATUS_EXIT_CODES.notUpToDate;
}

const SECTION = "--cdktf-nixos-status--";

/** One round trip: the inspection, systemd's failed units and the last activation's record. Read-only. */
export const STATUS_COMMAND = [
  INSPECT_COMMAND,
  `echo ${SECTION}`,
  `echo "failed $(${failedUnitsCommand()} | tr '\\n' ' ')"`,
  `echo "last $(head -c 1024 ${LAST_ACTIVATION_FILE} 2>/dev/null | head -n 1)"`,
].join("; ");

/** Reads STATUS_COMMAND's output. */
export function parseStatusOutput(output: string): { readonly target: TargetSystem; readonly failedUnits: string[]; readonly lastActivation?: LastActivation } {
  const at = output.indexOf(SECTION);
  const target = parseInspection(at < 0 ? output : output.slice(0, at));
  const rest = at < 0 ? "" : output.slice(at + SECTION.length);
  const failedLine = /^failed (.*)$/m.exec(rest)?.[1] ?? "";
  const failedUnits = failedLine.split(" ").filter((u) => /^[A-Za-z0-9@._:\\-]{1,256}$/.test(u));
  const last = /^last (.*)$/m.exec(rest)?.[1] ?? "";
  return { target, failedUnits, ...(parseLastActivation(last) !== undefined ? { lastActivation: parseLastActivation(last) } : {}) };
}

/** The record's line: `at=… id=… action=… system=… status=… rolledBack=… by=HOLDER`. */
export function parseLastActivation(line: string): LastActivation | undefined {
  const match = /^at=(\S+) id=[0-9a-f]+ action=([a-z-]+) system=(\S+) status=(\S+) rolledBack=(\S+) by=(.{0,200})$/.exec(line.trim());
  if (match === null) return undefined;
  const [, at, action, system, status, rolledBack, by] = match as unknown as string[];
  return { at: at!, action: action!, system: system!, outcome: activationOutcome(status!, rolledBack!), by: by! };
}

/** The record's status and rollback words, in words. */
export function activationOutcome(status: string, rolledBack: string): string {
  if (status === "none") return "did not finish (killed, or the host stopped)";
  if (status === "locked") return "gave up waiting for the lock";
  if (status === "up-to-date") return "up to date (nothing done)";
  if (status.startsWith("missing-tool:")) return `refused: ${status.slice("missing-tool:".length)} is missing`;
  const exit = status === "0" ? "activated" : `failed (exit ${status})`;
  if (rolledBack === "no") return exit;
  if (rolledBack === "nothing") return `${exit}, nothing to roll back to`;
  return rolledBack === "0" ? `${exit}, then rolled back${status === "0" ? " (not confirmed, or a health check failed)" : ""}` : `${exit}, and its rollback failed (exit ${rolledBack})`;
}

export interface StatusDependencies extends Pick<HostDependencies, "connect" | "clock"> {
  /** The declared systems: one evaluation of the fleet. @default nix-instantiate (evaluateFleet) */
  readonly evaluateFleet?: (members: readonly FleetMember[]) => Map<string, EvaluatedSystem>;
}

/**
 * Every selected host's state: one evaluation of what the stack declares, then one read-only round trip per host, all
 * hosts at once (at most `parallel`), no lock taken. A host that cannot be reached within its connect timeout is
 * `unreachable`.
 */
export async function fleetStatus(plan: readonly PlannedHost[], deps: StatusDependencies, options: { readonly parallel: number; readonly onHost?: (host: HostStatusReport) => void }): Promise<StatusReport> {
  const ready = readyHosts(plan);
  const declared = ready.length === 0 ? new Map<string, EvaluatedSystem>() : (deps.evaluateFleet ?? evaluateFleetWithNix)(ready.map((h) => h.build));
  const clock = deps.clock ?? SYSTEM_CLOCK;
  const reports = new Map<string, HostStatusReport>();
  const done = (report: HostStatusReport) => {
    reports.set(report.name, report);
    options.onHost?.(report);
  };
  for (const host of plan) if (!host.ready) done({ name: host.name, state: "not-created", failedUnits: [], reason: host.reason });
  await eachAtMost(options.parallel, ready, async (host) => {
    const declaredSystem = declared.get(host.name)?.outPath;
    const replyMs = (host.request.replyTimeoutSeconds ?? 60) * 1000;
    try {
      const connection = await deps.connect(host.request.target);
      try {
        const result = await withDeadline(clock, connection.run(STATUS_COMMAND, { timeoutMs: replyMs, maxOutputBytes: 256 * 1024 }), replyMs);
        const read = parseStatusOutput(result.stdout);
        done({
          name: host.name,
          state: classifyHost(host.request.action ?? "switch", declaredSystem ?? "", read.target),
          declaredSystem,
          runningSystem: read.target.currentSystem,
          bootSystem: read.target.profileSystem,
          generation: read.target.profileGeneration,
          failedUnits: read.failedUnits,
          ...(read.lastActivation !== undefined ? { lastActivation: read.lastActivation } : {}),
        });
      } finally {
        await connection.close();
      }
    } catch (err) {
      done({ name: host.name, state: "unreachable", declaredSystem, failedUnits: [], reason: (err as Error).message });
    }
  });
  const hosts = plan.map((h) => reports.get(h.name)!);
  return { hosts, exitCode: statusExitCode(hosts) };
}
