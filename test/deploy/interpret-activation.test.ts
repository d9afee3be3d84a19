import { describe, expect, it } from "vitest";
import { planActivation, type ActivationPlan } from "../../src/deploy/activation";
import type { ActivationState } from "../../src/deploy/activation-state";
import { activationDeadlines } from "../../src/deploy/activation-follower";
import { factsNeeded, interpretActivation, type ActivationFacts, type ActivationVerdict } from "../../src/deploy/interpret-activation";
import type { TargetSystem } from "../../src/deploy/inspection";
import { ActivateError, ConfirmError, HostStateUnknownError, LockError, RollbackError, exitCodeOf } from "../../src/errors";

const OLD = "/nix/store/0000000000000000000000000000000a-nixos-system-old";
const NEW = "/nix/store/0000000000000000000000000000000b-nixos-system-new";
const before: TargetSystem = { system: "x86_64-linux", nix: true, nixos: true, systemd: false, currentSystem: OLD, profileGeneration: 4, profileSystem: OLD };
const recorded = { currentSystem: OLD, profileGeneration: 4, profileSystem: OLD };
const after = { currentSystem: NEW, profileGeneration: 5, profileSystem: NEW };
const now: TargetSystem = { ...before, currentSystem: NEW, profileGeneration: 5, profileSystem: NEW };

const plan = (overrides: { action?: "switch" | "boot" | "test" | "dry-activate"; confirm?: number; rollback?: boolean; acceptFailedUnits?: boolean } = {}): ActivationPlan => planActivation({
  before, toplevel: NEW, action: overrides.action ?? "switch", user: "root", lockTimeoutSeconds: 300, holder: "laptop pid 1", id: "abc",
  confirmTimeoutSeconds: overrides.confirm, rollback: overrides.rollback, acceptFailedUnits: overrides.acceptFailedUnits,
});
const JOURNAL = "== web.service\nstarting web\nweb: /etc/web.conf: no such file\n== db.service\n";
const WEB = { name: "web.service", journal: ["starting web", "web: /etc/web.conf: no such file"] };
const DB = { name: "db.service", journal: [] };
const state = (s: Partial<ActivationState>): ActivationState => ({ running: true, decided: false, done: false, alive: true, garbled: [], before: recorded, ...s });
const context = (p: ActivationPlan, rollbackDeclined = false) => ({ plan: p, name: "web", rollbackDeclined, activationSeconds: 600, startWaitSeconds: 315 });
const facts = (f: Partial<ActivationFacts>): ActivationFacts => ({ log: "the log\n", inspected: before, ...f });
const what = `'switch' of ${NEW} on web`;

type Row = [string, ActivationPlan, Partial<ActivationFacts>, boolean, (verdict: ActivationVerdict) => void];
const failsWith = (type: new (...args: never[]) => Error, message: string, exitCode: number, extra: (v: Extract<ActivationVerdict, { kind: "failed" }>) => void = () => undefined) =>
  (verdict: ActivationVerdict) => {
    expect(verdict.kind).toBe("failed");
    if (verdict.kind !== "failed") return;
    expect(verdict.error).toBeInstanceOf(type);
    expect(verdict.error.message).toBe(message);
    expect(exitCodeOf(verdict.error)).toBe(exitCode);
    extra(verdict);
  };

