import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { DeployError, type DeployPhase } from "../deploy/errors";
import { registerAmiCommand } from "./commands/ami";
import { registerDeployCommand } from "./commands/deploy";
import type { Output } from "./progress";
import { UsageError } from "./usage-error";

/** Exit codes, documented in the README: scripts and Terraform can tell what failed. */
export const EXIT_CODES = {
  ok: 0,
  failure: 1,
  usage: 2,
  connect: 3,
  evaluate: 4,
  build: 4,
  copy: 5,
  activate: 6,
  confirm: 7,
  rollback: 8,
} as const satisfies Record<DeployPhase | "ok" | "failure" | "usage", number>;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** Builds the command tree. Each subcommand parses its options and calls the library; none calls process.exit. */
export function buildProgram(output: Output): Command {
  const program = new Command("cdktf-nixos")
    .description("Deploy NixOS to AWS: look up NixOS AMIs and push NixOS configurations to hosts over SSH")
    .version(packageVersion())
    .exitOverride()
    .configureOutput({
      writeOut: (s) => output.stdout.write(s),
      writeErr: (s) => output.stderr.write(s),
    })
    .showHelpAfterError();
  registerDeployCommand(program, output);
  registerAmiCommand(program, output);
  for (const sub of program.commands) sub.exitOverride().configureOutput(program.configureOutput());
  return program;
}

const processOutput: Output = {
  stdout: process.stdout,
  stderr: process.stderr,
  interactive: process.stderr.isTTY === true,
};

/** Runs the CLI and resolves to the exit code; failures are printed, never thrown. */
export async function main(argv: string[], output: Output = processOutput): Promise<number> {
  const program = buildProgram(output);
  try {
    await program.parseAsync(argv);
    return EXIT_CODES.ok;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode === 0 ? 0 : EXIT_CODES.usage;
    if (err instanceof UsageError) {
      output.stderr.write(`cdktf-nixos: ${err.message}\n`);
      return EXIT_CODES.usage;
    }
    if (err instanceof DeployError) {
      output.stderr.write(`cdktf-nixos: ${err.describe()}\n`);
      return EXIT_CODES[err.phase];
    }
    output.stderr.write(`cdktf-nixos: ${err instanceof Error ? err.message : String(err)}\n`);
    return EXIT_CODES.failure;
  }
}
