import { MultiBar, Presets, type SingleBar } from "cli-progress";
import Table from "cli-table3";
import type { DeployEvent, DeployResult } from "../deploy/deploy";
import { DeployError, exitCodeOf, type DeployPhase, type HealthCheckResult } from "../errors";
import type { HostOutcome, PushEvent, PushReport } from "../fleet/push";
import { buildProgressTracker } from "../nix/build-log";
import { describeChange } from "../nix/closure-diff";
import { copyTransport, fetchedLine, keysState, sizeText, uploadedLine, type Output } from "./progress";
import { signalExitCode } from "./interruptible";

/** Renders a push: live lines on a terminal, prefixed lines on a pipe, then a summary table or one JSON object. */
export interface FleetReporter {
  readonly onEvent: (event: PushEvent) => void;
  /** Says something about the whole push (synthesis, inventory). */
  note(message: string): void;
  done(report: PushReport, context: PushContext): void;
  /** Restores the terminal and says what an interruption leaves each host in. */
  interrupted(signal: string): void;
  /** A line of Nix's build log (the fleet's one build): progress, or everything with --verbose. */
  nixLog(line: string): void;
}

interface HostLine {
  phase: DeployPhase | "waiting" | "up to date" | "deployed" | "would deploy" | "failed" | "not created" | "skipped" | "rolled back";
  detail: string;
  started?: number;
  copy?: { pathsDone: number; pathsTotal: number; bytesSent: number; bytesTotal: number; since: number };
  activationLog?: string;
  /** What the host was activated to, once it was (an interruption after it must say so). */
  activated?: string;
  keysPending?: string[];
  keysWritten?: string[];
}

const mib = (bytes: number) => (bytes / 1048576).toFixed(1);
const size = sizeText;
const seconds = (ms: number) => `${(ms / 1000).toFixed(1)} s`;

const FINAL: Record<HostOutcome["status"], HostLine["phase"]> = {
  deployed: "deployed",
  "up-to-date": "up to date",
  "would-deploy": "would deploy",
  failed: "failed",
  "not-created": "not created",
  skipped: "skipped",
  "rolled-back": "rolled back",
};

const FINAL_PHASES: ReadonlySet<HostLine["phase"]> = new Set(Object.values(FINAL));

