import { isNixErrorLine } from "../nix-errors";
import { randomBytes } from "node:crypto";
import { PassThrough } from "node:stream";
import { splitLines, type RemoteProcess, type RemoteShell } from "../remote-shell";
import type { PathInfo, StoreSource } from "../store-source";
import { localZstdAvailable } from "../zstd";
import { copyClosure, planClosureCopy, planCopy, sendMissing, type CopyPlan, type CopyProgress, type CopyReport } from "./copy";
import { chooseTransport, MAX_DATA_CHANNELS, SEGMENT_BYTES, spoolPays, type CompressMode, type TransportChoice, type TransportReport } from "./copy-policy";
import { ServeError, ServeSession, type ServeChannel } from "./session";
import { CONSUMED_MARK, dataChannelCommand, importerCommand, parseProbe, probeCommand, removeSpoolCommand, type TargetCapabilities } from "./spool-commands";
import { DataChannel, SpoolStream } from "./spool-stream";

export interface RemoteCopyOptions {
  readonly source: StoreSource;
  readonly shell: RemoteShell;
  readonly paths: readonly string[];
  readonly useSubstitutes?: boolean;
  /** @default "auto" */
  readonly compress?: CompressMode;
  /** @default MAX_DATA_CHANNELS */
  readonly maxChannels?: number;
  /** How long a reply may keep the copy waiting with no byte moving either way. @default - no limit */
  readonly replyTimeoutMs?: number;
  readonly onProgress?: (progress: CopyProgress) => void;
}

const WRITE_COMMAND = "nix-store --serve --write";

/**
 * Copies a closure to the target the fastest safe way this link allows: measures the round trip and asks what the
 * target has (one probe command), then copies over one channel straight into `nix-store --serve --write`, or over
 * several data channels through a spool into one importer (see spool-commands.ts) when the round trip makes one
 * channel window-bound or compression is wanted. Either way one nix-store registers the paths in dependency order.
 */
export async function copyToRemote(options: RemoteCopyOptions): Promise<CopyReport & { readonly transport: TransportReport }> {
  const started = Date.now();
  const compress = options.compress ?? "auto";
  // The direct session starts while the probe runs: on a LAN, the usual case, it is the one used, and the probe's
  // round trips then cost nothing. Far away it finds what is missing, which decides whether the spool pays.
  const direct = openSession(options.shell, WRITE_COMMAND, options.replyTimeoutMs);
  direct.catch(() => undefined);
  let probe: Probe;
  let closure: PathInfo[];
  const choose = (rttMs: number) => chooseTransport({
    rttMs,
    compress,
    maxChannels: options.maxChannels ?? MAX_DATA_CHANNELS,
    target: probe.capabilities,
    localZstd: () => compress !== "none" && localZstdAvailable(),
  });
  let choice: TransportChoice;
  try {
    // a target whose shell cannot run the probe still gets the single channel, which needs nothing but nix-store
    [closure, probe] = await Promise.all([
      options.source.closure(options.paths),
      probeTarget(options.shell, options.replyTimeoutMs).catch((): Probe => ({ rttMs: 0, capabilities: undefined })),
    ]);
    choice = choose(probe.rttMs);
  } catch (err) {
    await direct.then((session) => session.close(), () => undefined);
    throw err;
  }
  let rttMs = probe.rttMs;
  const transport = (extra: Partial<TransportReport> = {}): TransportReport => ({
    ...choice, rttMs, segments: 0, compressedSegments: 0, ...extra,
  });

  if (choice.kind === "spooled" && compress === "zstd") {
    await direct.then((unused) => unused.close(), () => undefined);
    return spooledOrDirect(options, closure, choice, compress, started, transport);
  }
  const session = await direct;
  let keepSession = true;
  try {
    // lock: what the target has stays out of its garbage collector's reach until this import ends
    const asked = performance.now();
    const valid = await session.queryValidPaths(closure.map((i) => i.path), { substitute: options.useSubstitutes, lock: true });
    // The query's answer is a second measurement of the round trip: a busy host can delay the probe's echo by more
    // than a LAN's round trip, and a near host taken for a far one would get the spool it does not need.
    if (performance.now() - asked < rttMs) {
      rttMs = performance.now() - asked;
      choice = choose(rttMs);
    }
    const plan = planCopy(closure, valid);
    let reason = choice.reason;
    if (choice.kind === "spooled") {
      if (spoolPays(choice, compress, plan.bytesToSend)) {
        // The spool's importer queries again, under its own lock. This session's end is not waited for: that would
        // cost a round trip, and its nix-store only has to see the end of its input.
        keepSession = false;
        const closing = session.close();
        try {
          return await spooledOrDirect(options, closure, choice, compress, started, transport);
        } finally {
          await closing;
        }
      }
      reason = `${choice.reason}; only ${(plan.bytesToSend / 1048576).toFixed(1)} MiB to send: one channel`;
    }
    const sent = await sendMissing(session, plan, options.source, { onProgress: options.onProgress });
    return { ...sent, durationMs: Date.now() - started, transport: transport({ kind: "direct", dataChannels: 1, compress: false, reason }) };
  } finally {
    if (keepSession) await session.close();
  }
}

