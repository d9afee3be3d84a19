// nixos-rebuild's --build-host: the derivations go to another machine, it builds them (substituting from the binary
// cache too), and its store is the source of the copies and the cache upload: the outputs never enter this machine's
// store (they pass through it as a stream when they go on to the hosts or the cache).
import { BuildError, DeployError } from "../errors";
import type { LocalSystem } from "../nix/system";
import type { StoreSource } from "../nix/store-source";
import { shellQuote } from "../shell";
import type { TargetSpec } from "../spec/target";
import type { Host } from "./host";
import { during } from "./phases";
import type { HostDependencies } from "./request";

/** A build host after its build: its store, opened as often as a copy or an upload needs it. */
export interface BuiltOnHost {
  readonly name: string;
  /** The connection to the build host, for reading its outputs (an image file). */
  readonly host: Host;
  openStore(): Promise<StoreSource>;
  close(): Promise<void>;
}

/** Build output is bounded like any reply of a host that is not trusted; the outputs' paths come first on stdout. */
const BUILD_OUTPUT_BYTES = 16 * 1024 * 1024;

/** What the build host runs: realise every derivation (with the cache as an extra substituter, when there is one). */
export function buildHostCommand(drvPaths: readonly string[], cache?: { readonly substituter: string; readonly publicKey: string }): string {
  return [
    "nix-store", "--realise",
    ...(cache !== undefined ? ["--option", "extra-substituters", cache.substituter, "--option", "extra-trusted-public-keys", cache.publicKey] : []),
    ...drvPaths,
  ].map(shellQuote).join(" ");
}

/**
 * Copies the derivations of `systems` to the build host (only what it lacks), builds them there and checks that each
 * system's output was built. The connection stays open for the copies from its store; close it after them.
 */
export async function buildOnBuildHost(
  target: TargetSpec,
  systems: readonly LocalSystem[],
  deps: HostDependencies,
  options: { readonly cache?: { readonly substituter: string; readonly publicKey: string }; readonly replyTimeoutMs: number; readonly onNotice?: (message: string) => void },
): Promise<BuiltOnHost> {
  const drvPaths = [...new Set(systems.map((s) => s.drvPath!))];
  const host: Host = await during("connect", `connecting to the build host ${target.host}`, () => deps.connect(target, options.onNotice));
  try {
    const store = await deps.openStore();
    try {
      await during("build", `copying the derivations to the build host ${host.name}`, () => host.copyClosure(store, drvPaths, { replyTimeoutMs: options.replyTimeoutMs }));
    } finally {
      await store.close();
    }
    const command = buildHostCommand(drvPaths, options.cache);
    const result = await during("build", `building on ${host.name}`, () => host.run(command, { maxOutputBytes: BUILD_OUTPUT_BYTES }));
    if (result.exitCode !== 0) {
      throw new BuildError(`building on the build host ${host.name} failed`, {
        command, stderr: result.stderr, exitCode: result.exitCode,
        hint: "the build host builds for its own system type: it must be able to build the hosts' (e.g. an aarch64 build host for aarch64 hosts)",
      });
    }
    const built = new Set(result.stdout.split("\n").map((line) => line.trim()));
    const missing = systems.filter((s) => !built.has(s.outPath)).map((s) => s.outPath);
    if (missing.length > 0) throw new BuildError(`the build host ${host.name} did not build ${missing.join(", ")}`, { command });
    return { name: host.name, host, openStore: () => host.openStore({ replyTimeoutMs: options.replyTimeoutMs }), close: () => host.close() };
  } catch (err) {
    await host.close();
    throw err instanceof DeployError ? err : new BuildError(`the build host ${host.name}: ${(err as Error).message}`, { cause: err });
  }
}
