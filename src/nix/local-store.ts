import { spawn } from "node:child_process";
import { dumpNar } from "./nar";
import { ServeSession, type ServeChannel } from "./serve/session";
import type { NarSink, PathInfo, StoreSource } from "./store-source";

/**
 * The local Nix store: closures and path infos come from Nix itself, through a local `nix-store --serve` speaking the
 * protocol the target speaks; NARs are written from the store's files (see nar.ts), which the target checks against
 * the narHash Nix registered.
 */
export class LocalStore implements StoreSource {
  private constructor(private readonly session: ServeSession) {}

  static async open(): Promise<LocalStore> {
    return new LocalStore(await ServeSession.open(spawnServe("nix-store", ["--serve"])));
  }

  async closure(paths: readonly string[]): Promise<PathInfo[]> {
    const closure = await this.session.queryClosure(paths);
    const infos = await this.session.queryPathInfos(closure);
    const missing = closure.filter((p) => !infos.some((i) => i.path === p));
    if (missing.length > 0) throw new Error(`the local store has no info for ${missing.join(", ")}`);
    return dependencyOrder(infos);
  }

  dumpPath(info: PathInfo, sink: NarSink): Promise<void> {
    return dumpNar(info.path, sink);
  }

  close(): Promise<void> {
    return this.session.close();
  }
}

/** Runs `nix-store ARGS` (a serve process) as a child; also what tests use to stand in for a target's store. */
export function spawnServe(nixStore: string, args: readonly string[]): ServeChannel {
  const child = spawn(nixStore, args, { stdio: ["pipe", "pipe", "pipe"] });
  const exited = new Promise<number | null>((resolve) => {
    child.once("exit", (code) => resolve(code));
    child.once("error", () => resolve(null));
  });
  return {
    input: child.stdin,
    output: child.stdout,
    errors: child.stderr,
    exited,
    command: [nixStore, ...args].join(" "),
    close: () => {
      child.stdin.end();
      // A serve process stopped in the middle of a NAR blocks writing it and never reads our EOF: end it.
      setTimeout(() => {
        if (child.exitCode === null && child.signalCode === null) child.kill("SIGTERM");
      }, 2000).unref();
    },
  };
}

/** Orders infos so that every path comes after the paths it references (self-references aside). */
export function dependencyOrder(infos: readonly PathInfo[]): PathInfo[] {
  const byPath = new Map(infos.map((i) => [i.path, i]));
  const done = new Set<string>();
  const ordered: PathInfo[] = [];
  const visit = (info: PathInfo, trail: Set<string>) => {
    if (done.has(info.path)) return;
    if (trail.has(info.path)) throw new Error(`reference cycle through ${info.path}`);
    trail.add(info.path);
    for (const ref of [...info.references].sort()) {
      const dep = byPath.get(ref);
      if (dep !== undefined && ref !== info.path) visit(dep, trail);
    }
    trail.delete(info.path);
    done.add(info.path);
    ordered.push(info);
  };
  for (const info of [...infos].sort((a, b) => a.path.localeCompare(b.path))) visit(info, new Set());
  return ordered;
}