/** The spooled copy, or one channel when the target refuses every data channel. */
async function spooledOrDirect(
  options: RemoteCopyOptions,
  closure: PathInfo[],
  choice: TransportChoice,
  compress: CompressMode,
  started: number,
  transport: (extra?: Partial<TransportReport>) => TransportReport,
): Promise<CopyReport & { readonly transport: TransportReport }> {
  const spooled = await copySpooled(options, closure, choice, compress);
  if (spooled !== undefined) return { ...spooled.report, durationMs: Date.now() - started, transport: transport(spooled.transport) };
  const direct = await withSession(options.shell, WRITE_COMMAND, options.replyTimeoutMs, (session) =>
    copyClosure({
      source: options.source,
      target: session,
      paths: options.paths,
      closure,
      useSubstitutes: options.useSubstitutes,
      onProgress: options.onProgress,
    }));
  return {
    ...direct,
    durationMs: Date.now() - started,
    transport: transport({ kind: "direct", dataChannels: 1, compress: false, reason: `${choice.reason}; the target refused every data channel, so one channel was used` }),
  };
}

/** What copyToRemote would send, read through a `nix-store --serve` that cannot write (never substitutes). */
export function planRemoteCopy(source: StoreSource, shell: RemoteShell, paths: readonly string[], replyTimeoutMs?: number): Promise<CopyPlan> {
  return withSession(shell, "nix-store --serve", replyTimeoutMs, (session) => planClosureCopy(source, session, paths));
}

interface Probe {
  readonly rttMs: number;
  /** undefined when the probe could not run */
  readonly capabilities?: TargetCapabilities;
}

/**
 * The round trip and the target's tools, in one command. The round trip is the second of two echoes through the
 * running shell: the first one also waits for the shell to start, which on a busy host is longer than a LAN's round
 * trip and would make a near host look far.
 */
async function probeTarget(shell: RemoteShell, replyTimeoutMs: number | undefined): Promise<Probe> {
  const process = await shell.start(probeCommand());
  const silent = replyTimeoutMs === undefined ? undefined : setTimeout(() => process.abort(), replyTimeoutMs);
  silent?.unref();
  process.exited.finally(() => clearTimeout(silent)).catch(() => undefined);
  let stdout = "";
  let echoes = 0;
  let rttMs: number | undefined;
  let sentAt = performance.now();
  const echoed = new Promise<void>((resolve) => {
    process.stdout.on("data", (c: Buffer) => {
      stdout += c.toString("utf8");
      while (echoes < 2 && stdout.split("\n").length - 1 > echoes) {
        echoes++;
        if (echoes === 1) {
          sentAt = performance.now();
          process.stdin.end("2\n");
        } else {
          rttMs = performance.now() - sentAt;
          resolve();
        }
      }
    });
    process.exited.then(() => resolve(), () => resolve());
  });
  process.stderr.resume();
  process.stdin.on("error", () => undefined);
  process.stdin.write("1\n");
  await echoed;
  const code = await process.exited;
  if (rttMs === undefined) {
    throw new ServeError(`probing ${shell.name} failed: ${code === null ? "the connection was lost" : `the probe exited with code ${code}`}`, probeCommand(), "", code);
  }
  return { rttMs, capabilities: parseProbe(stdout.split("\n").slice(2).join("\n")) };
}

