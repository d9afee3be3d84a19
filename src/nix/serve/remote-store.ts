import { dependencyOrder } from "../local-store";
import type { RemoteShell } from "../remote-shell";
import type { NarSink, PathInfo, StoreSource } from "../store-source";
import { openSession } from "./remote-copy";
import type { ServeSession } from "./session";

/**
 * Another machine's store as the source of a copy or a cache upload (a build host's outputs), through its
 * `nix-store --serve` without --write: closures and infos from its Nix, NARs dumped by its Nix (DumpStorePath) and
 * passed on as they arrive, never kept on this machine. The protocol answers in order, so dumps take turns.
 */
export class RemoteStore implements StoreSource {
  private turn: Promise<unknown> = Promise.resolve();

  private constructor(private readonly session: ServeSession) {}

  static async open(shell: RemoteShell, replyTimeoutMs?: number): Promise<RemoteStore> {
    return new RemoteStore(await openSession(shell, "nix-store --serve", replyTimeoutMs));
  }

  closure(paths: readonly string[]): Promise<PathInfo[]> {
    return this.inTurn(async () => {
      const closure = await this.session.queryClosure(paths);
      const infos = await this.session.queryPathInfos(closure);
      const missing = closure.filter((p) => !infos.some((i) => i.path === p));
      if (missing.length > 0) throw new Error(`the store has no info for ${missing.join(", ")}`);
      return dependencyOrder(infos);
    });
  }

  dumpPath(info: PathInfo, sink: NarSink): Promise<void> {
    return this.inTurn(() => this.session.dumpStorePath(info, sink));
  }

  close(): Promise<void> {
    return this.inTurn(() => this.session.close());
  }

  private inTurn<T>(step: () => Promise<T>): Promise<T> {
    const result = this.turn.then(step);
    this.turn = result.catch(() => undefined);
    return result;
  }
}
