import { Command, Option } from "commander";
import { endpointProblem } from "../../aws/endpoint";
import { accessSync, constants, statSync } from "node:fs";
import { appendFile } from "node:fs/promises";
import { dirname, resolve } from "node:path";
import type { DefaultDependencyOptions } from "../../deploy/default-dependencies";
import { preparePush, push, type PushDependencies, type PushSettings } from "../../fleet/push";
import { settingsGiven } from "../../spec/command-line";
import type { SettingOverrides } from "../../spec/settings";
import { createFleetReporter, markdownSummary } from "../fleet-progress";
import { collect, interruptible } from "../interruptible";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";
import { addProjectOptions, nixTraceArgs, synthModeOf, type ProjectFlags } from "./project-options";
import { COMPRESS_MODES } from "../../nix/serve/copy-policy";
import { checkCompressMode, givenOn } from "./deploy";
import { inWaves, parseBatchSize, parseHostCount, type WaveOptions } from "../../fleet/waves";
import { parseHealthCheckArgument } from "../../spec/health-check";

/** The flags this command reads itself; the deployment settings it may override are read through settingsGiven. */
interface PushFlags extends ProjectFlags {
  on: string[];
  parallel: string;
  dryRun?: boolean;
  json?: boolean;
  summaryFile?: string;
  failFast?: boolean;
  verbose?: boolean;
  canary?: string;
  batchSize?: string;
  maxFailures?: string;
  rollbackCompletedOnFailure?: boolean;
  healthCheck: string[];
}

/** Builds push's dependencies; tests pass fakes of the seams. */
export type PushDependencyFactory = (options: DefaultDependencyOptions) => PushDependencies;

export function registerPushCommand(program: Command, output: Output, dependencies: PushDependencyFactory): void {
  const definition = program.command("push")
    .description("deploy a stack's NixOS hosts from this machine without a Terraform run: one evaluation and build, " +
      "then every selected host in parallel (skipping those already up to date)")
    .argument("[stack]", "the stack (may be left out when one stack has NixOS deployments)")
    .option("--on <selector>", "only these hosts: a name, a glob ('web-*') or a tag (@role=web, @web); repeatable", collect, [])
    .option("--parallel <n>", "deploy at most this many hosts at once", "10")
    .option("--dry-run", "change nothing: per host, say whether it would be deployed, the package changes and the bytes to send")
    .option("--keep-generations <n>", "after a switch or boot, delete all but the newest N system generations (default: each deployment's setting)")
    .addOption(new Option("--compress <mode>", "zstd on every copy: auto, zstd or none (default: each deployment's setting, else auto)").choices(COMPRESS_MODES))
    .option("--max-channels <n>", "SSH channels a far host's copy may use at most (1 = never the spool; default: each deployment's setting)")
    .option("--fail-fast", "start no further host once one has failed (hosts already running finish)")
    .option("--canary <n>", "roll out in waves: the first N hosts (in name order) alone, before any other")
    .option("--batch-size <n|p%>", "roll out in waves of N hosts (or P% of the selected hosts); a wave starts once every host of the one before passed its checks")
    .option("--max-failures <n>", "in waves: hosts that may fail before the rollout stops (later waves untouched)", "0")
    .option("--rollback-completed-on-failure", "in waves: when the rollout stops, put the hosts it already changed back on the generation they had before it")
    .option("--cache <url>", "upload the closure once to this binary cache (s3://BUCKET?region=…[&endpoint=…], file:///DIR) and let every host fetch it from there (default: each deployment's cache)")
    .option("--cache-substituter <url>", "where hosts fetch the cache from, when not at --cache itself (e.g. its https address)")
    .option("--cache-signing-key <file>", "sign what is uploaded with this secret key (nix-store --generate-binary-cache-key's); hosts trust its public half")
    .option("--cache-public-key <name:base64>", "the key hosts trust for the cache (default: derived from --cache-signing-key)")
    .option("--cache-push-command <command>", "upload with this command instead (store paths appended as arguments), e.g. 'cachix push NAME' or 'attic push NAME'")
    .option("--build-host <[user@]host[:port]>", "build on this host instead of this machine (nixos-rebuild's --build-host); the outputs go from there to the cache or the hosts")
    .option("--reactivate", "activate even hosts that already run their system")
    .option("--accept-failed-units", "keep a new system whose only failure is failed systemd units (default: each deployment's setting: roll it back)")
    .option("--health-check <command>", "add a check every selected host's new system must pass before it is confirmed (a command run " +
      "on the host, argv quoted like a shell; or a check as JSON); repeatable", collect, [])
    .option("--no-systemd-health-check", "do not check systemd (not degraded, no failed units) before confirming")
    .option("--connect-timeout <seconds>", "keep retrying an unreachable host this long (default: each deployment's connectTimeoutSeconds)")
    .option("--lock-timeout <seconds>", "wait this long for another deployment to the same host to finish (default: each deployment's setting)")
    .option("--activation-timeout <seconds>", "give up waiting for a host's activation after this long (default: each deployment's setting)")
    .option("--reply-timeout <seconds>", "give up on a host that leaves a question unanswered this long: inspection, store queries, replies during the copy, key uploads (default: each deployment's setting)")
    .option("--endpoint <url>", "EC2 endpoint for host keys from instance consoles (default: each deployment's ec2Endpoint, else AWS or AWS_ENDPOINT_URL_EC2)")
    .option("--verbose", "print everything Nix says while it builds")
    .option("--json", "print one JSON object with every host's result as the last line of stdout")
    .option("--summary-file <file>", "also append the result as a Markdown table to this file (in GitHub Actions: \"$GITHUB_STEP_SUMMARY\")");
  addProjectOptions(definition)
    .action(async (stack: string | undefined, flags: PushFlags, command: Command) => {
      const started = Date.now();
      const settings = pushSettings(flags, givenOn(command));
      // the report is written after the hosts were deployed: a path it cannot go to must stop the push before that
      if (flags.summaryFile !== undefined) {
        const problem = outputFileProblem(resolve(flags.summaryFile));
        if (problem !== undefined) throw new UsageError(`--summary-file ${flags.summaryFile}: ${problem}`);
      }
      const prepared = await preparePush(
        { projectDir: resolve(flags.project), stack, synth: synthModeOf(flags), on: flags.on, settings },
        {
          // synthesis takes seconds: say so before it starts (the reporter and its live lines come after)
          onSynth: (why) => output.stderr.write(`${why}\n`),
          onNote: (note) => output.stderr.write(`${note}\n`),
          checkLogin: dependencies({}).checkLogin,
        },
      );
      const reporter = createFleetReporter(output, prepared.plan.map((h) => h.name), { json: flags.json === true, verbose: flags.verbose === true });
      reporter.note(`stack ${prepared.stack}: ${prepared.synth}`);
      const deps = dependencies({ redact: prepared.redact, onLog: reporter.nixLog, extraArgs: nixTraceArgs(flags) });
      const report = await interruptible(reporter.interrupted, () => push(prepared.plan, settings, deps, reporter.onEvent));
      const context = { stack: prepared.stack, synth: prepared.synth, totalMs: Date.now() - started, synthMs: prepared.synthMs };
      reporter.done(report, context);
      if (flags.summaryFile !== undefined) await appendFile(flags.summaryFile, markdownSummary(report, context));
      if (report.exitCode !== 0) throw new PushFailed(report.exitCode);
    });
}

