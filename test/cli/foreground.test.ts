import { spawn } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";

const ROOT = join(__dirname, "..", "..");

/** runForeground in a process of its own, as the CLI runs a VM or a test driver. */
describe("runForeground", () => {
  const dir = mkdtempSync(join(tmpdir(), "foreground-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  function start(script: string) {
    const program = `import { runForeground } from ${JSON.stringify(join(ROOT, "src", "cli", "foreground"))};
runForeground("/bin/sh", ["-c", ${JSON.stringify(script)}], process.env).then((code) => { console.log("code " + code); });`;
    const child = spawn(join(ROOT, "node_modules", ".bin", "tsx"), ["-e", program], { stdio: ["ignore", "pipe", "inherit"] });
    let stdout = "";
    child.stdout.on("data", (c: Buffer) => (stdout += c.toString()));
    return { child, done: new Promise<string>((resolve) => child.on("close", () => resolve(stdout))) };
  }

  it("resolves to the program's exit code", async () => {
    expect(await start("exit 3").done).toBe("code 3\n");
  });

  it("passes a TERM sent to it alone on to the program, and waits for it to finish", async () => {
    const marker = join(dir, "got-term");
    const { child, done } = start(`trap 'echo term > ${marker}; exit 7' TERM; echo ready; while :; do sleep 0.05; done`);
    // the program is running once tsx has started it (its "ready" goes to our inherited stdout)
    await new Promise<void>((resolve) => child.stdout.once("data", () => resolve()));
    child.kill("SIGTERM");
    expect(await done).toBe("ready\ncode 7\n");
    expect(readFileSync(marker, "utf8")).toBe("term\n");
  });
});
