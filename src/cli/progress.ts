import { SingleBar } from "cli-progress";
import type { Writable } from "node:stream";
import type { DeployEvent, DeployResult } from "../deploy/deploy";

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
}

/** Progress and results go to stderr; stdout carries only the result (the JSON line with --json). */
export function createReporter(output: Output, options: { json: boolean }): Reporter {
  const log = (line: string) => output.stderr.write(`${line}\n`);
  let bar: SingleBar | undefined;
  const stopBar = () => {
    bar?.stop();
    bar = undefined;
  };

  const onEvent = (event: DeployEvent) => {
    switch (event.type) {
      case "phase":
        stopBar();
        log(`${event.phase}${event.detail ? `: ${event.detail}` : ""}`);
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
          `(${mib(event.report.bytesSent)} MiB, ${event.report.pathsAlreadyValid} already there) in ${seconds(event.report.durationMs)}`);
        break;
      case "activated":
        log(`${event.report.action}: ${event.report.newSystem}` +
          (event.report.newGeneration !== undefined ? ` is generation ${event.report.newGeneration}` : "") +
          (event.report.previousGeneration !== undefined ? ` (was ${event.report.previousGeneration})` : ""));
        break;
      case "rolled-back":
        log(`rolled back to ${event.toSystem ?? "the previous generation"}`);
        break;
    }
  };

  let copyStarted = Date.now();
  function progressPayload(done: number, total: number, bytes: number) {
    const elapsed = Math.max((Date.now() - copyStarted) / 1000, 0.001);
    return { paths: `${done}/${total}`, mib: mib(bytes), rate: (bytes / 1048576 / elapsed).toFixed(1) };
  }

  return {
    onEvent,
    stop: stopBar,
    done(result) {
      if (options.json) output.stdout.write(`${JSON.stringify(result)}\n`);
      else log(`deployed ${result.newSystem} to ${result.host} in ${seconds(result.durationMs)}`);
    },
  };
}

function mib(bytes: number): string {
  return (bytes / 1048576).toFixed(1);
}

function seconds(ms: number): string {
  return `${(ms / 1000).toFixed(1)} s`;
}