/** Every way an activation can end, and what is reported for it. */
const rows: Row[] = [
  ["the lock and start state never came", plan(), { stopped: "start-timeout" }, false,
    failsWith(HostStateUnknownError, `${what} did not start within 315 s`, 10)],
  ["the host restarted mid-activation", plan(), { state: state({}), stopped: "restarted", hostNow: now }, false,
    failsWith(ActivateError, `web restarted during ${what}: the activation's state in /run is gone; it runs ${NEW} (its profile is generation 5)`, 6,
      (v) => expect(v.error.hostState).toEqual(now))],
  ["the script was killed", plan(), { state: state({ alive: false }), stopped: "script-gone", hostNow: now }, false,
    failsWith(HostStateUnknownError, `the activation script of ${what} stopped before it finished (was it killed, or its unit stopped?)`, 10,
      (v) => expect(v.error.stderr).toBe("the log\n"))],
  ["no status by the deadline, unconfirmed", plan(), { state: state({}), stopped: "status-timeout" }, false,
    failsWith(HostStateUnknownError, `${what} did not finish within 600 s`, 10)],
  ["no status by the deadline, confirmed: the host rolls itself back", plan({ confirm: 30 }), { state: state({}), stopped: "status-timeout" }, false,
    failsWith(ConfirmError, `${what} did not finish within 600 s; it was not confirmed, so once it finishes the host rolls itself back to ${OLD}`, 7)],
  ["the host lacks flock", plan(), { state: state({ before: undefined, status: { kind: "missing-tool", tool: "flock" }, done: true }), hostNow: before }, false,
    failsWith(LockError, "web has no flock command, which the deployment lock needs; nothing was changed", 9)],
  ["another deployment held the lock throughout", plan(), { state: state({ before: undefined, waitingFor: "ci pid 7", status: { kind: "locked" }, done: true }) }, false,
    failsWith(LockError, "web is locked by another deployment (ci pid 7) for more than 300 s; nothing was changed", 9)],
  ["another deployment made the host what this one would", plan(), { state: state({ status: { kind: "up-to-date" }, done: true }) }, false,
    (v) => expect(v).toEqual({ kind: "up-to-date", report: {
      action: "switch", previousGeneration: 4, newGeneration: 4, previousSystem: OLD, newSystem: NEW, output: "the log\n", upToDate: true,
    } })],
  ["activated", plan(), { state: state({ after, status: { kind: "exited", code: 0 } }) }, false,
    (v) => expect(v).toEqual({ kind: "activated", previous: OLD, report: {
      action: "switch", previousGeneration: 4, newGeneration: 5, previousSystem: OLD, newSystem: NEW, output: "the log\n",
    } })],
  ["activated, its after-state not recorded: what the host runs now", plan(), { state: state({ status: { kind: "exited", code: 0 } }), hostNow: now }, false,
    (v) => expect(v.kind === "activated" && v.report.newGeneration).toBe(5)],
  ["failed and rolled back", plan(), { state: state({ status: { kind: "exited", code: 3 }, rolledBack: { kind: "exited", code: 0 }, done: true }), hostNow: before }, false,
    failsWith(ActivateError, `${what} exited with code 3; web was rolled back to ${OLD}`, 6, (v) => expect(v.rolledBackTo).toBe(OLD))],
  ["units failed (exit 4): rolled back, the units named with their journal lines", plan(),
    { state: state({ status: { kind: "exited", code: 4 }, failedUnits: ["web.service", "db.service"], rolledBack: { kind: "exited", code: 0 }, done: true }), journal: JOURNAL, hostNow: before }, false,
    failsWith(ActivateError, `${what} exited with code 4 (units failed: web.service, db.service); web was rolled back to ${OLD}`, 6, (v) => {
      expect(v.error.failedUnits).toEqual([WEB, DB]);
      expect(v.error.hint).toContain("--accept-failed-units");
      expect(v.error.describe()).toContain("  failed units: web.service, db.service\n    web.service, its last journal lines:\n      starting web\n");
    })],
  ["units failed (exit 4), accepted: kept, the units reported", plan({ acceptFailedUnits: true }),
    { state: state({ after, status: { kind: "exited", code: 4 }, failedUnits: ["web.service"], done: true }), journal: JOURNAL }, false,
    (v) => expect(v).toEqual({ kind: "activated", previous: OLD, report: {
      action: "switch", previousGeneration: 4, newGeneration: 5, previousSystem: OLD, newSystem: NEW, output: "the log\n", failedUnits: [WEB],
    } })],
  ["activation failed (exit 2), accepting failed units does not keep it", plan({ acceptFailedUnits: true }),
    { state: state({ status: { kind: "exited", code: 2 }, rolledBack: { kind: "exited", code: 0 }, done: true }) }, false,
    failsWith(ActivateError, `${what} exited with code 2; web was rolled back to ${OLD}`, 6)],
  ["failed, nothing to roll back to", plan(), { state: state({ status: { kind: "exited", code: 3 }, rolledBack: { kind: "nothing" }, done: true }) }, false,
    failsWith(ActivateError, `${what} exited with code 3; web had no earlier system to roll back to`, 6, (v) => expect(v.rolledBackTo).toBeUndefined())],
  ["failed, and the rollback failed", plan(), { state: state({ status: { kind: "exited", code: 3 }, rolledBack: { kind: "exited", code: 1 }, done: true }) }, false,
    failsWith(RollbackError, `${what} exited with code 3, and rolling back to ${OLD} failed too (exit 1)`, 8)],
  ["failed, the rollback did not finish in time", plan(), { state: state({ status: { kind: "exited", code: 3 } }), stopped: "rollback-timeout" }, false,
    failsWith(HostStateUnknownError, `${what} exited with code 3, and rolling back to ${OLD} did not finish within 600 s`, 10)],
  ["failed with --no-rollback: left as it is", plan({ rollback: false }), { state: state({ status: { kind: "exited", code: 3 }, done: true }) }, true,
    failsWith(ActivateError, `${what} exited with code 3; web was left as it is (--no-rollback)`, 6)],
  ["a dry-activate that failed: nothing to roll back", plan({ action: "dry-activate" }), { state: state({ status: { kind: "exited", code: 3 }, done: true }) }, false,
    failsWith(ActivateError, `'dry-activate' of ${NEW} on web exited with code 3`, 6)],
  ["a boot goes back to the boot default recorded under the lock", plan({ action: "boot" }),
    { state: state({ before: { ...recorded, profileSystem: "/nix/store/c-boot" }, status: { kind: "exited", code: 1 }, rolledBack: { kind: "exited", code: 0 }, done: true }) }, false,
    failsWith(ActivateError, `'boot' of ${NEW} on web exited with code 1; web was rolled back to /nix/store/c-boot`, 6)],
];

