// `exec`: one command on every selected host of a stack, in parallel (colmena's `exec`).
import { EXIT_CODES } from "../errors";
import type { HostDependencies } from "../deploy/request";
import { shellQuote } from "../shell";
import { readyHosts, type PlannedHost } from "./push";
import { eachAtMost } from "../pool";

export interface ExecOutcome {
  readonly name: string;
  /** The command's exit code; undefined when it did not run (not created, unreachable, timed out). */
  readonly exitCode?: number;
  readonly stdout: string;
  readonly stderr: string;
  /** Why it did not run, or did not finish. */
  readonly error?: string;
  /** The host was connected to (the command started, or failed to finish: timed out, printed too much, connection lost). */
  readonly reached: boolean;
  readonly durationMs: number;
}

export interface ExecReport {
  readonly hosts: readonly ExecOutcome[];
  readonly exitCode: number;
}

/** `exec`'s exit codes, documented in the README. */
export const EXEC_EXIT_CODES = {
  ok: EXIT_CODES.ok,
  /** A host could not be reached (or is not created): the command did not run there. Outranks a failed command. */
  unreachable: EXIT_CODES.connect,
  /** The command ran everywhere it was asked to, and exited non-zero (or timed out) on at least one host. */
  failed: 14,
} as const;

/** The remote command line: each word quoted for the login shell, so argv reaches the host as given. */
export function execCommandLine(argv: readonly string[]): string {
  return argv.map(shellQuote).join(" ");
}

export function execExitCode(hosts: readonly ExecOutcome[]): number {
  if (hosts.some((h) => !h.reached)) return EXEC_EXIT_CODES.unreachable;
  return hosts.every((h) => h.exitCode === 0) ? EXEC_EXIT_CODES.ok : EXEC_EXIT_CODES.failed;
}

/** What one host's output may be at most: more fails that host (a command printing without end cannot fill memory). */
export const EXEC_MAX_OUTPUT_BYTES = 16 * 1024 * 1024;

/**
 * Runs `argv` on every ready host of the plan as its login user, at most `parallel` at once; each host's outcome is
 * handed to `onHost` as it finishes.
 */
export async function execOnHosts(
  plan: readonly PlannedHost[],
  argv: readonly string[],
  deps: Pick<HostDependencies, "connect">,
  options: { readonly parallel: number; readonly timeoutSeconds?: number; readonly onHost?: (outcome: ExecOutcome) => void },
): Promise<ExecReport> {
  const command = execCommandLine(argv);
  const outcomes = new Map<string, ExecOutcome>();
  const done = (outcome: ExecOutcome) => {
    outcomes.set(outcome.name, outcome);
    options.onHost?.(outcome);
  };
  for (const host of plan) if (!host.ready) done({ name: host.name, stdout: "", stderr: "", error: `not created: ${host.reason}`, reached: false, durationMs: 0 });
  await eachAtMost(options.parallel, readyHosts(plan), async (host) => {
    const started = Date.now();
    let connection;
    try {
      connection = await deps.connect(host.request.target);
    } catch (err) {
      done({ name: host.name, stdout: "", stderr: "", error: `unreachable: ${(err as Error).message}`, reached: false, durationMs: Date.now() - started });
      return;
    }
    try {
      const timeoutMs = options.timeoutSeconds === undefined ? undefined : options.timeoutSeconds * 1000;
      const result = await connection.run(command, { timeoutMs, maxOutputBytes: EXEC_MAX_OUTPUT_BYTES });
      done({ name: host.name, exitCode: result.exitCode, stdout: result.stdout, stderr: result.stderr, reached: true, durationMs: Date.now() - started });
    } catch (err) {
      done({ name: host.name, stdout: "", stderr: "", error: (err as Error).message, reached: true, durationMs: Date.now() - started });
    } finally {
      await connection.close();
    }
  });
  const hosts = plan.map((h) => outcomes.get(h.name)!);
  return { hosts, exitCode: execExitCode(hosts) };
}
