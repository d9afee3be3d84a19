import { SingleBar } from "cli-progress";
import type { Writable } from "node:stream";
import type { DeployEvent, DeployResult } from "../deploy/deploy";
import { DeployError, describeFailedUnits, exitCodeOf, type DeployPhase } from "../errors";
import { buildProgressTracker } from "../nix/build-log";
import { signalExitCode } from "./interruptible";
import type { CopyReport } from "../nix/serve/copy";
import type { CacheFetchReport, CacheUploadReport } from "../deploy/cache";

/** Where the CLI writes; a terminal gets live progress, anything else gets one line per step. */
export interface Output {
  readonly stdout: Writable;
  readonly stderr: Writable;
  readonly interactive: boolean;
}

export interface Reporter {
  readonly onEvent: (event: DeployEvent) => void;
  stop(): void;
  done(result: DeployResult): void;
  /** With --json, the failure as one JSON object on stdout (the CLI prints the message on stderr either way). */
  failed(err: unknown): void;
  /** Restores the terminal and says what an interruption leaves the host in. */
  interrupted(signal: string): void;
  /** A line of Nix's build log: progress (what it builds, how many), or everything with --verbose. */
  nixLog(line: string): void;
}

/** Progress and results go to stderr; stdout carries only the result (the JSON line with --json). */
export function createReporter(output: Output, options: { json: boolean; verbose?: boolean }): Reporter {
  const log = (line: string) => output.stderr.write(`${line}\n`);
  let bar: SingleBar | undefined;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };

  let phase: DeployPhase | undefined;
  let activation: { id: string; logFile: string } | undefined;
  /** What has been done on the host so far, for an interruption to say. */
  let activated: Extract<DeployEvent, { type: "activated" }>["report"] | undefined;
  let keysPending: string[] = [];
  let keysWritten: string[] = [];
  const onEvent = (event: DeployEvent) => {
    switch (event.type) {
      case "keys-uploading":
        keysPending = [...event.names];
        keysWritten = [];
        break;
      case "activation-started":
        activation = { id: event.id, logFile: event.logFile };
        break;
      case "notice":
        log(event.message);
        break;
      case "lock-wait":
        log(`waiting for the deployment lock, held by ${event.holder}`);
        break;
      case "reconnecting":
        stopBar();
        log(`connection lost (${event.reason}); reconnecting`);
        break;
      case "phase":
        phase = event.phase;
        stopBar();
        log(`${event.phase}${event.detail ? `: ${event.detail}` : ""}`);
        break;
      case "up-to-date":
        log("up to date: the host already has this system" +
          `${event.state.profileGeneration !== undefined ? ` (generation ${event.state.profileGeneration})` : ""}; nothing activated`);
        break;
      case "built":
        log(`system ${event.system.outPath} (${event.system.system})`);
        break;
      case "target":
        log(`target runs ${event.target.currentSystem ?? "no NixOS system yet"}` +
          (event.target.profileGeneration !== undefined ? ` (generation ${event.target.profileGeneration})` : ""));
        break;
      case "copy-progress":
        if (!output.interactive) break;
        if (bar === undefined) {
          bar = new SingleBar({
            stream: output.stderr as NodeJS.WriteStream,
            format: "copy [{bar}] {paths} paths | {mib} MiB | {rate} MiB/s",
            hideCursor: true,
            clearOnComplete: true,
          });
          bar.start(Math.max(event.progress.bytesTotal, 1), 0, { paths: "", mib: "", rate: "" });
          copyStarted = Date.now();
        }
        bar.update(event.progress.bytesSent,
          progressPayload(event.progress.pathsDone, event.progress.pathsTotal, event.progress.bytesSent));
        break;
      case "copied":
        stopBar();
        log(`copied ${event.report.pathsCopied} of ${event.report.pathsInClosure} paths ` +
          `(${mib(event.report.bytesSent)} MiB, ${event.report.pathsAlreadyValid} already there) in ${seconds(event.report.durationMs)}` +
          copyTransport(event.report));
        break;
      case "activated":
        activated = event.report;
        log(`${event.report.action}: ${event.report.newSystem}` +
          (event.report.newGeneration !== undefined ? ` is generation ${event.report.newGeneration}` : "") +
          (event.report.previousGeneration !== undefined ? ` (was ${event.report.previousGeneration})` : ""));
        // kept (--accept-failed-units): said, with what the units last logged
        if (event.report.failedUnits !== undefined) {
          log("warning: kept with failed units (--accept-failed-units)");
          for (const line of describeFailedUnits(event.report.failedUnits)) log(line);
        }
        break;
      case "rolled-back":
        log(`rolled back to ${event.toSystem ?? "the previous generation"}`);
        break;
      case "cache-uploaded":
        log(uploadedLine(event.report));
        break;
      case "cache-fetched":
        log(fetchedLine(event.report));
        break;
      case "keys-uploaded":
        for (const key of event.keys) {
          keysWritten.push(key.name);
          keysPending = keysPending.filter((name) => name !== key.name);
          log(`key ${key.name} → ${key.path} (${key.sha256})`);
        }
        break;
    }
  };
  const buildProgress = buildProgressTracker();

  let copyStarted = Date.now();
  function progressPayload(done: number, total: number, bytes: number) {
    const elapsed = Math.max((Date.now() - copyStarted) / 1000, 0.001);
    return { paths: `${done}/${total}`, mib: mib(bytes), rate: (bytes / 1048576 / elapsed).toFixed(1) };
  }

  /** What an interruption leaves the host in, from what the deployment reported so far. */
  function interruptionState(): string {
    const wasActivated = activated === undefined ? undefined
      : `the host was activated (${activated.action} of ${activated.newSystem}` +
        `${activated.newGeneration !== undefined ? `, generation ${activated.previousGeneration ?? "none"} → ${activated.newGeneration}` : ""})`;
    if (phase === "keys") {
      return `${wasActivated ?? "nothing was activated"}; ${keysState(keysWritten, keysPending)}`;
    }
    if (wasActivated !== undefined) return wasActivated;
    if (phase === "activate" || phase === "health" || phase === "confirm" || phase === "rollback") {
      return activation === undefined
        ? "the host's state is unknown: activation may have started"
        : `the activation goes on on the host by itself (and rolls back if it fails${phase === "confirm" || phase === "health" ? " or is not confirmed" : ""}); ` +
          `its log is ${activation.logFile}`;
    }
    return phase === "copy" ? "the host is unchanged (paths copied so far stay valid in its store)" : "nothing was changed on the host";
  }

  return {
    onEvent,
    stop: stopBar,
    nixLog(line) {
      if (options.verbose) {
        log(line);
        return;
      }
      const building = buildProgress(line);
      if (building !== undefined) log(`build: ${building}`);
    },
    done(result) {
      // what dry-activate would do is the result: stdout, as switch-to-configuration prints it
      if (result.dryActivation !== undefined && !options.json) output.stdout.write(result.dryActivation.endsWith("\n") || result.dryActivation === "" ? result.dryActivation : `${result.dryActivation}\n`);
      if (options.json) output.stdout.write(`${JSON.stringify({ ok: true, ...result })}\n`);
      else if (result.upToDate) log(`${result.host} already runs ${result.newSystem} (${seconds(result.durationMs)})`);
      else log(`${result.action === "dry-activate" ? "dry-activated" : "deployed"} ${result.newSystem} to ${result.host} in ${seconds(result.durationMs)}`);
    },
    failed(err) {
      if (!options.json) return;
      const error = err instanceof DeployError
        ? { phase: err.phase, message: err.message, exitCode: exitCodeOf(err), hint: err.hint, command: err.command, ...(err.failedUnits ? { failedUnits: err.failedUnits } : {}) }
        : { message: err instanceof Error ? err.message : String(err), exitCode: exitCodeOf(err) };
      const host = err instanceof DeployError ? err.hostState : undefined;
      output.stdout.write(`${JSON.stringify({ ok: false, error, ...(host ? { hostState: host } : {}) })}\n`);
    },
    interrupted(signal) {
      stopBar();
      const state = interruptionState();
      log(`interrupted (${signal}) during ${phase ?? "start-up"}: ${state}`);
      if (options.json) {
        // the exit code the process ends with
        output.stdout.write(`${JSON.stringify({ ok: false, error: { phase, message: `interrupted (${signal}): ${state}`, exitCode: signalExitCode(signal) } })}\n`);
      }
    },
  };
}

