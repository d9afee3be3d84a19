// Health checks of a new system, run after activation and before its confirmation (see activation-follower.ts).
import http from "node:http";
import https from "node:https";
import type { Duplex } from "node:stream";
import tls from "node:tls";
import type { FailedUnit, HealthCheckResult } from "../errors";
import { shellQuote } from "../shell";
import { mayConfirm, type Action } from "../spec/goal";
import { HealthCheckFrom, SYSTEMD_CHECK_TIMEOUT_SECONDS, healthCheckBudgetSeconds, type ResolvedHealthCheck } from "../spec/health-check";
import { UNIT_JOURNAL_COMMAND, failedUnitsCommand, parseJournal } from "./activation-state";
import { sleep, withDeadline, type Clock } from "./clock";
import type { Host, RunResult } from "./host";

/** The checks one activation runs, decided from the request and the inspected host. */
export interface HealthPlan {
  readonly checks: readonly ResolvedHealthCheck[];
  /** systemd's own check: run, skipped (the host has no systemd: said so in the report), or turned off. */
  readonly systemd: "check" | "skipped" | "off";
  /** Failed units were accepted (acceptFailedUnits): a degraded system passes the systemd check. */
  readonly acceptFailedUnits: boolean;
  /** How long the systemd check waits for a host still starting units before judging it by its failed units. */
  readonly systemdSettleSeconds: number;
}

/** How reports name systemd's own check. */
export const SYSTEMD_CHECK_NAME = "systemd";

/**
 * Which checks an activation runs, or undefined for none: only a switch or test is checked (boot and dry-activate run
 * nothing new), and only a confirmed one (a check can only stop a confirmation). User checks make it confirmed; the
 * systemd check alone runs when it is confirmed anyway (a confirmation timeout).
 */
export function healthPlanOf(
  request: {
    readonly action?: Action; readonly healthChecks?: readonly ResolvedHealthCheck[]; readonly systemdHealthCheck?: boolean;
    readonly confirmTimeoutSeconds?: number; readonly acceptFailedUnits?: boolean;
  },
  host: { readonly systemd: boolean },
): HealthPlan | undefined {
  const checks = request.healthChecks ?? [];
  if (!mayConfirm(request.action ?? "switch")) return undefined;
  if (checks.length === 0 && (request.confirmTimeoutSeconds ?? 0) <= 0) return undefined;
  const systemd = request.systemdHealthCheck === false ? "off" : host.systemd ? "check" : "skipped";
  if (checks.length === 0 && systemd === "off") return undefined;
  // systemd's check alone must not stretch the magic rollback window the user chose: it waits for a starting host
  // within half of it; next to user checks (which get a window of their own) it waits its full time
  const systemdSettleSeconds = checks.length > 0 ? SYSTEMD_CHECK_TIMEOUT_SECONDS : Math.min(SYSTEMD_CHECK_TIMEOUT_SECONDS, (request.confirmTimeoutSeconds ?? 0) / 2);
  return { checks, systemd, acceptFailedUnits: request.acceptFailedUnits === true, systemdSettleSeconds };
}

/**
 * The longest a plan's checks take (0 without a plan): the part of the confirmation window they get. Only a plan
 * with user checks gets any: systemd's check alone runs within the confirmation timeout.
 */
export function healthPlanSeconds(plan: HealthPlan | undefined): number {
  return plan === undefined || plan.checks.length === 0 ? 0 : healthCheckBudgetSeconds(plan.checks, plan.systemd === "check");
}

export type { HealthCheckResult };

/** One attempt's verdict; `wait` (systemd still starting units) is retried until the check's time is up. */
export interface AttemptVerdict {
  readonly ok: boolean;
  readonly saw: string;
  readonly wait?: boolean;
  readonly failedUnits?: readonly FailedUnit[];
}

/** What the output of a command may be at most: a check that prints without end is a failed check. */
export const CHECK_OUTPUT_BYTES = 1024 * 1024;
/** An HTTP check reads the first this many bytes of the body. */
export const HTTP_BODY_BYTES = 64 * 1024;

/** A command check as it runs on the target: as the login user, bounded by coreutils' timeout. */
export function commandCheckCommand(check: ResolvedHealthCheck): string {
  return ["timeout", "--kill-after=2", String(check.timeoutSeconds), ...check.command!].map(shellQuote).join(" ");
}

/** timeout(1)'s exit code when the command ran out of time. */
const TIMED_OUT_EXIT = 124;

