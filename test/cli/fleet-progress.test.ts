import { describe, expect, it } from "vitest";
import { createFleetReporter, markdownSummary, summaryTable } from "../../src/cli/fleet-progress";
import { ConnectError, EXIT_CODES, EvaluateError } from "../../src/errors";
import type { PushReport } from "../../src/fleet/push";
import { capturedOutput } from "../harness/cli";

const NEW = "/nix/store/0000000000000000000000000000000b-nixos-system-web-25.05";
const deployed = {
  host: "root@198.51.100.1:22", action: "switch" as const, system: "x86_64-linux", upToDate: false, pathsCopied: 12,
  pathsInClosure: 200, bytesSent: 3 * 1048576, wireBytes: 3 * 1048576 + 4000, previousSystem: undefined, newSystem: NEW, previousGeneration: 4, newGeneration: 5, keys: [], durationMs: 2100,
};
const report: PushReport = {
  dryRun: false,
  durationMs: 2500,
  buildMs: 900,
  exitCode: EXIT_CODES.connect,
  hosts: [
    { name: "web", status: "deployed", durationMs: 2100, exitCode: 0, result: deployed },
    { name: "app", status: "up-to-date", durationMs: 300, exitCode: 0, result: { ...deployed, upToDate: true, pathsCopied: 0, bytesSent: 0, wireBytes: 0, previousGeneration: 7, newGeneration: 7 } },
    { name: "db", status: "failed", durationMs: 2000, exitCode: EXIT_CODES.connect, error: new ConnectError("cannot reach root@198.51.100.3:22: connect ECONNREFUSED") },
    { name: "cache", status: "not-created", durationMs: 0, exitCode: EXIT_CODES.connect, reason: "not created — run cdktf deploy" },
  ],
};

describe("the push reporter on a pipe", () => {
  it("never shows a host kept with failed units (--accept-failed-units) as plainly deployed: line, table and --json name them", () => {
    const failedUnits = [{ name: "web.service", journal: ["web: /etc/web.conf: no such file"] }];
    const kept = { name: "web", status: "deployed" as const, durationMs: 2100, exitCode: 0, result: { ...deployed, failedUnits } };
    const io = capturedOutput();
    const reporter = createFleetReporter(io.output, ["web"], { json: false });
    reporter.onEvent({ type: "host-done", outcome: kept });
    reporter.done({ ...report, exitCode: 0, hosts: [kept] }, { stack: "fleet", synth: "using cdktf.out" });
    expect(io.stderr()).toContain("[web] deployed: generation 4 → 5, 12 paths, 3.0 MiB, 2.1 s; failed units kept: web.service\n");
    expect(io.stdout()).toContain("│ web  │ deployed, failed units kept: web.service │");
    const json = capturedOutput();
    const jsonReporter = createFleetReporter(json.output, ["web"], { json: true });
    jsonReporter.done({ ...report, exitCode: 0, hosts: [kept] }, { stack: "fleet", synth: "using cdktf.out" });
    expect(JSON.parse(json.stdout()).hosts[0]).toMatchObject({ name: "web", failedUnits });
  });


  it("prints one prefixed line per host per phase, then the summary table and the counts", () => {
    const io = capturedOutput();
    const reporter = createFleetReporter(io.output, ["web", "app", "db", "cache"], { json: false });
    reporter.onEvent({ type: "fleet", phase: "evaluate-and-build", hosts: ["web", "app", "db"] });
    reporter.onEvent({ type: "host", host: "web", event: { type: "phase", phase: "connect", detail: "198.51.100.1" } });
    reporter.onEvent({ type: "host", host: "web", event: { type: "phase", phase: "copy" } });
    reporter.onEvent({ type: "host", host: "web", event: { type: "copied", report: { pathsInClosure: 200, pathsAlreadyValid: 188, pathsCopied: 12, bytesSent: 3 * 1048576, wireBytes: 3 * 1048576 + 4000, durationMs: 900 } } });
    reporter.onEvent({ type: "host-done", outcome: report.hosts[0] });
    reporter.onEvent({ type: "host-done", outcome: report.hosts[3] });
    reporter.done(report, { stack: "fleet", synth: "using cdktf.out" });
    expect(io.stderr().split("\n").slice(0, 6)).toEqual([
      "evaluating and building 3 systems: web, app, db",
      "[web] connect: 198.51.100.1",
      "[web] copy",
      "[web] copied 12 of 200 paths (3.0 MiB) in 0.9 s",
      "[web] deployed: generation 4 → 5, 12 paths, 3.0 MiB, 2.1 s",
      "[cache] not created: not created — run cdktf deploy",
    ]);
    expect(io.stderr()).toContain("db: connect failed: cannot reach root@198.51.100.3:22: connect ECONNREFUSED");
    expect(io.stdout()).toBe([
      "┌───────┬─────────────────────────────────────────────────────────────┬────────────┬───────────────────┬───────┐",
      "│ host  │ result                                                      │ generation │ copied            │ time  │",
      "├───────┼─────────────────────────────────────────────────────────────┼────────────┼───────────────────┼───────┤",
      "│ web   │ deployed                                                    │ 4 → 5      │ 12 paths, 3.0 MiB │ 2.1 s │",
      "├───────┼─────────────────────────────────────────────────────────────┼────────────┼───────────────────┼───────┤",
      "│ app   │ up to date                                                  │ 7          │                   │ 0.3 s │",
      "├───────┼─────────────────────────────────────────────────────────────┼────────────┼───────────────────┼───────┤",
      "│ db    │ failed: connect: cannot reach root@198.51.100.3:22: connect │            │                   │ 2.0 s │",
      "│       │ ECONNREFUSED                                                │            │                   │       │",
      "├───────┼─────────────────────────────────────────────────────────────┼────────────┼───────────────────┼───────┤",
      "│ cache │ not created: not created — run cdktf deploy                 │            │                   │       │",
      "└───────┴─────────────────────────────────────────────────────────────┴────────────┴───────────────────┴───────┘",
      "1 deployed, 1 up to date, 1 failed, 1 not created in 2.5 s (evaluate and build 0.9 s, hosts 1.6 s)",
      "",
    ].join("\n"));
  });

  it("on a terminal too narrow for the table, one line per host", () => {
    expect(summaryTable(report, 40)).toBe([
      "web: deployed, generation 4 → 5, copied 12 paths, 3.0 MiB, time 2.1 s",
      "app: up to date, generation 7, time 0.3 s",
      "db: failed: connect: cannot reach root@198.51.100.3:22: connect ECONNREFUSED, time 2.0 s",
      "cache: not created: not created — run cdktf deploy",
    ].join("\n"));
    expect(summaryTable(report, 200)).toBe(summaryTable(report));
  });

  it("gives the whole time with its phases, and Nix's message once for hosts that fail for one cause", () => {
    const io = capturedOutput();
    const stderr = "error: syntax error, unexpected '=', expecting ';'\n       at /p/nixos/common.nix:3:9\n";
    const failing = (name: string) => ({ name, status: "failed" as const, durationMs: 0, exitCode: EXIT_CODES.evaluate,
      error: new EvaluateError(`evaluating ${name} failed: syntax error, unexpected '=', expecting ';'`, { stderr }) });
    createFleetReporter(io.output, ["web", "db"], { json: false }).done({ ...report, hosts: [failing("web"), failing("db")], exitCode: EXIT_CODES.evaluate },
      { stack: "fleet", synth: "synthesized", totalMs: 9800, synthMs: 5100 });
    expect(io.stdout()).toContain("2 failed in 9.8 s (synth 5.1 s, evaluate and build 0.9 s, hosts 1.6 s)\n");
    expect(io.stderr()).toBe([
      "web: evaluate failed: evaluating web failed: syntax error, unexpected '=', expecting ';'",
      "  stderr:",
      "    error: syntax error, unexpected '=', expecting ';'",
      "           at /p/nixos/common.nix:3:9",
      "db: evaluate failed: evaluating db failed: syntax error, unexpected '=', expecting ';'",
      "  stderr: the same as web's above",
      "",
    ].join("\n"));
  });

  it("with --json prints one object with every host", () => {
    const io = capturedOutput();
    createFleetReporter(io.output, ["web", "app", "db", "cache"], { json: true }).done(report, { stack: "fleet", synth: "using cdktf.out" });
    const json = JSON.parse(io.stdout()) as { ok: boolean; exitCode: number; hosts: Array<Record<string, unknown>> };
    expect(json).toMatchObject({ ok: false, stack: "fleet", exitCode: EXIT_CODES.connect, dryRun: false });
    expect(json.hosts.map((h) => h.status)).toEqual(["deployed", "up-to-date", "failed", "not-created"]);
    expect(json.hosts[0]).toMatchObject({ name: "web", previousGeneration: 4, newGeneration: 5, pathsCopied: 12, bytesSent: 3 * 1048576 });
    expect(json.hosts[2]).toMatchObject({ error: { phase: "connect", exitCode: EXIT_CODES.connect } });
    expect(json.hosts[3]).toMatchObject({ reason: "not created — run cdktf deploy" });
  });
});

