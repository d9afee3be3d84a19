// Operating a fleet after a rollout: `status` (drift), `rollback`, `exec`. Each parses its flags and calls fleet/.
import { Command } from "commander";
import Table from "cli-table3";
import { resolve } from "node:path";
import { preparePush, type PreparedPush } from "../../fleet/push";
import { fleetStatus, type HostStatusReport, type StatusReport } from "../../fleet/status";
import { execOnHosts, type ExecOutcome, type ExecReport } from "../../fleet/exec";
import { rollbackFleet } from "../../fleet/rollback-hosts";
import { settingsGiven } from "../../spec/command-line";
import { secondsFlag } from "../../spec/flags";
import { createFleetReporter } from "../fleet-progress";
import { collect, interruptible } from "../interruptible";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";
import { addProjectOptions, splitAtDashes, synthModeOf, type ProjectFlags } from "./project-options";
import { givenOn } from "./deploy";
import { PushFailed, type PushDependencyFactory } from "./push";

interface FleetFlags extends ProjectFlags {
  on: string[];
  parallel: string;
  json?: boolean;
  connectTimeout?: string;
}

/** A fleet command's common options: the selection, parallelism, --connect-timeout, --json and the project's. */
function fleetOptions(command: Command, parallel: string): Command {
  return addProjectOptions(command
    .option("--on <selector>", "only these hosts: a name, a glob ('web-*') or a tag (@role=web, @web); repeatable", collect, [])
    .option("--parallel <n>", "at most this many hosts at once", parallel)
    .option("--connect-timeout <seconds>", "give up on an unreachable host after this long (default: each deployment's connectTimeoutSeconds)")
    .option("--json", "print one JSON object with every host's result as the last line of stdout"));
}

function parallelOf(flags: FleetFlags): number {
  if (!/^\d+$/.test(flags.parallel) || Number(flags.parallel) < 1) throw new UsageError(`--parallel '${flags.parallel}' is not a whole number of at least 1`);
  return Number(flags.parallel);
}

/** The stack, its selected hosts and their requests, as push plans them; no key is read (nothing is uploaded). */
async function prepareFleet(stack: string | undefined, flags: FleetFlags, command: Command, output: Output, dependencies: PushDependencyFactory): Promise<PreparedPush> {
  const overrides = settingsGiven(flags as unknown as Record<string, unknown>, givenOn(command), ["connectTimeoutSeconds"]);
  return preparePush(
    { projectDir: resolve(flags.project), stack, synth: synthModeOf(flags), on: flags.on, settings: { parallel: parallelOf(flags), dryRun: true, failFast: false, overrides } },
    { onSynth: (why) => output.stderr.write(`${why}\n`), onNote: (note) => output.stderr.write(`${note}\n`), checkLogin: dependencies({}).checkLogin },
  );
}

/** Ends a fleet command with its exit code once its report was printed. */
class FleetCommandFailed extends PushFailed {}

export function registerFleetCommands(program: Command, output: Output, dependencies: PushDependencyFactory): void {
  fleetOptions(program.command("status")
    .description("read-only: per host, the system the stack declares, what it runs and boots, its generation, failed units and last " +
      "activation; exit 0 only when every selected host is up to date (13: drifted, pending or not created; 3: unreachable)")
    .argument("[stack]", "the stack (may be left out when one stack has NixOS deployments)"), "20")
    .action(async (stack: string | undefined, flags: FleetFlags, command: Command) => {
      const prepared = await prepareFleet(stack, flags, command, output, dependencies);
      const deps = dependencies({ redact: prepared.redact });
      const report = await fleetStatus(prepared.plan, deps, { parallel: parallelOf(flags) });
      if (flags.json === true) output.stdout.write(`${JSON.stringify(statusJson(prepared.stack, report))}\n`);
      else output.stdout.write(`${statusTable(report)}\n${statusCounts(report)}\n`);
      if (report.exitCode !== 0) throw new FleetCommandFailed(report.exitCode);
    });

  fleetOptions(program.command("rollback")
    .description("put the selected hosts back on their previous system generation (or --to-generation N), through the same locked " +
      "activation as a deploy, with its health checks and confirmation (nixos-rebuild switch --rollback, fleet-wide)")
    .argument("[stack]", "the stack (may be left out when one stack has NixOS deployments)")
    .option("--to-generation <n>", "this generation of the system profile instead of the one before the current"), "10")
    .action(async (stack: string | undefined, flags: FleetFlags & { toGeneration?: string }, command: Command) => {
      const to = flags.toGeneration === undefined ? undefined : Number(flags.toGeneration);
      if (flags.toGeneration !== undefined && !(/^\d{1,9}$/.test(flags.toGeneration) && to! >= 1)) {
        throw new UsageError(`--to-generation '${flags.toGeneration}' is not a generation number (a whole number of at least 1)`);
      }
      const prepared = await prepareFleet(stack, flags, command, output, dependencies);
      const reporter = createFleetReporter(output, prepared.plan.map((h) => h.name), { json: flags.json === true });
      reporter.note(`stack ${prepared.stack}: ${prepared.synth}`);
      const deps = dependencies({ redact: prepared.redact });
      const started = Date.now();
      const report = await interruptible(reporter.interrupted, () => rollbackFleet(prepared.plan, deps, { parallel: parallelOf(flags), to }, reporter.onEvent));
      reporter.done(report, { stack: prepared.stack, synth: prepared.synth, totalMs: Date.now() - started });
      if (report.exitCode !== 0) throw new FleetCommandFailed(report.exitCode);
    });

  fleetOptions(program.command("exec")
    .description("run a command on the selected hosts in parallel, as each deployment's login user; output per host, then a summary " +
      "of exit codes (exit 14 when it failed on a host, 3 when a host could not be reached)")
    .usage("[options] [stack] -- <command...>")
    .argument("[stack-and-command...]", "[stack] -- command: the stack may be left out when one stack has NixOS deployments")
    .option("--group", "print each host's output as one block (default: every line prefixed with the host's name)")
    .option("--timeout <seconds>", "stop waiting for a host's command after this long"), "10")
    .action(async (operands: string[], flags: FleetFlags & { group?: boolean; timeout?: string }, command: Command) => {
      const { names, after: argv } = splitAtDashes(command, operands);
      if (argv.length === 0) throw new UsageError("exec needs the command after --: cdktf-nixos exec [stack] -- systemctl is-active nginx");
      if (names.length > 1) throw new UsageError(`exec takes [stack] -- command, got ${names.map((n) => `'${n}'`).join(" ")} before -- (the command goes after --)`);
      const timeoutSeconds = flags.timeout === undefined ? undefined : secondsFlag("--timeout", flags.timeout, { above0: true });
      const prepared = await prepareFleet(names[0], flags, command, output, dependencies);
      const deps = dependencies({ redact: prepared.redact });
      const report = await execOnHosts(prepared.plan, argv, deps, {
        parallel: parallelOf(flags), timeoutSeconds,
        onHost: (outcome) => {
          if (flags.json !== true) output.stdout.write(hostOutput(outcome, flags.group === true));
        },
      });
      if (flags.json === true) output.stdout.write(`${JSON.stringify(execJson(prepared.stack, argv, report))}\n`);
      else output.stdout.write(`${execSummary(report)}\n`);
      if (report.exitCode !== 0) throw new FleetCommandFailed(report.exitCode);
    });
}