export function createFleetReporter(output: Output, hostNames: readonly string[], options: { json: boolean; verbose?: boolean }): FleetReporter {
  const lines = new Map<string, HostLine>(hostNames.map((name) => [name, { phase: "waiting", detail: "" }]));
  const width = Math.max(...hostNames.map((n) => n.length), 4);
  const log = (line: string) => output.stderr.write(`${line}\n`);

  let multibar: MultiBar | undefined;
  const bars = new Map<string, SingleBar>();
  if (output.interactive) {
    multibar = new MultiBar({
      stream: output.stderr as NodeJS.WriteStream,
      format: "{name} {phase} [{bar}] {detail}",
      barsize: 16,
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      forceRedraw: true,
      fps: 10,
    }, Presets.shades_classic);
    for (const name of hostNames) bars.set(name, multibar.create(1, 0, payload(name)));
  }
  // elapsed times and rates move between events too
  const ticker = multibar === undefined ? undefined : setInterval(() => redrawAll(), 500).unref();
  const stopBars = () => {
    if (multibar === undefined) return;
    clearInterval(ticker);
    redrawAll();
    multibar.stop();
    multibar = undefined;
  };

  function payload(name: string) {
    const line = lines.get(name)!;
    const elapsed = line.started === undefined || FINAL_PHASES.has(line.phase) ? "" : ` ${seconds(Date.now() - line.started)}`;
    let detail = line.detail;
    if (line.phase === "copy" && line.copy !== undefined) {
      const rate = line.copy.bytesSent / 1048576 / Math.max((Date.now() - line.copy.since) / 1000, 0.001);
      detail = `${line.copy.pathsDone}/${line.copy.pathsTotal} paths ${mib(line.copy.bytesSent)}/${mib(line.copy.bytesTotal)} MiB ${rate.toFixed(1)} MiB/s`;
    }
    return { name: name.padEnd(width), phase: line.phase.padEnd(12), detail: `${detail}${elapsed}` };
  }
  function redraw(name: string) {
    const bar = bars.get(name);
    if (bar === undefined) return;
    const line = lines.get(name)!;
    const fraction = FINAL_PHASES.has(line.phase) ? 1 : line.copy !== undefined && line.copy.bytesTotal > 0 ? line.copy.bytesSent / line.copy.bytesTotal : 0;
    bar.update(fraction, payload(name));
  }
  function redrawAll() {
    for (const name of hostNames) redraw(name);
  }

  /** On a pipe: one prefixed line per host per phase. */
  const say = (name: string, text: string) => {
    if (!output.interactive) log(`[${name}] ${text}`);
  };

  const onHostEvent = (name: string, event: DeployEvent) => {
    const line = lines.get(name)!;
    line.started ??= Date.now();
    switch (event.type) {
      case "phase":
        line.phase = event.phase;
        line.detail = event.detail ?? "";
        if (event.phase !== "copy") line.copy = undefined;
        say(name, `${event.phase}${event.detail ? `: ${event.detail}` : ""}`);
        break;
      case "target":
        line.detail = event.target.profileGeneration !== undefined ? `generation ${event.target.profileGeneration}` : "no system profile yet";
        say(name, `runs ${event.target.currentSystem ?? "no NixOS system yet"}` +
          (event.target.profileGeneration !== undefined ? ` (generation ${event.target.profileGeneration})` : ""));
        break;
      case "up-to-date":
        // the outcome line says it ("up to date: generation N")
        break;
      case "copy-progress":
        line.copy = { ...event.progress, since: line.copy?.since ?? Date.now() };
        break;
      case "copied":
        say(name, `copied ${event.report.pathsCopied} of ${event.report.pathsInClosure} paths (${size(event.report.bytesSent)}) in ${seconds(event.report.durationMs)}${copyTransport(event.report)}`);
        break;
      case "cache-fetched":
        say(name, fetchedLine(event.report));
        break;
      case "cache-progress":
      case "cache-uploaded":
        break;
      case "activation-started":
        line.activationLog = event.logFile;
        break;
      case "lock-wait":
        line.detail = `waiting for the lock (${event.holder})`;
        say(name, `waiting for the deployment lock, held by ${event.holder}`);
        break;
      case "reconnecting":
        line.detail = "reconnecting";
        say(name, `connection lost (${event.reason}); reconnecting`);
        break;
      case "notice":
        say(name, event.message);
        break;
      case "activated":
        line.activated = `${event.report.action}, generation ${event.report.previousGeneration ?? "none"} → ${event.report.newGeneration ?? "none"}`;
        say(name, `${event.report.action}: generation ${event.report.previousGeneration ?? "-"} → ${event.report.newGeneration ?? "-"}`);
        break;
      case "rolled-back":
        say(name, `rolled back to ${event.toSystem ?? "the previous generation"}`);
        break;
      case "health-check":
        line.detail = `${event.result.name}: ${event.result.outcome}`;
        say(name, `health check ${event.result.name}: ${event.result.outcome}${event.result.outcome === "skipped" ? ` (${event.result.saw})` : `, ${event.result.saw}`}`);
        break;
      case "keys-uploading":
        line.keysPending = [...event.names];
        line.keysWritten = [];
        break;
      case "keys-uploaded":
        for (const key of event.keys) {
          line.keysWritten = [...(line.keysWritten ?? []), key.name];
          line.keysPending = (line.keysPending ?? []).filter((n) => n !== key.name);
          say(name, `key ${key.name} → ${key.path} (${key.sha256})`);
        }
        break;
      case "built":
        break;
    }
    redraw(name);
  };

  const uploadQuarters = new Map<string, number>();
  const onEvent = (event: PushEvent) => {
    switch (event.type) {
      case "fleet":
        for (const name of event.hosts) {
          const line = lines.get(name)!;
          line.phase = "build";
          line.detail = "evaluating and building";
          redraw(name);
        }
        if (!output.interactive) log(`evaluating and building ${event.hosts.length} system${event.hosts.length === 1 ? "" : "s"}: ${event.hosts.join(", ")}`);
        break;
      case "built":
        if (event.result.ok) {
          lines.get(event.host)!.detail = "built";
          say(event.host, `system ${event.result.system.outPath}`);
        }
        redraw(event.host);
        break;
      case "host":
        onHostEvent(event.host, event.event);
        break;
      case "wave":
        note(`wave ${event.wave}${Number.isFinite(event.capacity) ? ` (${event.capacity} host${event.capacity === 1 ? "" : "s"})` : " (the rest)"}`);
        break;
      case "halted":
        note(`the rollout stopped: ${event.reason}; later waves are not started`);
        break;
      case "build-host":
        note(`building ${event.hosts.join(", ")} on the build host ${event.buildHost}`);
        break;
      case "built-on-build-host":
        note(`built on ${event.buildHost}: ${event.hosts.join(", ")} (their closures are copied from there)`);
        break;
      case "cache-upload":
        note(`binary cache ${event.cache}: looking up the closures of ${event.hosts.length} host${event.hosts.length === 1 ? "" : "s"}`);
        break;
      case "cache-progress": {
        // a long upload says how far it got, a quarter at a time
        const { narBytesUploaded: done, narBytesToUpload: total } = event.progress;
        const quarter = total === 0 ? 4 : Math.floor((4 * done) / total);
        if (quarter > (uploadQuarters.get(event.cache) ?? 0) && quarter < 4) {
          uploadQuarters.set(event.cache, quarter);
          note(`binary cache ${event.cache}: uploaded ${size(done)} of ${size(total)}`);
        }
        break;
      }
      case "cache-uploaded":
        note(uploadedLine(event.report));
        break;
      case "host-done": {
        const line = lines.get(event.outcome.name)!;
        line.phase = FINAL[event.outcome.status];
        line.copy = undefined;
        line.detail = outcomeDetail(event.outcome);
        say(event.outcome.name, `${line.phase}${line.detail ? `: ${line.detail}` : ""}`);
        redraw(event.outcome.name);
        break;
      }
    }
  };

  const note = (message: string) => {
    if (multibar !== undefined) multibar.log(`${message}\n`);
    else log(message);
  };
  const buildProgress = buildProgressTracker();
  return {
    onEvent,
    note,
    nixLog(line) {
      if (options.verbose) {
        note(line);
        return;
      }
      const building = buildProgress(line);
      if (building === undefined) return;
      const detail = `building ${building}`;
      if (multibar === undefined) {
        log(detail);
        return;
      }
      for (const [name, hostLine] of lines) {
        if (hostLine.phase !== "build") continue;
        hostLine.detail = detail;
        redraw(name);
      }
    },
    done(report, context) {
      stopBars();
      if (options.json) {
        output.stdout.write(`${JSON.stringify(pushJson(report, context))}\n`);
        return;
      }
      output.stdout.write(`${summaryTable(report, (output.stdout as NodeJS.WriteStream).columns)}\n`);
      for (const host of report.hosts) {
        if (host.result?.dryActivation !== undefined) output.stdout.write(`${host.name} would (dry-activate):\n${host.result.dryActivation.trimEnd()}\n`);
      }
      output.stdout.write(`${countsLine(report, context)}\n`);
      // hosts that fail for one cause (a module they share) get Nix's long message once
      const stderrShownFor = new Map<string, string>();
      for (const host of report.hosts.filter((h) => h.status === "failed")) {
        const error = host.error;
        if (!(error instanceof DeployError)) {
          output.stderr.write(`${host.name}: ${String(error)}\n`);
          continue;
        }
        const stderr = error.stderr?.trim() ?? "";
        output.stderr.write(`${host.name}: ${error.describe({ stderrShownFor: stderr === "" ? undefined : stderrShownFor.get(stderr) })}\n`);
        if (stderr !== "" && !stderrShownFor.has(stderr)) stderrShownFor.set(stderr, host.name);
      }
    },
    interrupted(signal) {
      stopBars();
      for (const [name, line] of lines) {
        const activated = line.activated === undefined ? undefined : `activated (${line.activated})`;
        const keys = keysState(line.keysWritten ?? [], line.keysPending ?? []);
        const state = line.phase === "keys"
          ? `${activated ?? "not activated"}; ${keys}`
          : activated !== undefined && !FINAL_PHASES.has(line.phase)
            ? activated
            : ["activate", "health", "confirm", "rollback"].includes(line.phase)
          ? line.activationLog === undefined
            ? "its state is unknown: activation may have started"
            : `its activation goes on by itself (and rolls back if it fails); log: ${line.activationLog}`
          : line.phase === "copy"
            ? "unchanged (paths copied so far stay valid in its store)"
            : FINAL_PHASES.has(line.phase)
              ? line.phase
              : "unchanged";
        log(`[${name}] interrupted during ${line.phase}: ${state}`);
      }
      if (options.json) {
        output.stdout.write(`${JSON.stringify({ ok: false, error: { message: `interrupted (${signal})`, exitCode: signalExitCode(signal) } })}\n`);
      }
    },
  };
}

