import type { PathInfo, StoreSource } from "../store-source";
import type { TransportReport } from "./copy-policy";
import type { AddToStoreStream, ServeSession } from "./session";

export interface CopyProgress {
  readonly pathsDone: number;
  readonly pathsTotal: number;
  readonly bytesSent: number;
  readonly bytesTotal: number;
  readonly currentPath?: string;
}

export interface CopyReport {
  /** Closure size of what was asked for. */
  readonly pathsInClosure: number;
  /** Paths the target already had. */
  readonly pathsAlreadyValid: number;
  readonly pathsCopied: number;
  /** NAR bytes sent to the target. */
  readonly bytesSent: number;
  /** Bytes written into SSH channels (compressed where compressed, with the protocol's framing). */
  readonly wireBytes: number;
  /** How the bytes travelled (one channel or the spool, compression); absent for copies not made over a shell. */
  readonly transport?: TransportReport;
  readonly durationMs: number;
}

export interface CopyPlan {
  /** The whole closure asked for, dependencies first. */
  readonly closure: readonly PathInfo[];
  /** Paths to send, dependencies first. */
  readonly send: readonly PathInfo[];
  readonly pathsInClosure: number;
  readonly pathsAlreadyValid: number;
  readonly bytesToSend: number;
}

/** Which paths of the closure the target lacks, in the order they must arrive. */
export function planCopy(closure: readonly PathInfo[], validOnTarget: ReadonlySet<string>): CopyPlan {
  const send = closure.filter((info) => !validOnTarget.has(info.path));
  return {
    closure,
    send,
    pathsInClosure: closure.length,
    pathsAlreadyValid: closure.length - send.length,
    bytesToSend: send.reduce((sum, info) => sum + info.narSize, 0),
  };
}

export interface CopyClosureOptions {
  readonly source: StoreSource;
  readonly target: ServeSession;
  readonly paths: readonly string[];
  /** The closure of `paths` when the caller already has it from the source (saves asking again). */
  readonly closure?: readonly PathInfo[];
  readonly useSubstitutes?: boolean;
  readonly onProgress?: (progress: CopyProgress) => void;
}

/** What copyClosure would send, found with one QueryValidPaths and nothing written (never substitutes). */
export async function planClosureCopy(source: StoreSource, target: ServeSession, paths: readonly string[]): Promise<CopyPlan> {
  const closure = await source.closure(paths);
  return planCopy(closure, await target.queryValidPaths(closure.map((i) => i.path)));
}

/**
 * nix-copy-closure semantics over one serve session: the closure from the source, one QueryValidPaths for all of it,
 * then AddToStoreNar for each missing path, dependencies first, without waiting a round trip per path.
 */
export async function copyClosure(options: CopyClosureOptions): Promise<CopyReport> {
  const started = Date.now();
  const closure = options.closure ?? await options.source.closure(options.paths);
  // lock: what the target has stays out of its garbage collector's reach until this import ends
  const valid = await options.target.queryValidPaths(closure.map((i) => i.path), { substitute: options.useSubstitutes, lock: true });
  const sent = await sendMissing(options.target, planCopy(closure, valid), options.source, { onProgress: options.onProgress });
  return { ...sent, durationMs: Date.now() - started };
}

/**
 * Sends what a plan names through a session that already answered its QueryValidPaths (or through `stream`), and
 * reports it; the duration is the caller's, who knows when the copy began.
 */
export async function sendMissing(
  target: ServeSession,
  plan: CopyPlan,
  source: StoreSource,
  options: { readonly stream?: AddToStoreStream; readonly onProgress?: (progress: CopyProgress) => void },
): Promise<Omit<CopyReport, "durationMs">> {
  const before = target.bytesWritten;
  const bytesSent = await sendPlan(target, plan, source, options);
  return {
    pathsInClosure: plan.pathsInClosure,
    pathsAlreadyValid: plan.pathsAlreadyValid,
    pathsCopied: plan.send.length,
    bytesSent,
    wireBytes: target.bytesWritten - before + (options.stream?.bytesWritten ?? 0),
  };
}

/** Sends the paths a plan names through a session that already answered its QueryValidPaths; returns the NAR bytes. */
async function sendPlan(
  target: ServeSession,
  plan: CopyPlan,
  source: StoreSource,
  options: { readonly stream?: AddToStoreStream; readonly onProgress?: (progress: CopyProgress) => void },
): Promise<number> {
  let bytesSent = 0;
  let pathsDone = 0;
  const progress = (currentPath?: string) =>
    options.onProgress?.({
      pathsDone,
      pathsTotal: plan.send.length,
      bytesSent,
      bytesTotal: plan.bytesToSend,
      currentPath,
    });
  progress();
  await target.addToStoreNars(
    plan.send.map((info) => ({
      info,
      nar: (sink) =>
        source.dumpPath(info, (chunk) => {
          bytesSent += chunk.length;
          progress(info.path);
          return sink(chunk);
        }),
    })),
    {
      stream: options.stream,
      onAdded: () => {
        pathsDone++;
        progress();
      },
    },
  );
  return bytesSent;
}
