import { Command, CommanderError } from "commander";
import { defaultDependencies } from "../deploy/default-dependencies";
import { DeployError, EXIT_CODES, UserInputError, exitCodeOf } from "../errors";
import { flavour } from "../flavour";
import { registerAmiCommand } from "./commands/ami";
import { registerDeployCommand, type DependencyFactory } from "./commands/deploy";
import { registerForgetHostKeysCommand } from "./commands/forget-host-keys";
import { registerTestCommand } from "./commands/test";
import { registerImageCommand } from "./commands/image";
import { registerRemoveImageUploadCommand, registerUploadImageCommand } from "./commands/upload-image";
import { registerVmCommand } from "./commands/vm";
import { ForegroundExit } from "./foreground";
import { Interrupted } from "./interruptible";
import { PushFailed, registerPushCommand, type PushDependencyFactory } from "./commands/push";
import { buildFleet } from "../nix/fleet-build";
import { registerFleetCommands } from "./commands/fleet-ops";
import type { Output } from "./progress";
import { refuseRepeatedOptions } from "./repeated-options";

export { EXIT_CODES };

/** push: the deploy dependencies plus one evaluation and build for the whole fleet. */
const defaultPushDependencies: PushDependencyFactory = (options) => ({
  ...defaultDependencies(options),
  buildFleet: (members) => buildFleet(members, { extraArgs: options.extraArgs, redact: options.redact, onLog: options.onLog }),
});

/** Builds the command tree. Each subcommand parses its options and calls the library; none calls process.exit. */
export function buildProgram(
  output: Output,
  dependencies: DependencyFactory = defaultDependencies,
  pushDependencies: PushDependencyFactory = defaultPushDependencies,
): Command {
  const program = new Command("cdktf-nixos")
    .description("Deploy NixOS to AWS: look up NixOS AMIs, push NixOS configurations to hosts over SSH, run a host as a local VM and test the fleet")
    .version(flavour().version)
    .exitOverride()
    .configureOutput({
      writeOut: (s) => output.stdout.write(s),
      writeErr: (s) => output.stderr.write(s),
    })
    .showHelpAfterError()
    // help wraps at the terminal's width, and at 100 columns on a pipe (commander would not wrap there at all)
    .configureHelp({ helpWidth: (output.stdout as NodeJS.WriteStream).columns ?? 100 });
  registerDeployCommand(program, output, dependencies);
  registerPushCommand(program, output, pushDependencies);
  registerFleetCommands(program, output, pushDependencies);
  registerVmCommand(program, output);
  registerImageCommand(program, output);
  registerUploadImageCommand(program, output);
  registerRemoveImageUploadCommand(program, output);
  registerTestCommand(program, output);
  registerAmiCommand(program, output);
  registerForgetHostKeysCommand(program, output);
  for (const sub of program.commands) {
    sub.exitOverride().configureOutput(program.configureOutput());
    sub.hook("preAction", (_command, action) => {
      const raw = (program as unknown as { rawArgs?: string[] }).rawArgs ?? [];
      refuseRepeatedOptions(action, raw.slice(raw.indexOf(action.name()) + 1));
    });
  }
  return program;
}

/** Live lines that redraw need a terminal that can move the cursor (not TERM=dumb: Emacs shells, some CI logs). */
export function isInteractive(stderrIsTerminal: boolean, env: NodeJS.ProcessEnv = process.env): boolean {
  return stderrIsTerminal && env.TERM !== "dumb";
}

const processOutput: Output = {
  stdout: process.stdout,
  stderr: process.stderr,
  interactive: isInteractive(process.stderr.isTTY === true),
};

export interface CliEnvironment {
  readonly output: Output;
  /** The deploy engine's dependencies; tests pass fakes of the seams. */
  readonly dependencies?: DependencyFactory;
  readonly pushDependencies?: PushDependencyFactory;
}

/** Runs the CLI and resolves to the exit code; failures are printed, never thrown. */
export async function main(argv: string[], environment: CliEnvironment = { output: processOutput }): Promise<number> {
  const output = environment.output;
  const program = buildProgram(output, environment.dependencies, environment.pushDependencies);
  try {
    await program.parseAsync(argv);
    return EXIT_CODES.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_CODES.usage;
    // the push report already said what failed on which host; an interruption said what the hosts were left in
    if (err instanceof PushFailed || err instanceof Interrupted) return err.exitCode;
    // the VM or test driver had the terminal and said what happened; its code is ours
    if (err instanceof ForegroundExit) {
      output.stderr.write(`cdktf-nixos: ${err.message}\n`);
      return err.exitCode;
    }
    if (err instanceof UserInputError) {
      output.stderr.write(`cdktf-nixos: ${err.message}\n`);
      return EXIT_CODES.usage;
    }
    if (err instanceof DeployError) {
      output.stderr.write(`cdktf-nixos: ${err.describe()}\n`);
      return exitCodeOf(err);
    }
    output.stderr.write(`cdktf-nixos: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_CODES.failure;
  }
}
