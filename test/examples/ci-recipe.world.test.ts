import { execFileSync } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cdktfNixos } from "../harness/cli";
import { NIXPKGS_LITE } from "../harness/fixture";
import { missing } from "../harness/requirements";

const ROOT = join(__dirname, "..", "..");

/**
 * The examples/ci recipe's NixOS test step, run as the workflow runs it, on the examples/fleet stack (evaluated
 * against nixpkgs-lite instead of the nixos-25.05 channel), and its binary-cache module.
 */
describe.skipIf(missing("root", "nix", "netns", "python3"))("examples/ci: the recipe's steps on examples/fleet", () => {
  let project: string;
  const env = () => ({ NIXPKGS: NIXPKGS_LITE, CHECKPOINT_DISABLE: "1", PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` });

  beforeAll(() => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    // the repository's own cdktf app (examples/app.ts) in a project directory of its own, so cdktf.out goes there
    project = mkdtempSync(join(tmpdir(), "ci-recipe-"));
    writeFileSync(join(project, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} ${join(ROOT, "examples", "app.ts")}`, projectId: "ci-recipe", sendCrashReports: "false" }));
  });
  afterAll(() => {
    if (project) rmSync(project, { recursive: true, force: true });
  });

  it("cdktf-nixos test fleet --script examples/ci/fleet-test.py --on web --on app: web finds app by name", async () => {
    const result = await cdktfNixos(["test", "fleet", "--script", join(ROOT, "examples", "ci", "fleet-test.py"), "--on", "web", "--on", "app",
      "--arg", "greeting=hello from CI", "--project", project], env(), { cwd: project });
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("node web: host web (module arguments: appAddress from test network, greeting from --arg)");
    expect(result.stderr).toContain("(finished: web's upstream is app on the test network");
    expect(result.stderr).toContain("(finished: the greeting reached both hosts");
  });

  it("binary-cache.nix gives the hosts the cache as a substituter", () => {
    const conf = JSON.parse(execFileSync("nix-instantiate", ["--eval", "--strict", "--json", "-I", `nixpkgs=${NIXPKGS_LITE}`, "-E",
      `(import <nixpkgs/nixos> { configuration = ${join(ROOT, "examples", "ci", "binary-cache.nix")}; }).config.environment.etc."nix/nix.conf".text`],
    { encoding: "utf8" })) as string;
    expect(conf).toBe("extra-substituters = https://my-fleet.cachix.org\nextra-trusted-public-keys = my-fleet.cachix.org-1:REPLACE-WITH-THE-CACHE-PUBLIC-KEY\n");
  });
});
