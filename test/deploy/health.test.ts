import { Duplex } from "node:stream";
import { describe, expect, it } from "vitest";
import { deploy, type DeployRequest } from "../../src/deploy/deploy";
import {
  SYSTEMD_HEALTH_COMMAND, commandCheckCommand, evaluateCommand, evaluateHttp, evaluateSystemd, healthPlanOf, healthPlanSeconds, httpGet,
} from "../../src/deploy/health";
import { DeployError, EXIT_CODES, exitCodeOf, HealthCheckError } from "../../src/errors";
import { HealthCheckFrom, parseHealthCheckArgument, resolveHealthCheck, type ResolvedHealthCheck } from "../../src/spec/health-check";
import { CONFIRM, NEW, OLD, READ_STATE, activationState, fakeDependencies, healthyHost, inspection, states } from "./fake-host";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import { VirtualClock } from "./virtual-clock";

const command = (argv: string[], more: Partial<ResolvedHealthCheck> = {}) => resolveHealthCheck({ command: argv, ...more }, "test");

describe("health check specs", () => {
  it("fills in the defaults and names a check by what it runs", () => {
    expect(resolveHealthCheck({ command: ["systemctl", "is-active", "nginx"] }, "x")).toEqual({
      name: "systemctl is-active nginx", command: ["systemctl", "is-active", "nginx"], timeoutSeconds: 10, retries: 2, intervalSeconds: 2,
    });
    expect(resolveHealthCheck({ http: { url: "http://localhost/health" }, retries: 0 }, "x")).toEqual({
      name: "GET http://localhost/health", http: { url: "http://localhost/health", expectStatus: 200, from: "target" }, timeoutSeconds: 10, retries: 0, intervalSeconds: 2,
    });
  });

  it("reads --health-check as a shell would split it, or as JSON", () => {
    expect(parseHealthCheckArgument("sh -c 'curl -s localhost | grep ok'").command).toEqual(["sh", "-c", "curl -s localhost | grep ok"]);
    expect(parseHealthCheckArgument(`{"http":{"url":"https://example.com/","from":"deployer"}}`).http?.from).toBe(HealthCheckFrom.DEPLOYER);
    // a resolved check (what the manifest holds) reads back as itself
    const check = command(["true"], { retries: 5 });
    expect(parseHealthCheckArgument(JSON.stringify(check))).toEqual(check);
  });

  it.each([
    ["curl localhost | grep ok", "--health-check 'curl localhost | grep ok': a check is one command (argv, no shell): for pipes or redirections run a shell, e.g. --health-check \"sh -c 'curl -s localhost | grep ok'\""],
    ["", "--health-check '': the command is empty, e.g. --health-check 'systemctl is-active nginx'"],
    ["{nope", "--health-check '{nope' is not JSON (a check given as an object, e.g. '{\"http\":{\"url\":\"http://localhost/health\"}}')"],
    [`{"command":["true"],"http":{"url":"http://x/"}}`, `--health-check '{"command":["true"],"http":{"url":"http://x/"}}': a health check has exactly one of 'command' and 'http'`],
    [`{"command":["true"],"timeout":3}`, `--health-check '{"command":["true"],"timeout":3}': unknown field 'timeout' (a health check has name, command, http, timeoutSeconds, retries, intervalSeconds)`],
    [`{"http":{"url":"ftp://x/"}}`, `--health-check '{"http":{"url":"ftp://x/"}}': 'http.url' "ftp://x/" is not an http:// or https:// URL`],
    [`{"http":{"url":"http://u:p@x/"}}`, `--health-check '{"http":{"url":"http://u:p@x/"}}': 'http.url' must not hold credentials (they would end up in the manifest and in reports)`],
    [`{"http":{"url":"http://x/","expectStatus":99}}`, `--health-check '{"http":{"url":"http://x/","expectStatus":99}}': 'http.expectStatus' must be an HTTP status from 100 to 599, got 99`],
    [`{"command":["true"],"retries":-1}`, `--health-check '{"command":["true"],"retries":-1}': 'retries' must be a whole number from 0 to 100, got -1`],
    [`{"command":["true"],"timeoutSeconds":0}`, `--health-check '{"command":["true"],"timeoutSeconds":0}': 'timeoutSeconds' must be seconds above 0, at most 3600, got 0`],
    [`{"command":[]}`, `--health-check '{"command":[]}': 'command' must be a non-empty list of words (argv, no shell), e.g. ["systemctl", "is-active", "nginx"]; got []`],
  ])("refuses --health-check '%s' with one message", (text, message) => {
    expect(() => parseHealthCheckArgument(text)).toThrow(message);
  });
});

