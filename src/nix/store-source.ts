import type { ServePathInfo } from "./serve/codec";

/** Store metadata of one path, as Nix reports it (never computed by us). */
export type PathInfo = ServePathInfo;

/** Receives NAR bytes; a returned promise means "wait before sending more". */
export type NarSink = (chunk: Buffer) => Promise<void> | void;

/** The store a closure is copied from. NARs and metadata come from Nix itself. */
export interface StoreSource {
  /** The closure of `paths` with each path's info, in dependency order (every path after its references). */
  closure(paths: readonly string[]): Promise<PathInfo[]>;
  /** Streams the NAR serialisation of one path (exactly `info.narSize` bytes) into `sink`. */
  dumpPath(info: PathInfo, sink: NarSink): Promise<void>;
  close(): Promise<void>;
}