/** The spooled copy; undefined when no data channel could be opened (and nothing was sent). */
async function copySpooled(
  options: RemoteCopyOptions,
  closure: PathInfo[],
  choice: TransportChoice,
  compress: CompressMode,
): Promise<{ report: Omit<CopyReport, "durationMs">; transport: Partial<TransportReport> } | undefined> {
  const id = randomBytes(16).toString("hex");
  const query = { paths: closure.map((i) => i.path), substitute: options.useSubstitutes, lock: true };
  const preamble = ServeSession.preamble(query);
  const command = importerCommand(id, preamble.length);
  // the data channels start with the importer (they need the spool only when the first segment comes), as many as
  // the whole closure could use; those the plan does not need are closed unused
  const closureBytes = closure.reduce((sum, info) => sum + info.narSize, 0);
  const wanted = Math.max(1, Math.min(choice.dataChannels, Math.ceil(closureBytes / SEGMENT_BYTES)));
  let stream: SpoolStream | undefined;
  const importerStarted = options.shell.start(command);
  const channelsOpened = openDataChannels(options.shell, id, wanted, (err) => stream?.failWith(err));
  let importer: RemoteProcess;
  try {
    importer = await importerStarted;
  } catch (err) {
    for (const unused of await channelsOpened) unused.close();
    throw err;
  }
  const channels = await channelsOpened;
  let completed = false;
  // Nix's stderr goes to the session (for its messages); the importer's notices are taken out of it
  const nixErrors = new PassThrough();
  splitLines(importer.stderr, (line) => {
    if (line.startsWith(CONSUMED_MARK)) {
      stream?.consumedSegment();
      return;
    }
    // Nix colours "error:" when it thinks stderr is a terminal: isNixErrorLine reads it without the colours
    if (isNixErrorLine(line)) stream?.importerFailed();
    nixErrors.write(`${line}\n`);
  }, () => nixErrors.end());
  const channel: ServeChannel = {
    input: importer.stdin,
    output: importer.stdout,
    errors: nixErrors,
    exited: importer.exited,
    command: `ssh ${options.shell.name} '${command}'`,
    close: () => importer.close(),
  };
  const { session, valid } = await ServeSession.openWithQuery(channel, query, { replyTimeoutMs: options.replyTimeoutMs }).catch(async (err: unknown) => {
    for (const c of channels) c.close();
    importer.close();
    throw err;
  });
  try {
    const plan = planCopy(closure, valid);
    const segmentsNeeded = Math.ceil((plan.bytesToSend + plan.send.length * 1024) / SEGMENT_BYTES);
    // more channels than segments would idle
    for (const unused of channels.splice(Math.min(channels.length, segmentsNeeded))) unused.close();
    if (plan.send.length > 0) {
      if (channels.length === 0) return undefined;
      stream = new SpoolStream({ stdin: importer.stdin }, channels, { allowed: choice.compress, mode: compress });
    }
    const sent = await sendMissing(session, plan, options.source, { stream, onProgress: options.onProgress });
    completed = true;
    return {
      // the preamble (greeting and query) went through the importer's own input too
      report: { ...sent, wireBytes: sent.wireBytes + preamble.length },
      transport: { dataChannels: channels.length, segments: stream?.stats.segments ?? 0, compressedSegments: stream?.stats.compressedSegments ?? 0 },
    };
  } finally {
    for (const c of channels) c.close();
    await session.close();
    // The importer's trap removes the spool; after a failure a data channel may have raced it, so make sure.
    if (!completed) await removeSpool(options.shell, id);
  }
}

async function openDataChannels(shell: RemoteShell, id: string, count: number, onFailure: (err: Error) => void): Promise<DataChannel[]> {
  const command = dataChannelCommand(id);
  // a server that allows fewer sessions refuses the rest: fewer channels, not a failed copy
  const opened = await Promise.allSettled(Array.from({ length: count }, () => shell.start(command)));
  return opened
    .filter((r): r is PromiseFulfilledResult<RemoteProcess> => r.status === "fulfilled")
    .map((r) => new DataChannel(r.value, `ssh ${shell.name} '${command}'`, onFailure));
}

async function removeSpool(shell: RemoteShell, id: string): Promise<void> {
  try {
    const process = await shell.start(removeSpoolCommand(id));
    process.stdout.resume();
    process.stderr.resume();
    process.stdin.end();
    await Promise.race([process.exited, new Promise((resolve) => setTimeout(resolve, 5000).unref())]);
  } catch {
    // the connection is gone: the next copy's probe removes the spool
  }
}

export async function openSession(shell: RemoteShell, command: string, replyTimeoutMs: number | undefined): Promise<ServeSession> {
  const remote = await shell.start(command);
  try {
    return await ServeSession.open({
      input: remote.stdin,
      output: remote.stdout,
      errors: remote.stderr,
      exited: remote.exited,
      command: `ssh ${shell.name} ${command}`,
      close: () => remote.close(),
    }, { replyTimeoutMs });
  } catch (err) {
    remote.abort();
    throw err;
  }
}

async function withSession<T>(shell: RemoteShell, command: string, replyTimeoutMs: number | undefined, use: (session: ServeSession) => Promise<T>): Promise<T> {
  const session = await openSession(shell, command, replyTimeoutMs);
  try {
    return await use(session);
  } finally {
    await session.close();
  }
}