describe("markdownSummary (--summary-file)", () => {
  it("is the summary table in Markdown: cells with line breaks as <br>, pipes escaped, then the counts", () => {
    const dryRun: PushReport = {
      dryRun: true,
      durationMs: 1200,
      buildMs: 400,
      exitCode: 0,
      hosts: [
        { name: "web", status: "would-deploy", durationMs: 900, exitCode: 0, preview: {
          host: "root@198.51.100.1:22", action: "switch", newSystem: NEW, upToDate: false, previousGeneration: 4, pathsInClosure: 200,
          pathsToSend: 3, bytesToSend: 2 * 1048576, changes: [{ name: "hello", before: ["2.12"], after: ["2.12.1"] }, { name: "a|b", before: [], after: ["1"] }],
        } },
        { name: "app", status: "up-to-date", durationMs: 300, exitCode: 0, preview: {
          host: "root@198.51.100.2:22", action: "switch", newSystem: NEW, upToDate: true, previousGeneration: 7, pathsInClosure: 200,
          pathsToSend: 0, bytesToSend: 0, changes: [],
        } },
      ],
    };
    expect(markdownSummary(dryRun, { stack: "fleet" })).toBe([
      "### cdktf-nixos push --dry-run: stack fleet",
      "",
      "| host | result | generation | to send | package changes |",
      "| --- | --- | --- | --- | --- |",
      "| web | would deploy | 4 | 3 paths, 2.0 MiB | hello: 2.12 → 2.12.1<br>a\\|b: ∅ → 1 |",
      "| app | up to date | 7 |  | none |",
      "",
      "1 up to date, 1 would deploy in 1.2 s (evaluate and build 0.4 s, hosts 0.8 s)",
      "",
    ].join("\n"));
    expect(markdownSummary(report, { stack: "fleet" }).split("\n").slice(0, 5)).toEqual([
      "### cdktf-nixos push: stack fleet",
      "",
      "| host | result | generation | copied | time |",
      "| --- | --- | --- | --- | --- |",
      "| web | deployed | 4 → 5 | 12 paths, 3.0 MiB | 2.1 s |",
    ]);
  });
});