export function evaluateCommand(check: ResolvedHealthCheck, result: RunResult | Error): AttemptVerdict {
  if (result instanceof Error) return { ok: false, saw: `could not run: ${result.message}` };
  if (result.exitCode === 0) return { ok: true, saw: "exit 0" };
  if (result.exitCode === TIMED_OUT_EXIT) return { ok: false, saw: `no exit within ${check.timeoutSeconds} s` };
  const said = lastLine(result.stderr) ?? lastLine(result.stdout);
  return { ok: false, saw: `exit ${result.exitCode}${said === undefined ? "" : `: ${said}`}` };
}

function lastLine(text: string): string | undefined {
  const line = text.trimEnd().split("\n").pop()?.trim();
  return line === undefined || line === "" ? undefined : line.slice(0, 300);
}

/** An HTTP answer as far as a check reads it. */
export interface HttpAnswer {
  readonly status: number;
  readonly body: string;
}

export function evaluateHttp(check: ResolvedHealthCheck, answer: HttpAnswer | Error): AttemptVerdict {
  const expected = check.http!;
  if (answer instanceof Error) return { ok: false, saw: `no answer: ${answer.message}` };
  const shown = JSON.stringify(answer.body.length > 200 ? `${answer.body.slice(0, 200)}…` : answer.body);
  if (answer.status !== expected.expectStatus) return { ok: false, saw: `status ${answer.status} (expected ${expected.expectStatus}), body ${shown}` };
  if (expected.bodyContains !== undefined && !answer.body.includes(expected.bodyContains)) {
    return { ok: false, saw: `status ${answer.status}, but the body lacks ${JSON.stringify(expected.bodyContains)}: ${shown}` };
  }
  return { ok: true, saw: `status ${answer.status}` };
}

/**
 * systemd's state and its failed units (our own activation units aside), each with its last journal lines: `state=…`,
 * then `== UNIT` and its lines per failed unit.
 */
export const SYSTEMD_HEALTH_COMMAND = [
  "echo \"state=$(systemctl is-system-running 2>/dev/null)\"",
  `${failedUnitsCommand()} | while read -r u; do ${UNIT_JOURNAL_COMMAND}; done`,
].join("; ");

/** systemd's states a host passes in, and those it may pass through while it still starts units. */
const SETTLING = new Set(["initializing", "starting"]);

export function evaluateSystemd(output: string, acceptFailedUnits: boolean): AttemptVerdict {
  const state = /^state=([a-z-]{0,32})$/m.exec(output)?.[1] || "unknown";
  const names = [...output.matchAll(/^== (\S{1,256})$/gm)].map((m) => m[1]!);
  const failedUnits = parseJournal(names, output);
  const units = failedUnits.length > 0 ? `; failed units: ${names.join(", ")}` : "";
  if (SETTLING.has(state)) return { ok: false, wait: true, saw: `${state}${units}`, ...(failedUnits.length > 0 ? { failedUnits } : {}) };
  if (state === "running" && failedUnits.length === 0) return { ok: true, saw: "running" };
  if (acceptFailedUnits && (state === "running" || state === "degraded")) {
    return { ok: true, saw: `${state}${units} (failed units accepted)`, ...(failedUnits.length > 0 ? { failedUnits } : {}) };
  }
  return { ok: false, saw: `${state}${units}`, ...(failedUnits.length > 0 ? { failedUnits } : {}) };
}

export interface HealthRunContext {
  readonly host: Host;
  readonly clock: Clock;
  /** Each check's result as it is known. */
  readonly onResult?: (result: HealthCheckResult) => void;
  /** An HTTP GET from this machine (from: deployer); the default uses node's http. */
  readonly fetchHttp?: (url: URL, timeoutMs: number, open?: () => Promise<Duplex>) => Promise<HttpAnswer>;
}

/**
 * Runs a plan's checks in order — systemd's first, then the user's — and stops at the first that fails: the host is
 * rolled back then, whatever the others would say.
 */
export async function runHealthChecks(plan: HealthPlan, context: HealthRunContext): Promise<HealthCheckResult[]> {
  const results: HealthCheckResult[] = [];
  const report = (result: HealthCheckResult) => {
    results.push(result);
    context.onResult?.(result);
    return result.outcome !== "failed";
  };
  if (plan.systemd === "skipped") {
    report({ name: SYSTEMD_CHECK_NAME, outcome: "skipped", attempts: 0, saw: "the host does not run systemd" });
  }
  if (plan.systemd === "check" && !report(await runSystemdCheck(plan, context))) return results;
  for (const check of plan.checks) {
    if (!report(await runCheck(check, context))) break;
  }
  return results;
}

