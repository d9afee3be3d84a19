import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/program";
import { EXIT_CODES } from "../../src/errors";
import { capturedOutput } from "../harness/cli";

/** `vm` and `test` refuse a bad command line with one message (exit 2) before reading the project or building. */
describe("vm and test: bad input is refused with one clear message", () => {
  const dir = mkdtempSync(join(tmpdir(), "local-runs-bad-input-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, "fleet.py");
  writeFileSync(script, "start_all()\n");
  // no cdktf.json there: a row that got as far as reading the project would say so instead
  const project = ["--project", dir];

  async function cli(args: string[]) {
    const io = capturedOutput();
    const code = await main(["node", "cdktf-nixos", ...args], { output: io.output });
    return { code, stderr: io.stderr(), stdout: io.stdout() };
  }

  it.each<[string, string[], string]>([
    ["vm without a host", ["vm", ...project], "error: missing required argument 'names'"],
    ["vm with three names", ["vm", "fleet", "web", "db", ...project], "cdktf-nixos: vm takes [stack] <host>, got 'fleet' 'web' 'db' (QEMU's arguments go after --)"],
    ["--build-only with --fresh", ["vm", "web", "--build-only", "--fresh", ...project], "cdktf-nixos: --build-only does not run the VM: leave out --fresh, --console and QEMU arguments"],
    ["--build-only with QEMU arguments", ["vm", "web", "--build-only", ...project, "--", "-m", "2048"], "cdktf-nixos: --build-only does not run the VM: leave out --fresh, --console and QEMU arguments"],
    ["an --arg without a value", ["vm", "web", "--arg", "appAddress", ...project], "cdktf-nixos: --arg 'appAddress' is not NAME=VALUE (e.g. --arg appAddress=10.0.0.5)"],
    ["test without --script", ["test", ...project], "error: required option '--script <file>' not specified"],
    ["a missing test script", ["test", "--script", join(dir, "missing.py"), ...project],
      `cdktf-nixos: --script ${join(dir, "missing.py")} cannot be read (ENOENT): give the test script, e.g. --script tests/fleet.py`],
    ["--interactive with --write", ["test", "--script", script, "--interactive", "--write", join(dir, "t.nix"), ...project],
      "error: option '--interactive' cannot be used with option '--write <file>'"],
    ["a test --arg given twice", ["test", "--script", script, "--arg", "a=1", "--arg", "a=2", ...project], "cdktf-nixos: --arg a is given twice"],
  ])("%s", async (_what, args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(EXIT_CODES.usage);
    expect(result.stderr.split("\n")[0]).toBe(message);
    expect(result.stdout).toBe("");
  });

  it("a directory without cdktf.json: says where to run it", async () => {
    const result = await cli(["vm", "web", ...project]);
    expect(result.code).toBe(EXIT_CODES.usage);
    expect(result.stderr).toContain(`cdktf-nixos: no readable cdktf.json in ${dir}`);
  });
});
