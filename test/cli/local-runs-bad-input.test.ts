import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/program";
import { EXIT_CODES } from "../../src/errors";
import { capturedOutput } from "../harness/cli";

/** `vm`, `image`, `test` and `push` refuse a bad command line with one message (exit 2) before reading the project or building. */
describe("vm, image, test and push: bad input is refused with one clear message", () => {
  const dir = mkdtempSync(join(tmpdir(), "local-runs-bad-input-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const script = join(dir, "fleet.py");
  writeFileSync(script, "start_all()\n");
  // files of the user's that `test --write` must leave alone
  const mainTs = join(dir, "main.ts");
  writeFileSync(mainTs, "new App().synth();\n");
  const link = join(dir, "link.nix");
  symlinkSync(mainTs, link);
  // no cdktf.json there: a row that got as far as reading the project would say so instead
  const project = ["--project", dir];

  async function cli(args: string[]) {
    const io = capturedOutput();
    const code = await main(["node", "cdktf-nixos", ...args], { output: io.output });
    return { code, stderr: io.stderr(), stdout: io.stdout() };
  }

  it.each<[string, string[], string]>([
    ["vm without a host", ["vm", ...project], "cdktf-nixos: vm needs the host to run: cdktf-nixos vm [stack] <host> (e.g. cdktf-nixos vm web)"],
    ["vm with three names", ["vm", "fleet", "web", "db", ...project], "cdktf-nixos: vm takes [stack] <host>, got 'fleet' 'web' 'db' (QEMU's arguments go after --)"],
    ["--build-only with --fresh", ["vm", "web", "--build-only", "--fresh", ...project], "cdktf-nixos: --build-only does not run the VM: leave out --fresh, --console and QEMU arguments"],
    ["--build-only with QEMU arguments", ["vm", "web", "--build-only", ...project, "--", "-m", "2048"], "cdktf-nixos: --build-only does not run the VM: leave out --fresh, --console and QEMU arguments"],
    ["an --arg without a value", ["vm", "web", "--arg", "appAddress", ...project], "cdktf-nixos: --arg 'appAddress' is not NAME=VALUE (e.g. --arg appAddress=10.0.0.5)"],
    ["test without --script", ["test", ...project], "error: required option '--script <file>' not specified"],
    ["a missing test script", ["test", "--script", join(dir, "missing.py"), ...project],
      `cdktf-nixos: --script ${join(dir, "missing.py")} cannot be read (ENOENT): give the test script, e.g. --script tests/fleet.py`],
    ["a test script that is a directory", ["test", "--script", dir, ...project], `cdktf-nixos: --script ${dir} is not a file: give the test script, e.g. --script tests/fleet.py`],
    ["a relative test script not found from here", ["test", "--script", "tests/nosuch-fleet.py", ...project],
      `cdktf-nixos: --script tests/nosuch-fleet.py cannot be read (ENOENT, looked at ${join(process.cwd(), "tests/nosuch-fleet.py")}): give the test script, e.g. --script tests/fleet.py`],
    ["--write over a file it did not write (the app's main.ts)", ["test", "--script", script, "--write", mainTs, ...project],
      `cdktf-nixos: --write ${mainTs}: ${mainTs} exists and was not written by \`cdktf-nixos test --write\` (no such header): choose another file, or pass --force to replace it`],
    ["--write over the test script itself", ["test", "--script", script, "--write", script, ...project],
      `cdktf-nixos: --write ${script}: that is the test script itself (the written test reads it): write the test to another file, e.g. tests/fleet.nix`],
    ["--write over the test script itself, with --force", ["test", "--script", script, "--write", script, "--force", ...project],
      `cdktf-nixos: --write ${script}: that is the test script itself (the written test reads it): write the test to another file, e.g. tests/fleet.nix`],
    ["--write into a directory that does not exist", ["test", "--script", script, "--write", join(dir, "nodir", "t.nix"), ...project],
      `cdktf-nixos: --write ${join(dir, "nodir", "t.nix")}: the directory ${join(dir, "nodir")} does not exist: create it first (mkdir -p ${join(dir, "nodir")})`],
    ["--write onto a directory", ["test", "--script", script, "--write", dir, "--force", ...project], `cdktf-nixos: --write ${dir}: ${dir} exists and is not a file`],
    ["--write onto a symbolic link", ["test", "--script", script, "--write", link, "--force", ...project],
      `cdktf-nixos: --write ${link}: ${link} is a symbolic link: give the file it points to, or another path`],
    ["--force without --write", ["test", "--script", script, "--force", ...project], "cdktf-nixos: --force only applies to --write (it lets --write replace a file it did not write)"],
    ["--keep-vm-state with --write (nothing runs)", ["test", "--script", script, "--keep-vm-state", "--write", join(dir, "t.nix"), ...project],
      "error: option '--keep-vm-state' cannot be used with option '--write <file>'"],
    ["--interactive with --write", ["test", "--script", script, "--interactive", "--write", join(dir, "t.nix"), ...project],
      "error: option '--interactive' cannot be used with option '--write <file>'"],
    ["push --summary-file in a missing directory (checked before any host is deployed)", ["push", "--summary-file", join(dir, "nodir", "summary.md"), ...project],
      `cdktf-nixos: --summary-file ${join(dir, "nodir", "summary.md")}: the directory ${join(dir, "nodir")} does not exist: create it first (mkdir -p ${join(dir, "nodir")})`],
    ["push --summary-file that is a directory", ["push", "--summary-file", dir, ...project], `cdktf-nixos: --summary-file ${dir}: ${dir} exists and is not a file`],
    ["push --synth with --no-synth", ["push", "--synth", "--no-synth", ...project], "cdktf-nixos: --synth and --no-synth are given together: choose one"],
    ["push --parallel given twice", ["push", "--parallel", "4", "--parallel=8", ...project],
      "cdktf-nixos: --parallel is given 2 times: give it once (only repeatable options may come more than once)"],
    ["push --connect-timeout empty", ["push", "--connect-timeout", "", ...project], "cdktf-nixos: --connect-timeout '' is not a number of seconds from 0 to 604800 (a week)"],
    ["push --batch-size 0", ["push", "--batch-size", "0", ...project], "cdktf-nixos: --batch-size '0' is not a number of hosts (at least 1) or a percentage from 1% to 100%"],
    ["push --canary that is no count", ["push", "--canary", "one", ...project], "cdktf-nixos: --canary 'one' is not a whole number of hosts from 0"],
    ["push --max-failures without waves", ["push", "--max-failures", "2", ...project],
      "cdktf-nixos: --max-failures is for a rollout in waves: add --canary N or --batch-size N"],
    ["push --rollback-completed-on-failure without waves", ["push", "--rollback-completed-on-failure", ...project],
      "cdktf-nixos: --rollback-completed-on-failure is for a rollout in waves: add --canary N or --batch-size N"],
    ["push --fail-fast in waves", ["push", "--fail-fast", "--canary", "1", ...project],
      "cdktf-nixos: --fail-fast and waves (--canary, --batch-size) both stop a rollout: waves stop after --max-failures failed hosts (default 0)"],
    ["push --health-check with a pipe", ["push", "--health-check", "curl -s localhost | grep ok", ...project],
      "cdktf-nixos: --health-check 'curl -s localhost | grep ok': a check is one command (argv, no shell): for pipes or redirections run a shell, e.g. --health-check \"sh -c 'curl -s localhost | grep ok'\""],
    ["exec without a command", ["exec", ...project], "cdktf-nixos: exec needs the command after --: cdktf-nixos exec [stack] -- systemctl is-active nginx"],
    ["exec with the command before --", ["exec", "fleet", "uptime", ...project, "--", "true"],
      "cdktf-nixos: exec takes [stack] -- command, got 'fleet' 'uptime' before -- (the command goes after --)"],
    ["exec --timeout 0", ["exec", "--timeout", "0", ...project, "--", "true"], "cdktf-nixos: --timeout '0' is not a number of seconds above 0 to 604800 (a week)"],
    ["rollback --to-generation 0", ["rollback", "--to-generation", "0", ...project],
      "cdktf-nixos: --to-generation '0' is not a generation number (a whole number of at least 1)"],
    ["status --parallel 0", ["status", "--parallel", "0", ...project], "cdktf-nixos: --parallel '0' is not a whole number of at least 1"],
    ["vm --fresh given twice, before QEMU's arguments", ["vm", "web", "--fresh", "--fresh", ...project, "--", "--fresh"],
      "cdktf-nixos: --fresh is given 2 times: give it once (only repeatable options may come more than once)"],
    ["image without a host", ["image", "--format", "amazon", ...project],
      "cdktf-nixos: image needs the host to build: cdktf-nixos image [stack] <host> --format amazon|iso|raw (e.g. cdktf-nixos image web --format amazon)"],
    ["image without --format", ["image", "web", ...project], "cdktf-nixos: image needs --format: one of amazon, iso, raw (e.g. --format amazon)"],
    ["image --format qcow2", ["image", "web", "--format", "qcow2", ...project], "cdktf-nixos: --format qcow2 is not an image format cdktf-nixos builds; use one of amazon, iso, raw"],
    ["image --out that does not exist", ["image", "web", "--format", "iso", "--out", join(dir, "nodir"), ...project],
      `cdktf-nixos: --out ${join(dir, "nodir")} does not exist; create the directory first`],
    ["image --out that is a file", ["image", "web", "--format", "iso", "--out", mainTs, ...project], `cdktf-nixos: --out ${mainTs} is not a directory`],
    ["image --format given twice", ["image", "web", "--format", "iso", "--format", "raw", ...project],
      "cdktf-nixos: --format is given 2 times: give it once (only repeatable options may come more than once)"],
    ["upload-image with both --config and --flake", ["upload-image", "--format", "amazon", "--config", mainTs, "--flake", ".#web", "--drv-path", "/nix/store/x.drv", "--bucket", "b", "--key", "k"],
      "cdktf-nixos: give exactly one of --config and --flake"],
    ["upload-image --s3-endpoint without a scheme", ["upload-image", "--format", "amazon", "--config", mainTs, "--drv-path", "/nix/store/x.drv", "--bucket", "b", "--key", "k", "--s3-endpoint", "localhost:9000"],
      "cdktf-nixos: --s3-endpoint 'localhost:9000' is not an http(s) URL; give one such as https://ec2.eu-central-1.amazonaws.com or http://127.0.0.1:4566"],
    ["upload-image --build-host with a scheme", ["upload-image", "--format", "amazon", "--config", mainTs, "--drv-path", "/nix/store/x.drv", "--bucket", "b", "--key", "k", "--build-host", "ssh://builder"],
      "cdktf-nixos: --build-host 'ssh://builder' is not [user@]host[:port] (for example admin@builder.example.com:22)"],
    ["a test --arg given twice", ["test", "--script", script, "--arg", "a=1", "--arg", "a=2", ...project], "cdktf-nixos: --arg a is given twice"],
  ])("%s", async (_what, args, message) => {
    const result = await cli(args);
    expect(result.code).toBe(EXIT_CODES.usage);
    expect(result.stderr.split("\n")[0]).toBe(message);
    expect(result.stdout).toBe("");
    // nothing of the user's was touched
    expect(readFileSync(mainTs, "utf8")).toBe("new App().synth();\n");
    expect(readFileSync(script, "utf8")).toBe("start_all()\n");
  });

  it("a directory without cdktf.json: says where to run it", async () => {
    const result = await cli(["vm", "web", ...project]);
    expect(result.code).toBe(EXIT_CODES.usage);
    expect(result.stderr).toContain(`cdktf-nixos: no readable cdktf.json in ${dir}`);
  });
});
