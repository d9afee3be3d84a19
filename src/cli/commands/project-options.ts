import type { Command } from "commander";
import type { SynthMode } from "../../fleet/project";

/** The flags of commands that read a cdktf project's stack (push, vm, test). */
export interface ProjectFlags {
  synth?: boolean;
  project: string;
  showTrace?: boolean;
}

/** `--synth`, `--no-synth`, `--project` and `--show-trace`, worded alike wherever a command reads the project. */
export function addProjectOptions(command: Command): Command {
  return command
    .option("--synth", "synthesize first even when cdktf.out looks up to date")
    .option("--no-synth", "never synthesize; use cdktf.out as it is")
    .option("--project <dir>", "the cdktf project (the directory with cdktf.json)", ".")
    .option("--show-trace", "pass --show-trace to Nix: the full evaluation trace in errors");
}

/** What `--synth` / `--no-synth` / neither ask of loadStack. */
export function synthModeOf(flags: ProjectFlags): SynthMode {
  return flags.synth === true ? "always" : flags.synth === false ? "never" : "auto";
}

/**
 * A variadic command's operands split at `--`: the names before it, the words after it (a command's own argv). Commander
 * hands every operand over alike, so the part after `--` is counted in the command line it parsed (untyped).
 */
export function splitAtDashes(command: Command, operands: readonly string[]): { readonly names: string[]; readonly after: string[] } {
  const raw = (command.parent as unknown as { rawArgs?: string[] } | null)?.rawArgs ?? [];
  const dashes = raw.indexOf("--");
  const after = dashes < 0 ? [] : raw.slice(dashes + 1);
  return { names: operands.slice(0, operands.length - after.length), after };
}

/** Nix's extra arguments for `--show-trace`. */
export function nixTraceArgs(flags: ProjectFlags): string[] | undefined {
  return flags.showTrace === true ? ["--show-trace"] : undefined;
}