/**
 * Which keys of an interrupted batch are on the host: those reported written, the one being written (whole or not at
 * all: its bytes may all have arrived), and those not started.
 */
export function keysState(written: readonly string[], pending: readonly string[]): string {
  const [inFlight, ...notStarted] = pending;
  return `keys written: ${written.join(", ") || "none"}` +
    (inFlight === undefined ? "" : `; ${inFlight} was being written (it is there whole or not at all)`) +
    (notStarted.length === 0 ? "" : `; not written: ${notStarted.join(", ")}`);
}

/** How a copy travelled, when it was not the plain single channel: ", over 8 channels (52 ms round trip), 15.1 MiB sent (zstd)". */
export function copyTransport(report: CopyReport): string {
  const t = report.transport;
  if (t === undefined || t.kind === "direct") return "";
  const channels = t.kind === "spooled" ? `, over ${t.dataChannels} channel${t.dataChannels === 1 ? "" : "s"} (${t.rttMs.toFixed(0)} ms round trip)` : "";
  const zstd = t.compressedSegments > 0 ? `, ${mib(report.wireBytes)} MiB sent (zstd)` : "";
  return channels + zstd;
}

/** What a push (or deploy) put in a binary cache, in one line. */
export function uploadedLine(report: CacheUploadReport): string {
  if (report.byPushCommand === true) return `binary cache ${report.cache}: ${report.dryRun === true ? "would run" : "ran"} the push command`;
  if (report.dryRun === true) {
    return `binary cache ${report.cache}: lacks ${report.pathsUploaded} of ${report.pathsInClosure} paths (${sizeText(report.narBytes)}), which the push would upload once`;
  }
  return `binary cache ${report.cache}: uploaded ${report.pathsUploaded} of ${report.pathsInClosure} paths once ` +
    `(${sizeText(report.narBytes)}, ${sizeText(report.fileBytes)} compressed)${report.pathsUploaded === 0 ? ": it had them all" : ""}`;
}

/** What a host fetched from the binary cache, in one line. */
export function fetchedLine(report: CacheFetchReport): string {
  // Nix announces the download in hundredths of a MiB: a few small paths are "0.00 MiB", not worth a size
  const download = report.downloadBytes > 0 ? ` (${sizeText(report.downloadBytes)})` : "";
  // why it fell short is the deployment's notice, said once
  return `fetched ${report.pathsFetched} path${report.pathsFetched === 1 ? "" : "s"}${download} from ${report.substituter}`;
}

/** Bytes for people: KiB below a MiB, so small pushes do not read "0.0 MiB". */
export const sizeText = (bytes: number) => (bytes < 1048576 ? `${(bytes / 1024).toFixed(1)} KiB` : `${mib(bytes)} MiB`);

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
