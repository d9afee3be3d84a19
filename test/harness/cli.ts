import { spawn } from "node:child_process";
import { join } from "node:path";

/** The built CLI, as Terraform's local-exec and users run it (tests build first: `npm run build`). */
export const CLI = join(__dirname, "..", "..", "lib", "cli", "bin.js");

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
  /** The last stdout line parsed as JSON (what --json prints), when it is JSON. */
  json?: Record<string, unknown>;
}

/**
 * Runs `cdktf-nixos ARGS` in a child process. Asynchronous, so servers living in the test's own event loop (the EC2
 * double, a latency proxy) keep answering while it runs.
 */
export function cdktfNixos(args: string[], env: Record<string, string> = {}): Promise<CliResult> {
  return new Promise((resolve) => {
    // no binary cache is reachable here; every build would spend seconds retrying one
    const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, NIX_CONFIG: "substituters =", ...env } });
    let stdout = "";
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c));
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    child.on("close", (code) => {
      let json: Record<string, unknown> | undefined;
      try {
        json = JSON.parse(stdout.trim().split("\n").at(-1) ?? "") as Record<string, unknown>;
      } catch {
        json = undefined;
      }
      resolve({ code: code ?? -1, stdout, stderr, json });
    });
  });
}