function outcomeDetail(outcome: HostOutcome): string {
  switch (outcome.status) {
    case "deployed": {
      const r = outcome.result!;
      return `generation ${r.previousGeneration ?? "-"} → ${r.newGeneration ?? "-"}, ${fromCache(r)}${r.pathsCopied} paths, ${size(r.bytesSent)}, ${seconds(outcome.durationMs)}` +
        (r.failedUnits !== undefined ? `; ${keptUnits(r.failedUnits)}` : "");
    }
    case "up-to-date":
      return `generation ${outcome.result?.newGeneration ?? outcome.preview?.previousGeneration ?? "-"}: nothing to copy or activate`;
    case "would-deploy": {
      const p = outcome.preview!;
      return `${p.pathsToSend} paths, ${size(p.bytesToSend)} to ${p.cache !== undefined ? `fetch from ${p.cache.substituter}` : "send"}, ${p.changes.length} package change${p.changes.length === 1 ? "" : "s"}`;
    }
    case "failed":
      return errorSummary(outcome.error);
    case "not-created":
    case "skipped":
      return outcome.reason ?? "";
    case "rolled-back":
      return outcome.reason ?? "rolled back";
  }
}

/** "12 paths from the cache, " before the direct copy's count, for a host that went through one. */
function fromCache(result: DeployResult): string {
  return result.cacheFetch === undefined ? "" : `${result.cacheFetch.pathsFetched} from the cache${result.cacheFetch.fellBack !== undefined ? " (fell back)" : ""} + copied `;
}

