import { Command, CommanderError } from "commander";
import { readFileSync } from "node:fs";
import { join } from "node:path";

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(join(__dirname, "..", "..", "package.json"), "utf8")) as { version: string };
  return pkg.version;
}

/** Builds the command tree. Each subcommand parses its options and calls the library; none calls process.exit. */
export function buildProgram(): Command {
  const program = new Command("cdktf-nixos")
    .description("Deploy NixOS to AWS: look up NixOS AMIs and push NixOS configurations to hosts over SSH")
    .version(packageVersion())
    .exitOverride()
    .showHelpAfterError();
  return program;
}

/** Runs the CLI and resolves to the exit code. */
export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv);
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) return err.exitCode;
    throw err;
  }
}