async function runSystemdCheck(plan: HealthPlan, context: HealthRunContext): Promise<HealthCheckResult> {
  const { host, clock } = context;
  const settleMs = plan.systemdSettleSeconds * 1000;
  const deadline = clock.now() + settleMs;
  for (let attempts = 1; ; attempts++) {
    const result = await withDeadline(clock, host.run(SYSTEMD_HEALTH_COMMAND, { maxOutputBytes: CHECK_OUTPUT_BYTES }), Math.max(settleMs, 5000))
      .catch((err: Error) => err);
    const verdict: AttemptVerdict = result instanceof Error ? { ok: false, saw: `could not ask systemd: ${result.message}` } : evaluateSystemd(result.stdout, plan.acceptFailedUnits);
    const waiting = verdict.wait === true;
    if (verdict.ok || !waiting || clock.now() >= deadline) {
      const failedUnits = verdict.failedUnits;
      // a host still booting (a new instance deployed right away) may start units for minutes: judged by its failed
      // units alone once the wait is over
      const ok = verdict.ok || (waiting && (failedUnits === undefined || failedUnits.length === 0));
      const saw = waiting ? `still ${verdict.saw} after ${plan.systemdSettleSeconds} s${ok ? ", no failed unit" : ""}` : verdict.saw;
      return { name: SYSTEMD_CHECK_NAME, outcome: ok ? "passed" : "failed", attempts, saw, ...(failedUnits !== undefined ? { failedUnits } : {}) };
    }
    await sleep(clock, 1000);
  }
}

async function runCheck(check: ResolvedHealthCheck, context: HealthRunContext): Promise<HealthCheckResult> {
  const { clock } = context;
  let verdict: AttemptVerdict = { ok: false, saw: "not run" };
  let attempts = 0;
  for (; attempts <= check.retries; ) {
    attempts++;
    verdict = await attempt(check, context);
    if (verdict.ok) break;
    if (attempts <= check.retries) await sleep(clock, check.intervalSeconds * 1000);
  }
  return { name: check.name, outcome: verdict.ok ? "passed" : "failed", attempts, saw: verdict.saw };
}

async function attempt(check: ResolvedHealthCheck, context: HealthRunContext): Promise<AttemptVerdict> {
  const { host, clock } = context;
  const timeoutMs = check.timeoutSeconds * 1000;
  if (check.command !== undefined) {
    // timeout(1) ends the command on the host; the local deadline covers a host that stops answering
    const result = await withDeadline(clock, host.run(commandCheckCommand(check), { maxOutputBytes: CHECK_OUTPUT_BYTES }), timeoutMs + 5000)
      .catch((err: Error) => err);
    return evaluateCommand(check, result);
  }
  const url = new URL(check.http!.url);
  const port = Number(url.port || (url.protocol === "https:" ? 443 : 80));
  const open = check.http!.from === HealthCheckFrom.TARGET ? () => host.forwardTcp(url.hostname.replace(/^\[|\]$/g, ""), port) : undefined;
  const fetch = context.fetchHttp ?? httpGet;
  const answer = await withDeadline(clock, fetch(url, timeoutMs, open), timeoutMs + 1000).catch((err: Error) => err);
  return evaluateHttp(check, answer);
}

/** A GET of `url` (through `open`'s stream when given), reading at most HTTP_BODY_BYTES of the body. */
export async function httpGet(url: URL, timeoutMs: number, open?: () => Promise<Duplex>): Promise<HttpAnswer> {
  const raw = open === undefined ? undefined : await open();
  const stream = raw !== undefined && url.protocol === "https:" ? tls.connect({ socket: raw as never, servername: url.hostname }) : raw;
  const client = url.protocol === "https:" ? https : http;
  return new Promise((resolve, reject) => {
    const request = client.get(url, {
      headers: { connection: "close", "user-agent": "cdktf-nixos health check" },
      ...(stream !== undefined ? { createConnection: () => stream as never } : {}),
    }, (response) => {
      const chunks: Buffer[] = [];
      let size = 0;
      const finish = () => {
        resolve({ status: response.statusCode ?? 0, body: Buffer.concat(chunks).subarray(0, HTTP_BODY_BYTES).toString("utf8") });
        request.destroy();
      };
      response.on("data", (chunk: Buffer) => {
        chunks.push(chunk);
        size += chunk.length;
        if (size >= HTTP_BODY_BYTES) finish();
      });
      response.on("end", finish);
      response.on("error", reject);
    });
    // not request.setTimeout: a stream the host opened (an SSH channel) is no socket to set a timeout on
    const timer = setTimeout(() => request.destroy(new Error(`no answer within ${timeoutMs / 1000} s`)), timeoutMs);
    request.on("error", reject);
    request.on("close", () => {
      clearTimeout(timer);
      stream?.destroy();
    });
  });
}