function errorSummary(error: unknown): string {
  return error instanceof DeployError ? `${error.phase}: ${error.message}` : error instanceof Error ? error.message : String(error);
}

function generations(outcome: HostOutcome): string {
  const r = outcome.result;
  if (r !== undefined) return r.upToDate ? `${r.newGeneration ?? "-"}` : `${r.previousGeneration ?? "-"} → ${r.newGeneration ?? "-"}`;
  const p = outcome.preview;
  if (p !== undefined) return `${p.previousGeneration ?? "-"}`;
  const state = outcome.error instanceof DeployError ? outcome.error.hostState : undefined;
  return state?.profileGeneration !== undefined ? `${state.profileGeneration}` : "";
}

/** A host's result, with why where its status is one of `explained`. */
function resultCell(host: HostOutcome, explained: readonly HostOutcome["status"][]): string {
  const kept = host.result?.failedUnits;
  return FINAL[host.status] + (explained.includes(host.status) ? `: ${wrap(outcomeDetail(host))}`
    : kept !== undefined ? `, ${wrap(keptUnits(kept))}` : "");
}

/** A host kept with failed units (--accept-failed-units) is never shown as plainly deployed. */
function keptUnits(units: readonly { readonly name: string }[]): string {
  return `failed units kept: ${units.map((u) => u.name).join(", ")}`;
}

