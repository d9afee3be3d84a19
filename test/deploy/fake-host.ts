import { Readable, type Duplex } from "node:stream";
import { TransportError } from "../../src/errors";
import { arrivedCommand, type DeployDependencies } from "../../src/deploy/deploy";
import type { Host, RunOptions, RunResult } from "../../src/deploy/host";
import type { TargetSystem } from "../../src/deploy/inspection";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import { VirtualClock } from "./virtual-clock";
import { confirmCommand, planActivation } from "../../src/deploy/activation";
import { parseActivationState, readStateCommand, renderActivationState } from "../../src/deploy/activation-state";
import { planCopy, type CopyPlan, type CopyReport } from "../../src/nix/serve/copy";
import type { PathInfo, StoreSource } from "../../src/nix/store-source";
import type { LocalSystem } from "../../src/nix/system";

/** What a fake host answers to a command: a result, an error (the transport failed), or never (a hang). */
export type Answer = Partial<RunResult> | Error | "hang";

export const OLD = "/nix/store/0000000000000000000000000000000a-nixos-system-old";
export const NEW = "/nix/store/0000000000000000000000000000000b-nixos-system-new";

/** A NixOS host on generation 4 running OLD, as the inspect command reports it. */
export function inspection(target: Partial<TargetSystem> = {}): string {
  const t = { system: "x86_64-linux", nix: true, nixos: true, systemd: false, currentSystem: OLD, profileGeneration: 4, profileSystem: OLD, ...target };
  return [
    `machine=${t.system.split("-")[0]}`,
    `nix=${t.nix ? 1 : 0}`,
    `nixos=${t.nixos ? 1 : 0}`,
    `systemd=${t.systemd ? 1 : 0}`,
    ...(t.currentSystem ? [`current=${t.currentSystem}`] : []),
    ...(t.profileGeneration !== undefined ? [`profile=system-${t.profileGeneration}-link profileSystem=${t.profileSystem}`] : []),
  ].join("\n");
}

/**
 * A recording fake of the Host seam: every command run (on this connection or a reconnection) is logged in order,
 * and answered by the first responder whose pattern matches. Unmatched commands succeed with no output.
 */
export class FakeHost implements Host {
  readonly name: string;
  readonly log: string[];
  closed = 0;
  copies = 0;
  reconnects = 0;
  copyFailure?: Error;
  reconnectFailure?: Error;

  constructor(
    private readonly responders: Array<[RegExp | string, Answer | ((command: string) => Answer)]>,
    shared?: { log: string[]; name: string },
  ) {
    this.log = shared?.log ?? [];
    this.name = shared?.name ?? "root@198.51.100.7:22";
  }

  /** What each command got on stdin, by its index in `log`. */
  readonly stdin = new Map<number, Buffer>();

  async run(command: string, options: RunOptions = {}): Promise<RunResult> {
    this.log.push(command);
    if (options.stdin !== undefined) this.stdin.set(this.log.length - 1, options.stdin);
    const found = this.responders.find(([pattern]) => (typeof pattern === "string" ? command === pattern : pattern.test(command)));
    const answer = found === undefined ? {} : typeof found[1] === "function" ? found[1](command) : found[1];
    if (answer === "hang") return new Promise(() => undefined);
    if (answer instanceof Error) throw answer;
    return { exitCode: 0, stdout: "", stderr: "", ...answer };
  }

  async copyClosure(_source: StoreSource, paths: readonly string[]): Promise<CopyReport> {
    this.copies++;
    this.log.push(`copy ${paths.join(" ")}`);
    if (this.copyFailure) throw this.copyFailure;
    return { pathsInClosure: 3, pathsAlreadyValid: 1, pathsCopied: 2, bytesSent: 2048, wireBytes: 2300, durationMs: 1 };
  }

  /** Paths the fake host's store has, for planCopy (dry runs). */
  validPaths = new Set<string>();

  async planCopy(source: StoreSource, paths: readonly string[]): Promise<CopyPlan> {
    this.log.push(`plan-copy ${paths.join(" ")}`);
    return planCopy(await source.closure(paths), this.validPaths);
  }

  /** Files the fake host has, for readFile. */
  files = new Map<string, Buffer>();

  async readFile(path: string, range: { readonly start: number; readonly length: number }): Promise<Readable> {
    this.log.push(`read ${path} ${range.start}+${range.length}`);
    const content = this.files.get(path);
    if (content === undefined || content.length < range.start + range.length) throw new Error(`${this.name}: no ${path} of that length`);
    return Readable.from([content.subarray(range.start, range.start + range.length)]);
  }

  /** The fake host's own store as a source (a build host's): its closures are what `storePaths` lists. */
  storePaths: PathInfo[] = [];

  async openStore(): Promise<StoreSource> {
    this.log.push("open-store");
    const paths = this.storePaths;
    return { closure: async () => paths, dumpPath: async () => undefined, close: async () => undefined };
  }

  /** What `forwardTcp` answers with: a stream the test drives (an HTTP reply), or a refusal. */
  forward?: (address: string, port: number) => Duplex | Error;