describe("interpretActivation", () => {
  it.each(rows)("%s", (_name, p, f, declined, check) => {
    check(interpretActivation(context(p, declined), facts(f)));
  });

  it("covers every status and every way of stopping short", () => {
    const kinds = new Set(rows.flatMap(([, , f]) => [f.stopped ?? "", f.state?.status?.kind ?? "", f.state?.rolledBack?.kind ?? ""]));
    for (const kind of ["start-timeout", "status-timeout", "rollback-timeout", "restarted", "script-gone", "exited", "locked", "up-to-date", "missing-tool", "nothing"]) {
      expect(kinds).toContain(kind);
    }
  });

  it("asks for the log and the host's state only where a report uses them", () => {
    const plan = { keptExitCodes: [0] };
    expect(factsNeeded(undefined, "start-timeout", plan)).toEqual({ log: false, hostNow: false, journal: false });
    expect(factsNeeded(state({ status: { kind: "exited", code: 0 }, after }), undefined, plan)).toEqual({ log: true, hostNow: false, journal: false });
    expect(factsNeeded(state({ status: { kind: "exited", code: 0 } }), undefined, plan)).toEqual({ log: true, hostNow: true, journal: false });
    expect(factsNeeded(state({ status: { kind: "exited", code: 2 } }), undefined, plan)).toEqual({ log: true, hostNow: true, journal: false });
    expect(factsNeeded(state({ status: { kind: "locked" } }), undefined, plan)).toEqual({ log: false, hostNow: true, journal: false });
    // failed units: their journal; exit 4 kept when accepted, so the host's state after it is what the script recorded
    const unitsFailed = state({ status: { kind: "exited", code: 4 }, after, failedUnits: ["web.service"] });
    expect(factsNeeded(unitsFailed, undefined, plan)).toEqual({ log: true, hostNow: true, journal: true });
    expect(factsNeeded(unitsFailed, undefined, { keptExitCodes: [0, 4] })).toEqual({ log: true, hostNow: false, journal: true });
  });
});

describe("activationDeadlines", () => {
  it("derives every deadline from the lock, activation and confirmation timeouts", () => {
    const plain = activationDeadlines(plan(), 600);
    expect([plain.activationMs, plain.startWaitMs, plain.readBoundMs, plain.confirmRetryMs, plain.reconnectUntil(50_000, 1_000)]).toEqual([600_000, 315_000, 15_000, 0, 50_000]);
    const confirmed = activationDeadlines(plan({ confirm: 10 }), 600);
    // a confirmed host counts down: reads stay within its window, reconnecting stops with a fifth of it left
    expect([confirmed.readBoundMs, confirmed.confirmRetryMs, confirmed.confirmBoundMs, confirmed.reconnectUntil(50_000, 1_000)]).toEqual([10_000, 8_000, 10_000, 9_000]);
  });
});