/** The end-of-push table's columns and rows: host, result, generation before → after, paths and MiB copied, time (or what a dry run found). */
function summaryRows(report: PushReport): { head: string[]; rows: string[][] } {
  if (report.dryRun) {
    return {
      head: ["host", ...(report.waves !== undefined ? ["wave"] : []), "result", "generation", "to send", "package changes"],
      rows: report.hosts.map((host) => {
        const p = host.preview;
        return [
          host.name,
          ...(report.waves !== undefined ? [host.wave === undefined ? "" : String(host.wave)] : []),
          resultCell(host, ["failed", "not-created"]),
          generations(host),
          p === undefined || p.upToDate ? "" : `${p.pathsToSend} paths, ${size(p.bytesToSend)}${p.cache !== undefined ? ` from the cache (${p.cache.uploadedFirst} uploaded first)` : ""}`,
          p === undefined ? "" : p.changes.length === 0 ? "none" : p.changes.map(describeChange).join("\n"),
        ];
      }),
    };
  }
  const waves = report.hosts.some((h) => h.wave !== undefined);
  const checked = report.hosts.some((h) => healthChecksOf(h) !== undefined);
  return {
    head: ["host", ...(waves ? ["wave"] : []), "result", "generation", "copied", ...(checked ? ["health checks"] : []), "time"],
    rows: report.hosts.map((host) => {
      const r = host.result;
      return [
        host.name,
        ...(waves ? [host.wave === undefined ? "" : String(host.wave)] : []),
        resultCell(host, ["failed", "not-created", "skipped", "rolled-back"]),
        generations(host),
        r === undefined || r.upToDate ? "" : `${fromCache(r)}${r.pathsCopied} paths, ${size(r.bytesSent)}`,
        ...(checked ? [(healthChecksOf(host) ?? []).map((c) => `${c.name}: ${c.outcome}`).join("\n")] : []),
        host.status === "not-created" || host.status === "skipped" ? "" : seconds(host.durationMs),
      ];
    }),
  };
}

/** The health checks a host's new system went through: passed ones on a result, the failed one's on its error. */
function healthChecksOf(host: HostOutcome): readonly HealthCheckResult[] | undefined {
  return host.result?.healthChecks ?? (host.error instanceof DeployError ? host.error.healthChecks : undefined);
}

/**
 * The end-of-push table for the terminal; on a terminal too narrow for it (`columns`), one line per host instead,
 * whose words wrap where the terminal wraps them rather than inside table cells.
 */
export function summaryTable(report: PushReport, columns?: number): string {
  const { head, rows } = summaryRows(report);
  const table = new Table({ head, style: { head: [], border: [] } });
  table.push(...rows);
  const text = table.toString();
  if (columns === undefined || Math.max(...text.split("\n").map((line) => line.length)) <= columns) return text;
  // the result cell is one text wrapped for the table; the others list one item per line
  return rows.map((row) => `${row[0]}: ${row.slice(1)
    .map((cell, i) => (cell === "" ? "" : i === 0 ? cell.replace(/\n/g, " ") : `${head[i + 1]} ${cell.replace(/\n/g, "; ")}`))
    .filter((cell) => cell !== "").join(", ")}`).join("\n");
}

/** What the push command knew besides the report: the stack, what it did about synthesis, and how long that took. */
export interface PushContext {
  readonly stack: string;
  readonly synth: string;
  /** From the command's start to its end, synthesis, state and keys included. */
  readonly totalMs?: number;
  /** Of totalMs, the synthesis (when there was one). */
  readonly synthMs?: number;
}

/** The counts and the whole time, with its phases: a push that synthesized spent most of it there. */
function countsLine(report: PushReport, context: Partial<PushContext> = {}): string {
  const counts = Object.values(FINAL)
    .map((status) => [status, report.hosts.filter((h) => FINAL[h.status] === status).length] as const)
    .filter(([, n]) => n > 0);
  const total = context.totalMs ?? report.durationMs;
  const phases = [
    ...(context.synthMs !== undefined ? [`synth ${seconds(context.synthMs)}`] : []),
    ...(report.buildMs > 0 ? [`evaluate and build ${seconds(report.buildMs)}`] : []),
    `hosts ${seconds(report.durationMs - report.buildMs)}`,
  ];
  return `${counts.map(([status, n]) => `${n} ${status}`).join(", ")} in ${seconds(total)} (${phases.join(", ")})` +
    (report.waves !== undefined ? `; ${report.waves.length} wave${report.waves.length === 1 ? "" : "s"}: ${report.waves.map((w) => w.join(" ")).join(" | ")}` : "") +
    (report.halted !== undefined ? `\nthe rollout stopped: ${report.halted}` : "");
}