describe("health check evaluation", () => {
  const check = command(["systemctl", "is-active", "nginx"], { timeoutSeconds: 5 });
  it("runs a command as the login user, bounded by timeout(1), each word quoted", () => {
    expect(commandCheckCommand(command(["sh", "-c", "echo it's ok"], { timeoutSeconds: 2.5 }))).toBe("timeout --kill-after=2 2.5 sh -c 'echo it'\\''s ok'");
  });

  it.each([
    [{ exitCode: 0, stdout: "active\n", stderr: "" }, { ok: true, saw: "exit 0" }],
    [{ exitCode: 3, stdout: "inactive\n", stderr: "" }, { ok: false, saw: "exit 3: inactive" }],
    [{ exitCode: 124, stdout: "", stderr: "" }, { ok: false, saw: "no exit within 5 s" }],
    [new Error("connection lost"), { ok: false, saw: "could not run: connection lost" }],
  ])("command result %j", (result, verdict) => expect(evaluateCommand(check, result)).toEqual(verdict));

  const http = resolveHealthCheck({ http: { url: "http://localhost/health", bodyContains: "ok" } }, "x");
  it.each([
    [{ status: 200, body: "all ok" }, { ok: true, saw: "status 200" }],
    [{ status: 503, body: "down" }, { ok: false, saw: 'status 503 (expected 200), body "down"' }],
    [{ status: 200, body: "starting" }, { ok: false, saw: 'status 200, but the body lacks "ok": "starting"' }],
    [new Error("connect ECONNREFUSED 127.0.0.1:80"), { ok: false, saw: "no answer: connect ECONNREFUSED 127.0.0.1:80" }],
  ])("HTTP answer %j", (answer, verdict) => expect(evaluateHttp(http, answer)).toEqual(verdict));

  it.each([
    ["state=running\n", false, { ok: true, saw: "running" }],
    ["state=starting\n", false, { ok: false, wait: true, saw: "starting" }],
    ["state=starting\n== db.service\n", false, { ok: false, wait: true, saw: "starting; failed units: db.service", failedUnits: [{ name: "db.service", journal: [] }] }],
    ["state=degraded\n== web.service\nweb: cannot bind\n", false, {
      ok: false, saw: "degraded; failed units: web.service", failedUnits: [{ name: "web.service", journal: ["web: cannot bind"] }],
    }],
    ["state=degraded\n== web.service\n", true, {
      ok: true, saw: "degraded; failed units: web.service (failed units accepted)", failedUnits: [{ name: "web.service", journal: [] }],
    }],
    ["state=maintenance\n", true, { ok: false, saw: "maintenance" }],
    ["", false, { ok: false, saw: "unknown" }],
  ])("systemd says %j (failed units accepted: %s)", (output, accepted, verdict) => expect(evaluateSystemd(output, accepted)).toEqual(verdict));

  it("checks only a confirmed switch or test; user checks make it confirmed; systemd's own runs when it is", () => {
    const checks = [command(["true"])];
    expect(healthPlanOf({ action: "boot", healthChecks: checks }, { systemd: true })).toBeUndefined();
    expect(healthPlanOf({ action: "switch" }, { systemd: true })).toBeUndefined();
    // systemd's check alone stays within the window the user chose: it waits for a starting host half of it
    const alone = healthPlanOf({ action: "switch", confirmTimeoutSeconds: 30 }, { systemd: true });
    expect(alone).toEqual({ checks: [], systemd: "check", acceptFailedUnits: false, systemdSettleSeconds: 15 });
    expect(healthPlanSeconds(alone)).toBe(0);
    expect(healthPlanOf({ action: "test", healthChecks: checks }, { systemd: false })).toEqual({ checks, systemd: "skipped", acceptFailedUnits: false, systemdSettleSeconds: 30 });
    expect(healthPlanOf({ action: "switch", confirmTimeoutSeconds: 30, systemdHealthCheck: false }, { systemd: true })).toBeUndefined();
    // 3 attempts of 10 s with 2 s between them, and 30 s for systemd to settle
    expect(healthPlanSeconds(healthPlanOf({ action: "switch", healthChecks: checks }, { systemd: true }))).toBe(3 * 10 + 2 * 2 + 30);
  });

  it("reads an HTTP answer through a stream the host opened, and at most 64 KiB of its body", async () => {
    const reply = (body: string) => () => {
      const stream = new Duplex({
        read() {},
        write(_chunk, _encoding, done) {
          this.push(`HTTP/1.1 200 OK\r\ncontent-length: ${body.length}\r\nconnection: close\r\n\r\n${body}`);
          this.push(null);
          done();
        },
      });
      return Promise.resolve(stream);
    };
    expect(await httpGet(new URL("http://localhost/health"), 5000, reply("ok"))).toEqual({ status: 200, body: "ok" });
    expect((await httpGet(new URL("http://localhost/health"), 5000, reply("x".repeat(200_000)))).body).toHaveLength(64 * 1024);
  });
});