  async forwardTcp(address: string, port: number): Promise<Duplex> {
    this.log.push(`forward ${address}:${port}`);
    const answer = this.forward?.(address, port) ?? new TransportError(`${this.name} refused a TCP connection to ${address}:${port}`);
    if (answer instanceof Error) throw answer;
    return answer;
  }

  async reconnect(): Promise<Host> {
    this.reconnects++;
    this.log.push("reconnect");
    if (this.reconnectFailure) throw this.reconnectFailure;
    return new FakeHost(this.responders, { log: this.log, name: this.name });
  }

  async close(): Promise<void> {
    this.closed++;
  }
}

/** A protocol command as built for any activation id: its text with the id free. */
function anyId(command: string, flags = ""): RegExp {
  const escaped = command.replace(/[.*+?^${}()|[\]\\]/g, "\\$&");
  return new RegExp(`^${escaped.replaceAll("FAKEID", "[0-9a-f]+")}$`, flags);
}

/** The commands of the detached activation protocol, as root runs them, from the builders themselves (activation.ts). */
export const START = /^sh -c 'safe_dir\(\)[\s\S]*\nexec setsid -f sh -c /;
export const READ_STATE = anyId(readStateCommand("FAKEID"));
export const READ_LOG = anyId(planActivation({
  before: { system: "x86_64-linux", nix: true, nixos: true, systemd: false }, toplevel: NEW, action: "switch", user: "root",
  lockTimeoutSeconds: 1, holder: "test", id: "FAKEID",
}).readLog);
export const CONFIRM = anyId(confirmCommand("FAKEID", { sudo: false }));

/** What readState prints for an activation that got this far (written by the protocol's own renderActivationState); `started` defaults to OLD on generation 4. */
export function activationState(state: {
  lockWait?: string;
  /** A recorded state line as the script writes it, or false for none yet. */
  started?: string | false;
  after?: string;
  /** switch-to-configuration's exit code, or a status word. */
  status?: string;
  rolledBack?: string;
  decided?: boolean;
  done?: boolean;
  /** The script still runs. @default - until it is done */
  alive?: boolean;
} = {}): string {
  const started = state.started ?? `profile=system-4-link current=${OLD} profileSystem=${OLD}`;
  // the values as the script writes them, read by the protocol's own parser, so the fake cannot hold what no host does
  const written = parseActivationState([
    ...(started !== false ? [`started ${started}`] : []),
    ...(state.after !== undefined ? [`after ${state.after}`] : []),
    ...(state.status !== undefined ? [`status ${state.status}`] : []),
    ...(state.rolledBack !== undefined ? [`rolled-back ${state.rolledBack}`] : []),
  ].join("\n"));
  if (written.garbled.length > 0) throw new Error(`no activation writes ${written.garbled.join(", ")} like that`);
  return renderActivationState({
    ...written,
    waitingFor: state.lockWait,
    running: true,
    alive: state.alive ?? !state.done,
    decided: state.decided === true,
    done: state.done === true,
  });
}

/** Answers successive state reads with these states; the last one repeats. */
export function states(...answers: Answer[]): () => Answer {
  let read = 0;
  return () => answers[Math.min(read++, answers.length - 1)];
}

/** Responders for a healthy host: inspected before (OLD, generation 4) and after (NEW, generation 5). */
export function healthyHost(extra: Array<[RegExp | string, Answer | ((command: string) => Answer)]> = []): FakeHost {
  let inspections = 0;
  return new FakeHost([
    ...extra,
    [INSPECT_COMMAND, () => ({ stdout: inspections++ === 0 ? inspection() : inspection({ currentSystem: NEW, profileGeneration: 5, profileSystem: NEW }) })],
    [READ_STATE, { stdout: activationState({ status: "0", done: true }) }],
    [READ_LOG, { stdout: "activating the configuration...\n" }],
  ]);
}

export interface FakeWorld {
  readonly deps: DeployDependencies;
  readonly host: FakeHost;
  readonly calls: string[];
}

/** Dependencies that build NEW for x86_64-linux and connect to `host`. */
export function fakeDependencies(host: FakeHost, overrides: Partial<DeployDependencies> = {}): FakeWorld {
  const calls: string[] = [];
  const system: LocalSystem = { drvPath: "/nix/store/0000000000000000000000000000000c-nixos-system-new.drv", outPath: NEW, system: "x86_64-linux" };
  const store: StoreSource = {
    closure: async () => [],
    dumpPath: async () => undefined,
    close: async () => undefined,
  };
  return {
    host,
    calls,
    deps: {
      build: async (source) => {
        calls.push(`build ${source.kind}`);
        return system;
      },
      instantiate: async (source) => {
        calls.push(`instantiate ${source.kind}`);
        return { ...system, drvPath: system.drvPath! };
      },
      openStore: async () => store,
      connect: async (target) => {
        calls.push(`connect ${target.user ?? "root"}@${target.host}`);
        return host;
      },
      // every deadline and poll on virtual time: no test waits for one
      clock: new VirtualClock(),
      ...overrides,
    },
  };
}

/** The check after the copy that the new system really is in the host's store. */
export const ARRIVED = arrivedCommand(NEW);