/** Some hosts failed; the report said which and why. Carries the exit code of the worst. */
export class PushFailed extends Error {
  constructor(readonly exitCode: number) {
    super(`push failed (exit ${exitCode})`);
  }
}

/** The deployment settings push may override for every selected host: given flags only. */
const PUSH_OVERRIDES = [
  "keepGenerations", "compress", "maxChannels", "reactivate", "acceptFailedUnits", "systemdHealthCheck", "connectTimeoutSeconds", "lockTimeoutSeconds",
  "activationTimeoutSeconds", "replyTimeoutSeconds", "ec2Endpoint", "cache", "cacheSubstituter", "cacheSigningKeyFile", "cachePublicKey",
  "cachePushCommand", "buildHost",
] as const satisfies ReadonlyArray<keyof SettingOverrides>;

function pushSettings(flags: PushFlags, given: (attribute: string) => boolean): PushSettings {
  if (!/^\d+$/.test(flags.parallel) || Number(flags.parallel) < 1) {
    throw new UsageError(`--parallel '${flags.parallel}' is not a whole number of at least 1`);
  }
  const overrides = settingsGiven(flags as unknown as Record<string, unknown>, given, PUSH_OVERRIDES);
  checkCompressMode(overrides.compress);
  const badEndpoint = overrides.ec2Endpoint === undefined ? undefined : endpointProblem(overrides.ec2Endpoint);
  if (badEndpoint !== undefined) throw new UsageError(`--endpoint ${badEndpoint}`);
  const waves: WaveOptions = {
    canary: flags.canary === undefined ? 0 : parseHostCount("--canary", flags.canary),
    ...(flags.batchSize !== undefined ? { batchSize: parseBatchSize(flags.batchSize) } : {}),
    maxFailures: parseHostCount("--max-failures", flags.maxFailures ?? "0"),
    rollbackCompletedOnFailure: flags.rollbackCompletedOnFailure === true,
  };
  if (!inWaves(waves) && (given("maxFailures") || waves.rollbackCompletedOnFailure)) {
    throw new UsageError(`${given("maxFailures") ? "--max-failures" : "--rollback-completed-on-failure"} is for a rollout in waves: add --canary N or --batch-size N`);
  }
  if (inWaves(waves) && flags.failFast === true) throw new UsageError("--fail-fast and waves (--canary, --batch-size) both stop a rollout: waves stop after --max-failures failed hosts (default 0)");
  const addHealthChecks = flags.healthCheck.map(parseHealthCheckArgument);
  return { parallel: Number(flags.parallel), dryRun: flags.dryRun === true, failFast: flags.failFast === true, overrides, waves, addHealthChecks };
}

/** Why a file cannot be appended to at `path` (absolute), checked before anything runs; undefined when it can. */
function outputFileProblem(path: string): string | undefined {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    try {
      if (!statSync(dirname(path)).isDirectory()) return `${dirname(path)} is not a directory`;
      accessSync(dirname(path), constants.W_OK);
      return undefined;
    } catch (err) {
      return (err as NodeJS.ErrnoException).code === "ENOENT"
        ? `the directory ${dirname(path)} does not exist: create it first (mkdir -p ${dirname(path)})`
        : `the directory ${dirname(path)} is not writable by this user`;
    }
  }
  if (!stat.isFile()) return `${path} exists and is not a file`;
  try {
    accessSync(path, constants.W_OK);
  } catch {
    return `${path} is not writable by this user`;
  }
  return undefined;
}
