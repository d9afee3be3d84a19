/**
 * Every decision about how a closure travels, in one place (pure): how many channels, whether the spool is used,
 * whether a segment is compressed. The copy code only asks.
 */

export type CompressMode = "auto" | "zstd" | "none";
export const COMPRESS_MODES: readonly CompressMode[] = ["auto", "zstd", "none"];

/** sshd's fixed receive window per session channel (OpenSSH CHAN_SES_WINDOW_DEFAULT): one channel carries this per round trip. */
export const SSHD_CHANNEL_WINDOW_BYTES = 2 * 1024 * 1024;
/** What we aim to carry: beyond it the copy is bound by the CPUs at both ends, not by windows. */
export const TARGET_BYTES_PER_SECOND = 320 * 1024 * 1024;
/** sshd's default MaxSessions is 10: the importer, eight data channels and one to spare. */
export const MAX_DATA_CHANNELS = 8;
/** Segments a data channel carries; each is one file in the spool. */
export const SEGMENT_BYTES = 2 * 1024 * 1024;
/** Segments sent but not yet read by the importer, at most: bounds the spool on the target's disk. */
export const SPOOL_SEGMENTS = 24;
/**
 * Less than this to send goes over the one channel even far away: the spool's extra round trips (its importer's own
 * query, the first segment's announcement) cost about what parallel channels save on 16 windows' worth (measured
 * 50 ms away: 24 MiB 1.1 s on one channel vs 1.1–1.6 s spooled; 64 MiB 2.2 s vs 1.3 s).
 */
export const SPOOL_MIN_BYTES = 16 * SSHD_CHANNEL_WINDOW_BYTES;

/** Whether a far copy that found `bytesToSend` missing goes through the spool (forced zstd always does). */
export function spoolPays(choice: TransportChoice, compress: CompressMode, bytesToSend: number): boolean {
  return choice.kind === "spooled" && (compress === "zstd" || bytesToSend >= SPOOL_MIN_BYTES);
}

/** Below this ratio a segment is sent as it is. */
export const MIN_COMPRESSION_RATIO = 1.15;

/** Data channels that keep a link with this round trip busy: one on a LAN, up to MAX_DATA_CHANNELS far away. */
export function dataChannelsFor(rttMs: number, maxChannels = MAX_DATA_CHANNELS): number {
  const wanted = Math.ceil((TARGET_BYTES_PER_SECOND * Math.max(rttMs, 0)) / 1000 / SSHD_CHANNEL_WINDOW_BYTES);
  return Math.max(1, Math.min(maxChannels, wanted));
}

export interface TransportChoice {
  readonly kind: "direct" | "spooled";
  readonly dataChannels: number;
  /** Whether segments may be compressed (spooled only). */
  readonly compress: boolean;
  /** Why, for the report and for --verbose. */
  readonly reason: string;
}

/** How a copy travelled, for reports. */
export interface TransportReport extends TransportChoice {
  readonly rttMs: number;
  /** Spooled copies: segments sent, and how many of them compressed. */
  readonly segments: number;
  readonly compressedSegments: number;
}

export interface TransportInputs {
  readonly rttMs: number;
  readonly compress: CompressMode;
  readonly maxChannels: number;
  /** What the target has; undefined when it could not be asked. */
  readonly target?: { readonly exactFraming: boolean; readonly zstd: boolean };
  /** Whether zstd runs on the deploying machine; asked only when compression is possible (it runs a program). */
  readonly localZstd: () => boolean;
}

/**
 * One channel straight into `nix-store --serve --write` when one channel is enough and nothing is compressed; the
 * spool when the round trip needs several channels or compression is asked for. Throws when `--compress zstd` cannot
 * be honoured, before anything is sent.
 */
export function chooseTransport(inputs: TransportInputs): TransportChoice {
  const channels = dataChannelsFor(inputs.rttMs, inputs.maxChannels);
  const framing = inputs.target?.exactFraming === true;
  const canCompress = () => framing && inputs.target?.zstd === true && inputs.localZstd();
  if (inputs.compress === "zstd" && !canCompress()) {
    throw new CompressionUnavailableError(
      !inputs.localZstd()
        ? "--compress zstd needs zstd on this machine, and it is not on PATH"
        : inputs.target === undefined
          ? "--compress zstd needs a POSIX shell on the target to ask what it has, and its login shell could not run the probe"
          : !framing
          ? "--compress zstd needs a target whose head -c stops where told (GNU coreutils), and this one's does not"
          : "--compress zstd needs zstd on the target, and it is not on its PATH",
    );
  }
  const rtt = `${inputs.rttMs.toFixed(1)} ms round trip`;
  if (inputs.target === undefined) return { kind: "direct", dataChannels: 1, compress: false, reason: "the target's shell could not run the probe" };
  if (!framing) return { kind: "direct", dataChannels: 1, compress: false, reason: `${rtt}; the target cannot split a stream with head -c` };
  if (inputs.compress === "zstd") return { kind: "spooled", dataChannels: channels, compress: true, reason: `${rtt}; zstd asked for` };
  if (channels === 1) return { kind: "direct", dataChannels: 1, compress: false, reason: `${rtt}: one channel is not window-bound` };
  return {
    kind: "spooled",
    dataChannels: channels,
    compress: inputs.compress === "auto" && canCompress(),
    reason: `${rtt}: one channel would carry only ${Math.round(SSHD_CHANNEL_WINDOW_BYTES / 1048576 / (inputs.rttMs / 1000))} MiB/s`,
  };
}

export class CompressionUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "CompressionUnavailableError";
  }
}

/** What the copy has seen so far, for the per-segment decision. */
export interface CompressionEvidence {
  /** Raw size over compressed size of what was compressed (or sampled) lately; undefined before any. */
  readonly ratio?: number;
  /** What the link carried lately (wire bytes of segments that arrived whole, per second); undefined before any. */
  readonly linkBytesPerSecond?: number;
  /** Raw bytes per second the local zstd processes compress together; undefined before any. */
  readonly zstdBytesPerSecond?: number;
}

/**
 * Compress a segment when zstd shrinks it and the link is slower than zstd: then a compressed segment goes out at
 * min(zstd, link × ratio), which beats the link alone. Starts compressing: the spool is only used on links far
 * enough away to be slow, and the first segments measure both rates.
 */
export function shouldCompressSegment(allowed: boolean, mode: CompressMode, evidence: CompressionEvidence): boolean {
  if (!allowed || mode === "none") return false;
  if (mode === "zstd") return true;
  if (evidence.ratio !== undefined && evidence.ratio < MIN_COMPRESSION_RATIO) return false;
  if (evidence.linkBytesPerSecond === undefined || evidence.zstdBytesPerSecond === undefined) return true;
  return evidence.zstdBytesPerSecond > evidence.linkBytesPerSecond;
}
