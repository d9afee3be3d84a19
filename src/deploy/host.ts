import type { Duplex, Readable } from "node:stream";
import type { CopyPlan, CopyProgress, CopyReport } from "../nix/serve/copy";
import type { CompressMode } from "../nix/serve/copy-policy";
import type { StoreSource } from "../nix/store-source";

export interface RunResult {
  readonly exitCode: number;
  readonly stdout: string;
  readonly stderr: string;
}

export interface RunOptions {
  /** Bytes streamed into the remote process's stdin (never its argv), then end of input. */
  readonly stdin?: Buffer;
  /** Fail with a TransportError (and close the command's channel) when it has not finished by then. */
  readonly timeoutMs?: number;
  /** Fail with a TransportError when it prints more than this on stdout or stderr. @default 16 MiB */
  readonly maxOutputBytes?: number;
}

export interface CopyOptions {
  /** Let the target substitute missing paths from its binary caches (nix-copy-closure --use-substitutes). */
  readonly useSubstitutes?: boolean;
  /** zstd on the data stream: always, never, or when the link is slower than zstd. @default "auto" */
  readonly compress?: CompressMode;
  /** Data channels a far target may get at most. @default MAX_DATA_CHANNELS (8) */
  readonly maxChannels?: number;
  /** How long a reply may keep the copy waiting with no byte moving either way. @default - no limit */
  readonly replyTimeoutMs?: number;
  readonly onProgress?: (progress: CopyProgress) => void;
}

export interface ReconnectOptions {
  /** Keep retrying an unreachable host this long, in milliseconds. */
  readonly retryForMs: number;
}

/**
 * A target as orchestration sees it: transport only (colmena's `Host`). It runs what it is given and knows nothing
 * of activation, rollback or confirmation; ssh2 lives behind it.
 *
 * Failures: `run` resolves with the exit code of a command that ran; it rejects with a TransportError when the
 * connection fails. `copyClosure` rejects with the serve session's ServeError or a TransportError.
 */
export interface Host {
  /** How the host is named in messages, e.g. "root@10.0.0.5:22". */
  readonly name: string;
  run(command: string, options?: RunOptions): Promise<RunResult>;
  /** Copies the closure of `paths` from `source` (nix-copy-closure semantics: only what the host lacks). */
  copyClosure(source: StoreSource, paths: readonly string[], options?: CopyOptions): Promise<CopyReport>;
  /** What `copyClosure` would send, read from the host's store without writing to it. */
  planCopy(source: StoreSource, paths: readonly string[], options?: Pick<CopyOptions, "replyTimeoutMs">): Promise<CopyPlan>;
  /**
   * `length` bytes of a file on the host from `start`, as a stream that fails unless exactly that many arrive (an image
   * file in a build host's store, read part by part for an upload).
   */
  readFile(path: string, range: { readonly start: number; readonly length: number }): Promise<Readable>;
  /** The host's own store as the source of a copy (a build host's outputs), read-only. */
  openStore(options?: Pick<CopyOptions, "replyTimeoutMs">): Promise<StoreSource>;
  /**
   * A TCP connection the host itself opens to `address:port` (a direct-tcpip channel, as `ssh -L` makes): to reach
   * what only the host can, e.g. its own `localhost`. Rejects with a TransportError when the host refuses.
   */
  forwardTcp(address: string, port: number): Promise<Duplex>;
  /** A second, fresh connection to the same host with the same checks (the host key must now be known). */
  reconnect(options: ReconnectOptions): Promise<Host>;
  close(): Promise<void>;
}
