import { spawn, type ChildProcess } from "node:child_process";
import { join } from "node:path";
import { PassThrough } from "node:stream";
import type { Output } from "../../src/cli/progress";

/** The built CLI, as Terraform's local-exec and users run it (tests build first: `npm run build`). */
export const CLI = join(__dirname, "..", "..", "lib", "cli", "bin.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON (what --json prints), when it is JSON. */
  json?: Record<string, unknown>;
}

/** A CLI run in progress: its process, its stderr so far, and its result once it ends. */
export interface RunningCli {
  readonly child: ChildProcess;
  readonly result: Promise<CliResult>;
  stderr(): string;
  /** Resolves once stderr matches `pattern` (rejects if the process ends first). */
  waitForStderr(pattern: RegExp): Promise<void>;
}

/**
 * Starts `cdktf-nixos ARGS` in a child process. Asynchronous, so servers living in the test's own event loop (the EC2
 * double, a latency proxy) keep answering while it runs.
 */
export function startCdktfNixos(args: string[], env: Record<string, string> = {}, options: { cwd?: string } = {}): RunningCli {
  // no binary cache is reachable here; every build would spend seconds retrying one
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NIX_CONFIG: "substituters =", ...env }, cwd: options.cwd });
  let stdout = "";
  let stderr = "";
  const waiters: Array<{ pattern: RegExp; resolve: () => void; reject: (err: Error) => void }> = [];
  const check = () => {
    for (const waiter of [...waiters]) {
      if (waiter.pattern.test(stderr)) {
        waiters.splice(waiters.indexOf(waiter), 1);
        waiter.resolve();
      }
    }
  };
  child.stdout!.on("data", (c: Buffer) => (stdout += c));
  child.stderr!.on("data", (c: Buffer) => {
    stderr += c;
    check();
  });
  const result = new Promise<CliResult>((resolve) => {
    child.on("close", (code, signal) => {
      for (const waiter of waiters.splice(0)) waiter.reject(new Error(`cdktf-nixos ended (${code ?? signal}) before stderr matched ${waiter.pattern}:\n${stderr}`));
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? (signal === "SIGKILL" ? 137 : -1), stdout, stderr, json });
    });
  });
  return {
    child,
    result,
    stderr: () => stderr,
    waitForStderr: (pattern) => new Promise((resolve, reject) => {
      waiters.push({ pattern, resolve, reject });
      check();
    }),
  };
}

/** Runs `cdktf-nixos ARGS` to the end. */
export function cdktfNixos(args: string[], env: Record<string, string> = {}, options: { cwd?: string } = {}): Promise<CliResult> {
  return startCdktfNixos(args, env, options).result;
}

/** A non-terminal Output for running the CLI (or a reporter) in-process, with what was written to each stream. */
export function capturedOutput(): { output: Output; stdout(): string; stderr(): string } {
  const stdout = new PassThrough();
  const stderr = new PassThrough();
  let out = "";
  let err = "";
  stdout.on("data", (c: Buffer) => (out += c));
  stderr.on("data", (c: Buffer) => (err += c));
  return { output: { stdout, stderr, interactive: false }, stdout: () => out, stderr: () => err };
}