function statusTable(report: StatusReport): string {
  const table = new Table({ head: ["host", "state", "generation", "running", "declared", "failed units", "last activation"], style: { head: [], border: [] } });
  // the hash's start stays: two systems of one host differ there, not in their names
  const short = (path: string | undefined) => path?.replace(/^\/nix\/store\/([0-9a-z]{8})[0-9a-z]{24}-/, "$1…-") ?? "";
  for (const host of report.hosts) {
    table.push([
      host.name,
      host.state.replace(/-/g, " ") + (host.state === "pending" ? " (boots the declared system)" : "") + (host.reason !== undefined ? `:\n${host.reason.slice(0, 120)}` : ""),
      host.generation === undefined ? "" : String(host.generation),
      host.runningSystem === host.declaredSystem ? "= declared" : short(host.runningSystem),
      short(host.declaredSystem),
      host.failedUnits.join("\n"),
      host.lastActivation === undefined ? "" : `${host.lastActivation.at} ${host.lastActivation.action}: ${host.lastActivation.outcome}\nby ${host.lastActivation.by}`,
    ]);
  }
  return table.toString();
}

function statusCounts(report: StatusReport): string {
  const counts = new Map<string, number>();
  for (const host of report.hosts) counts.set(host.state, (counts.get(host.state) ?? 0) + 1);
  return [...counts].map(([state, n]) => `${n} ${state.replace(/-/g, " ")}`).join(", ");
}

/** `status --json`: a stable shape, documented in the README. */
export function statusJson(stack: string, report: StatusReport): Record<string, unknown> {
  return {
    ok: report.exitCode === 0,
    stack,
    exitCode: report.exitCode,
    hosts: report.hosts.map((host: HostStatusReport) => ({
      name: host.name,
      state: host.state,
      declaredSystem: host.declaredSystem ?? null,
      runningSystem: host.runningSystem ?? null,
      bootSystem: host.bootSystem ?? null,
      generation: host.generation ?? null,
      failedUnits: host.failedUnits,
      lastActivation: host.lastActivation ?? null,
      ...(host.reason !== undefined ? { reason: host.reason } : {}),
    })),
  };
}

function hostOutput(outcome: ExecOutcome, group: boolean): string {
  const text = `${outcome.stdout}${outcome.stderr}`;
  const status = outcome.exitCode !== undefined ? `exit ${outcome.exitCode}` : outcome.error ?? "did not run";
  if (group) return `== ${outcome.name} (${status})\n${text}${text === "" || text.endsWith("\n") ? "" : "\n"}`;
  const lines = text === "" ? [] : text.replace(/\n$/, "").split("\n");
  return [...lines.map((line) => `[${outcome.name}] ${line}\n`), ...(outcome.exitCode === 0 ? [] : [`[${outcome.name}] ${status}\n`])].join("");
}

function execSummary(report: ExecReport): string {
  const ok = report.hosts.filter((h) => h.exitCode === 0).map((h) => h.name);
  const failed = report.hosts.filter((h) => h.exitCode !== undefined && h.exitCode !== 0);
  const notRun = report.hosts.filter((h) => h.exitCode === undefined);
  return [
    `exit 0 on ${ok.length} of ${report.hosts.length} host${report.hosts.length === 1 ? "" : "s"}${ok.length > 0 ? ` (${ok.join(", ")})` : ""}`,
    ...failed.map((h) => `${h.name}: exit ${h.exitCode}`),
    ...notRun.map((h) => `${h.name}: ${h.error ?? "did not run"}`),
  ].join("\n");
}

function execJson(stack: string, argv: readonly string[], report: ExecReport): Record<string, unknown> {
  return {
    ok: report.exitCode === 0,
    stack,
    command: argv,
    exitCode: report.exitCode,
    hosts: report.hosts.map((h) => ({ name: h.name, exitCode: h.exitCode ?? null, stdout: h.stdout, stderr: h.stderr, durationMs: h.durationMs, ...(h.error !== undefined ? { error: h.error } : {}) })),
  };
}
