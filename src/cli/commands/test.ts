import { Command, Option } from "commander";
import { statSync } from "node:fs";
import { join, resolve } from "node:path";
import { parseArgAssignments } from "../../fleet/local-args";
import { loadLocalHosts } from "../../fleet/local-run";
import { nixosTestBuildCommand, nixosTestExpression, planNixosTest } from "../../fleet/nixos-test";
import { selectHosts } from "../../fleet/selection";
import { checkWrittenTestFile, writeTestFile } from "../../fleet/written-test-file";
import { buildExpression } from "../../nix/build";
import { ForegroundExit, runForeground } from "../foreground";
import { collect } from "../interruptible";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";
import { addProjectOptions, nixTraceArgs, synthModeOf, type ProjectFlags } from "./project-options";

interface TestFlags extends ProjectFlags {
  script: string;
  on: string[];
  arg: string[];
  interactive?: boolean;
  write?: string;
  keepVmState?: boolean;
  force?: boolean;
}

export function registerTestCommand(program: Command, output: Output): void {
  const definition = program.command("test")
    .description("a NixOS integration test (pkgs.testers.runNixOSTest) of the stack's hosts: one node per host, with its " +
      "configuration and module arguments, other hosts' addresses replaced by their node names; builds and runs it")
    .argument("[stack]", "the stack (may be left out when one stack has NixOS deployments)")
    .requiredOption("--script <file>", "required: the test script (Python, nixpkgs' testScript: start_all(), web.succeed(...), ...)")
    .option("--on <selector>", "only these hosts as nodes: a name, a glob ('web-*') or a tag (@role=web, @web); repeatable", collect, [])
    .option("--arg <name=value>", "a module argument's value in the test (JSON, or plain text for a string); needed for Terraform values the state does not have; repeatable", collect, [])
    .addOption(new Option("--interactive", "build driverInteractive and start it: a Python prompt with the machines").conflicts("write"))
    .option("--write <file>", "only write the test's Nix expression to this file (to keep in the repository), build nothing; " +
      "an existing file is replaced only when an earlier --write wrote it")
    .addOption(new Option("--force", "with --write: replace the file even when test --write did not write it"))
    .addOption(new Option("--keep-vm-state", "keep the machines' disks after the test (the driver's --keep-vm-state)").conflicts("write"));
  addProjectOptions(definition)
    .action(async (stack: string | undefined, flags: TestFlags) => {
      const testScript = resolve(flags.script);
      // a relative script is found from the current directory, not from --project: say where we looked
      const lookedAt = testScript === flags.script ? "" : `, looked at ${testScript}`;
      let script;
      try {
        script = statSync(testScript);
      } catch (err) {
        throw new UsageError(`--script ${flags.script} cannot be read (${(err as NodeJS.ErrnoException).code ?? String(err)}${lookedAt}): ` +
          "give the test script, e.g. --script tests/fleet.py");
      }
      if (!script.isFile()) throw new UsageError(`--script ${flags.script} is not a file${lookedAt === "" ? "" : ` (${lookedAt.slice(2)})`}: give the test script, e.g. --script tests/fleet.py`);
      if (flags.force === true && flags.write === undefined) throw new UsageError("--force only applies to --write (it lets --write replace a file it did not write)");
      if (flags.write !== undefined) {
        await checkWrittenTestFile(resolve(flags.write), flags.write, { force: flags.force === true, testScript });
      }
      const synthMode = synthModeOf(flags);
      const overrides = parseArgAssignments(flags.arg);
      // the script and the written test are this command's own files, not the app's sources
      const own = [testScript, ...(flags.write === undefined ? [] : [resolve(flags.write)])];
      const local = await loadLocalHosts(resolve(flags.project), stack, synthMode, (why) => output.stderr.write(`${why}\n`), own);
      const hosts = selectHosts(local.hosts, flags.on);
      const keysOf = new Map(hosts.map((h) => [h.name, h.spec.keys.map((k) => k.name)]));
      const plan = planNixosTest(hosts, overrides, { stack: local.loaded.stack, testScript, stateProblem: local.stateProblem, forFile: flags.write !== undefined });
      for (const node of plan.test.nodes) {
        const origins = Object.entries(plan.origins[node.name]).map(([name, origin]) => `${name} from ${origin}`);
        output.stderr.write(`node ${node.name}: host ${node.hostName}${origins.length > 0 ? ` (module arguments: ${origins.join(", ")})` : ""}\n`);
        // secrets never go into a test: a script that needs one writes a test value itself
        const keys = keysOf.get(node.hostName) ?? [];
        if (keys.length > 0) output.stderr.write(`node ${node.name}: gets none of its host's keys (${keys.join(", ")}); the test script writes test values if it needs them\n`);
      }
      if (flags.write !== undefined) {
        const file = resolve(flags.write);
        await writeTestFile(file, nixosTestExpression(plan.test, { path: file, shownAs: flags.write, projectDir: resolve(flags.project) }));
        output.stderr.write(`wrote ${flags.write}: run it with ${nixosTestBuildCommand(plan.test, flags.write, "driver")} && ./result/bin/nixos-test-driver\n`);
        output.stdout.write(`${file}\n`);
        return;
      }
      const attribute = flags.interactive === true ? "driverInteractive" : "driver";
      output.stderr.write(`building the test's ${attribute}\n`);
      const driver = await buildExpression({
        // the module arguments are in the expression, which reaches Nix on stdin
        expression: `((${nixosTestExpression(plan.test)}) { }).${attribute}`,
        includes: Object.entries(plan.test.nixPath).map(([k, v]) => `${k}=${v}`),
        flakes: plan.test.flake !== undefined,
        what: `the test's ${attribute}`,
      }, { extraArgs: nixTraceArgs(flags), redact: plan.redact });
      const program = join(driver, "bin", "nixos-test-driver");
      output.stderr.write(`running ${program}\n`);
      const code = await runForeground(program, flags.keepVmState === true ? ["--keep-vm-state"] : [], process.env);
      if (code !== 0) throw new ForegroundExit("the test", code);
    });
}
