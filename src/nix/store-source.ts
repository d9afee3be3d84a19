import type { Readable } from "node:stream";

/** Store metadata of one path, as Nix reports it (never computed by us). */
export interface PathInfo {
  readonly path: string;
  /** Deriver .drv path, or undefined. */
  readonly deriver?: string;
  /** As Nix's serve protocol carries it, e.g. "sha256:1b8m...". */
  readonly narHash: string;
  readonly references: readonly string[];
  readonly narSize: number;
  readonly registrationTime: number;
  readonly ultimate: boolean;
  readonly sigs: readonly string[];
  /** Content address, or undefined for input-addressed paths. */
  readonly ca?: string;
}

/** The local store a closure is copied from. NARs and metadata come from Nix itself. */
export interface StoreSource {
  /** The closure of `paths`, in dependency order (every path after all its references). */
  closure(paths: readonly string[]): Promise<string[]>;
  pathInfos(paths: readonly string[]): Promise<Map<string, PathInfo>>;
  /** The NAR serialisation of one path, streamed. Calls are served in order. */
  dumpPath(path: string): Readable;
  close(): Promise<void>;
}