/**
 * The same table as Markdown, for a CI job's summary (`--summary-file "$GITHUB_STEP_SUMMARY"`): a heading, the
 * table (line breaks inside cells as <br>, pipes escaped) and the counts.
 */
export function markdownSummary(report: PushReport, context: Pick<PushContext, "stack"> & Partial<PushContext>): string {
  const { head, rows } = summaryRows(report);
  const cell = (text: string) => text.replace(/\\/g, "\\\\").replace(/\|/g, "\\|").replace(/\n/g, "<br>");
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(" | ")} |`;
  return [
    `### cdktf-nixos push${report.dryRun ? " --dry-run" : ""}: stack ${context.stack}`,
    "",
    line(head),
    line(head.map(() => "---")),
    ...rows.map(line),
    "",
    countsLine(report, context),
    "",
  ].join("\n");
}

/** Long reasons wrapped at words, so the table stays readable. */
function wrap(text: string, width = 60): string {
  const out: string[] = [];
  let line = "";
  for (const word of text.split(/\s+/)) {
    if (line !== "" && line.length + word.length + 1 > width) {
      out.push(line);
      line = word;
    } else line = line === "" ? word : `${line} ${word}`;
  }
  if (line !== "") out.push(line);
  return out.join("\n");
}

/** `--json`: one object with every host's outcome. */
export function pushJson(report: PushReport, context: PushContext): Record<string, unknown> {
  return {
    ok: report.exitCode === 0,
    stack: context.stack,
    synth: context.synth,
    dryRun: report.dryRun,
    exitCode: report.exitCode,
    durationMs: report.durationMs,
    ...(report.halted !== undefined ? { halted: report.halted } : {}),
    ...(report.waves !== undefined ? { waves: report.waves } : {}),
    ...(report.caches !== undefined ? { caches: report.caches.map(({ missing: _missing, ...cache }) => cache) } : {}),
    ...(context.totalMs !== undefined ? { totalMs: context.totalMs } : {}),
    hosts: report.hosts.map((host) => ({
      name: host.name,
      status: host.status,
      durationMs: host.durationMs,
      exitCode: host.exitCode,
      ...(host.wave !== undefined ? { wave: host.wave } : {}),
      ...(host.reason !== undefined ? { reason: host.reason } : {}),
      ...(healthChecksOf(host) !== undefined ? { healthChecks: healthChecksOf(host) } : {}),
      ...(host.rollback?.result !== undefined ? { rollback: { newGeneration: host.rollback.result.newGeneration, newSystem: host.rollback.result.newSystem } } : {}),
      ...(host.result !== undefined ? {
        host: host.result.host,
        previousGeneration: host.result.previousGeneration,
        newGeneration: host.result.newGeneration,
        previousSystem: host.result.previousSystem,
        newSystem: host.result.newSystem,
        pathsCopied: host.result.pathsCopied,
        pathsInClosure: host.result.pathsInClosure,
        bytesSent: host.result.bytesSent,
        keys: host.result.keys,
        ...(host.result.cacheFetch !== undefined ? { cacheFetch: host.result.cacheFetch } : {}),
        ...(host.result.failedUnits !== undefined ? { failedUnits: host.result.failedUnits } : {}),
        ...(host.result.dryActivation !== undefined ? { dryActivation: host.result.dryActivation } : {}),
      } : {}),
      ...(host.preview !== undefined ? {
        host: host.preview.host,
        previousGeneration: host.preview.previousGeneration,
        previousSystem: host.preview.previousSystem,
        newSystem: host.preview.newSystem,
        pathsToSend: host.preview.pathsToSend,
        bytesToSend: host.preview.bytesToSend,
        changes: host.preview.changes,
        ...(host.preview.cache !== undefined ? { cache: host.preview.cache } : {}),
      } : {}),
      ...(host.error !== undefined ? {
        error: host.error instanceof DeployError
          ? {
            phase: host.error.phase, message: host.error.message, exitCode: exitCodeOf(host.error), hint: host.error.hint, hostState: host.error.hostState,
            ...(host.error.failedUnits ? { failedUnits: host.error.failedUnits } : {}),
          }
          : { message: host.error instanceof Error ? host.error.message : String(host.error), exitCode: exitCodeOf(host.error) },
      } : {}),
    })),
  };
}