describe("health checks in a deployment (over the Host seam)", () => {
  const request: DeployRequest = {
    source: { kind: "toplevel", path: NEW },
    target: { host: "198.51.100.7", user: "root", knownHostsFile: "/dev/null" },
    healthChecks: [command(["systemctl", "is-active", "web"], { retries: 2, intervalSeconds: 3 })],
  };

  it("confirms a new system once its checks pass, and reports them", async () => {
    const host = healthyHost([[READ_STATE, states({ stdout: activationState({ status: "0" }) }, { stdout: activationState({ status: "0", decided: true, done: true }) })]]);
    const result = await deploy(request, fakeDependencies(host).deps);
    expect(result.healthChecks).toEqual([
      { name: "systemd", outcome: "skipped", attempts: 0, saw: "the host does not run systemd" },
      { name: "systemctl is-active web", outcome: "passed", attempts: 1, saw: "exit 0" },
    ]);
    const check = host.log.indexOf(commandCheckCommand(request.healthChecks![0]!));
    expect(check).toBeGreaterThan(host.log.indexOf("reconnect"));
    expect(host.log.findIndex((c) => CONFIRM.test(c))).toBeGreaterThan(check);
  });

  it("exit 12: a check that keeps failing rolls the host back at once, and the error names the check and what it saw", async () => {
    const clock = new VirtualClock();
    const host = healthyHost([
      [READ_STATE, states({ stdout: activationState({ status: "0" }) }, { stdout: activationState({ status: "0", decided: true, rolledBack: "0", done: true }) })],
      [/^timeout /, { exitCode: 3, stdout: "failed\n" }],
      [INSPECT_COMMAND, { stdout: inspection() }],
    ]);
    const started = clock.now();
    const err = await deploy(request, fakeDependencies(host, { clock }).deps).then(() => undefined, (e: unknown) => e) as DeployError;
    expect(err).toBeInstanceOf(HealthCheckError);
    expect([err.phase, exitCodeOf(err), EXIT_CODES.health]).toEqual(["health", 12, 12]);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22: health check 'systemctl is-active web' failed (exit 3: failed); ` +
      `root@198.51.100.7:22 was rolled back to ${OLD}`);
    expect(err.healthChecks?.at(-1)).toEqual({ name: "systemctl is-active web", outcome: "failed", attempts: 3, saw: "exit 3: failed" });
    // three attempts, 3 s apart (virtual time), then the host is told: never confirmed
    expect(host.log.filter((c) => c.startsWith("timeout "))).toHaveLength(3);
    expect(clock.now() - started).toBeGreaterThanOrEqual(6000);
    expect(host.log).toContain("touch /run/cdktf-nixos/" + host.log.find((c) => c.startsWith("touch "))!.split("/").pop());
    expect(host.log.some((c) => CONFIRM.test(c))).toBe(false);
    expect(err.describe()).toContain("    ✗ systemctl is-active web: exit 3: failed (3 attempts)");
  });

  it("waits for a host still starting units (half the confirmation timeout), then judges it by its failed units alone", async () => {
    const clock = new VirtualClock();
    const host = healthyHost([
      [INSPECT_COMMAND, { stdout: inspection({ systemd: true }) }],
      [READ_STATE, states({ stdout: activationState({ status: "0" }) }, { stdout: activationState({ status: "0", decided: true, done: true }) })],
      [SYSTEMD_HEALTH_COMMAND, { stdout: "state=starting\n" }],
    ]);
    const started = clock.now();
    const result = await deploy({ ...request, healthChecks: [], confirmTimeoutSeconds: 10 }, fakeDependencies(host, { clock }).deps);
    expect(result.healthChecks).toEqual([{ name: "systemd", outcome: "passed", attempts: 6, saw: "still starting after 5 s, no failed unit" }]);
    expect(clock.now() - started).toBeGreaterThanOrEqual(5_000);
  });

  it("runs systemd's check first on a systemd host, and a degraded system names its failed units", async () => {
    const host = healthyHost([
      [INSPECT_COMMAND, { stdout: inspection({ systemd: true }) }],
      [READ_STATE, states({ stdout: activationState({ status: "0" }) }, { stdout: activationState({ status: "0", decided: true, rolledBack: "0", done: true }) })],
      [SYSTEMD_HEALTH_COMMAND, { stdout: "state=degraded\n== web.service\nweb: address in use\n" }],
    ]);
    const err = await deploy({ ...request, healthChecks: [], confirmTimeoutSeconds: 10 }, fakeDependencies(host).deps).then(() => undefined, (e: unknown) => e) as DeployError;
    expect(exitCodeOf(err)).toBe(12);
    expect(err.message).toContain("health check 'systemd' failed (degraded; failed units: web.service)");
    expect(err.failedUnits).toEqual([{ name: "web.service", journal: ["web: address in use"] }]);
  });
});
