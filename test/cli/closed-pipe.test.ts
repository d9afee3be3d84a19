import { spawn } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const MODULE = join(__dirname, "..", "..", "src", "cli", "closed-pipe.ts");

/** Runs a script that writes 4 MiB to stdout, whose reader closes the pipe after the first chunk (`| head -c 1`). */
function writeIntoClosedPipe(handled: boolean): Promise<{ code: number | null; stderr: string }> {
  const script = `
    ${handled ? `require(${JSON.stringify(MODULE)}).ignoreClosedPipes(process.stdout, process.stderr);` : ""}
    const chunk = "x".repeat(65536) + "\\n";
    let written = 0;
    const next = () => {
      if (written++ < 64) process.stdout.write(chunk, next);
      else { process.stderr.write("finished\\n"); process.exitCode = 3; }
    };
    next();
  `;
  return new Promise((resolve) => {
    const child = spawn(process.execPath, ["-r", "tsx/cjs", "-e", script], { stdio: ["ignore", "pipe", "pipe"] });
    let stderr = "";
    child.stdout.once("data", () => child.stdout.destroy());
    child.stderr.on("data", (c: Buffer) => (stderr += c));
    child.on("close", (code) => resolve({ code, stderr }));
  });
}

describe("a closed stdout (| head -1)", () => {
  it("ends the output quietly: the run goes on to its own end and exit code, no stack trace", async () => {
    const result = await writeIntoClosedPipe(true);
    expect(result.stderr).toBe("finished\n");
    expect(result.code).toBe(3);
  });

  it("without the handler, Node crashes with an unhandled EPIPE (what users saw)", async () => {
    const result = await writeIntoClosedPipe(false);
    expect(result.stderr).toMatch(/Unhandled 'error' event[\s\S]*write EPIPE/);
    expect(result.code).toBe(1);
  });
});
