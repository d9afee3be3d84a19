import { validateWorkflow } from "@action-validator/core";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { parse as parseShell } from "shell-quote";
import { describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { buildProgram } from "../../src/cli/program";
import { capturedOutput } from "../harness/cli";

const WORKFLOW = join(__dirname, "..", "..", "examples", "ci", "nixos-fleet.yml");

interface Step {
  readonly name?: string;
  readonly uses?: string;
  readonly run?: string;
  readonly with?: Record<string, unknown>;
}
interface Workflow {
  readonly on: Record<string, unknown>;
  readonly env: Record<string, string>;
  readonly jobs: Record<string, { readonly if?: string; readonly steps: readonly Step[] }>;
}

/** The examples/ci workflow: valid for GitHub Actions, and every cdktf-nixos command in it is one this CLI accepts. */
describe("examples/ci/nixos-fleet.yml", () => {
  const text = readFileSync(WORKFLOW, "utf8");
  const workflow = parseYaml(text) as Workflow;
  const runs = (job: string) => workflow.jobs[job].steps.flatMap((s) => (s.run === undefined ? [] : [s.run]));
  const uses = (job: string) => workflow.jobs[job].steps.flatMap((s) => (s.uses === undefined ? [] : [s.uses.split("@")[0]]));

  it("passes action-validator (GitHub's workflow schema, globs, job needs)", () => {
    expect(validateWorkflow(text).errors).toEqual([]);
    // and it does look: a misspelt key or event is an error
    expect(validateWorkflow(text.replace("runs-on: ubuntu-24.04\n    steps:", "runs-onn: ubuntu-24.04\n    steps:")).errors).not.toEqual([]);
    expect(validateWorkflow(text.replace("pull_request:\n", "pull_requests:\n")).errors).not.toEqual([]);
  });

  it("pull requests: synth, a dry-run push into the job summary, the NixOS test; main: cdktf deploy; Nix cached in Cachix", () => {
    expect(Object.keys(workflow.on).sort()).toEqual(["pull_request", "push"]);
    expect(workflow.jobs.check.if).toBe("github.event_name == 'pull_request'");
    expect(workflow.jobs.deploy.if).toBe("github.event_name == 'push'");
    const check = runs("check").join("\n");
    expect(check).toContain("npx cdktf synth");
    expect(check).toContain('npx cdktf-nixos push "$STACK" --no-synth --dry-run --summary-file "$GITHUB_STEP_SUMMARY"');
    expect(check).toMatch(/npx cdktf-nixos test "\$STACK" --no-synth --script examples\/ci\/fleet-test.py/);
    expect(runs("deploy").join("\n")).toContain('npx cdktf deploy "$STACK" --auto-approve');
    for (const job of ["check", "deploy"]) {
      expect(uses(job)).toEqual(expect.arrayContaining(["cachix/install-nix-action", "cachix/cachix-action", "hashicorp/setup-terraform"]));
      // the SSH key reaches the file through the environment, never a command line
      expect(runs(job).join("\n")).toContain("printf '%s\\n' \"$FLEET_SSH_KEY\" > .cdktf-nixos/keys/fleet");
      expect(text).not.toMatch(/run:.*secrets\./);
    }
  });

  it("uses only subcommands and options the CLI has", () => {
    const program = buildProgram(capturedOutput().output);
    const env = { STACK: workflow.env.STACK, GITHUB_STEP_SUMMARY: "/tmp/summary.md" };
    const invocations = Object.keys(workflow.jobs).flatMap(runs).flatMap((run) => run.split("\n"))
      .filter((line) => line.includes("cdktf-nixos "))
      .map((line) => parseShell(line, env).map(String))
      .map((words) => words.slice(words.indexOf("cdktf-nixos") + 1));
    expect(invocations.map((words) => words[0]).sort()).toEqual(["push", "test"]);
    for (const [name, ...args] of invocations) {
      const command = program.commands.find((c) => c.name() === name)!;
      const known = new Set(command.options.flatMap((o) => [o.long, o.negate ? o.long : undefined]).filter(Boolean));
      const flags = args.filter((a) => a.startsWith("--")).map((a) => a.split("=")[0]);
      expect(flags.filter((flag) => !known.has(flag)), `${name} ${args.join(" ")}`).toEqual([]);
    }
  });
});
