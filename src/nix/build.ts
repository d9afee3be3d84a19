import { spawn } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { trackTempDir, untrackTempDir } from "../temp-files";
import { join, resolve } from "node:path";
import { BuildError, EvaluateError } from "../errors";
import { shellQuote } from "../shell";
import {
  configurationSystemExpression,
  moduleArgsFromFile,
  nixAttrName,
  parseFlakeRef,
  type LocalSystem,
  type SystemSource,
} from "./system";

const FLAKES = ["--extra-experimental-features", "nix-command flakes"];

export interface NixOptions {
  /** Extra arguments for every evaluation and build, e.g. ["--show-trace"] or ["--option", "substituters", ""]. */
  readonly extraArgs?: readonly string[];
  /**
   * Values that become NixOS module arguments (`{ config, peers, ... }:`), as JSON text. They reach Nix through a
   * file, never the command line.
   */
  readonly moduleArgsJson?: string;
}

/** The Nix commands for one system source, as users could type them. */
export interface EvaluationCommand {
  readonly program: string;
  readonly args: readonly string[];
}

/** The command that instantiates a source's system derivation and prints the .drv path. */
export function instantiateCommand(source: SystemSource, options: NixOptions & { argsFile?: string }): EvaluationCommand {
  const extra = options.extraArgs ?? [];
  switch (source.kind) {
    case "config": {
      const includes = source.includes.flatMap((entry) => ["-I", entry]);
      const configuration = resolve(source.configuration);
      // <nixos-config> still names the configuration, as nixos-rebuild sets it.
      return {
        program: "nix-instantiate",
        args: [
          "-E", configurationSystemExpression(configuration, options.argsFile === undefined ? "{ }" : moduleArgsFromFile(options.argsFile)),
          ...includes, "-I", `nixos-config=${configuration}`, ...extra,
        ],
      };
    }
    case "flake": {
      const flake = parseFlakeRef(source.ref);
      if (flake === undefined) throw new EvaluateError(`flake '${source.ref}' is not REF#NAME`);
      return {
        program: "nix",
        args: [...FLAKES, "eval", "--raw", `${flake.ref}#nixosConfigurations.${nixAttrName(flake.name)}.config.system.build.toplevel.drvPath`, ...extra],
      };
    }
    case "toplevel":
      throw new EvaluateError("a ready toplevel needs no evaluation");
  }
}

/** Evaluates the system: its derivation, output path and Nix system double; builds nothing. */
export async function instantiateSystem(source: SystemSource, options: NixOptions = {}): Promise<LocalSystem & { drvPath: string }> {
  if (source.kind === "toplevel") {
    const deriver = (await runNix("nix-store", ["--query", "--deriver", source.path], "evaluate")).trim();
    if (deriver === "unknown-deriver" || deriver === "") {
      throw new EvaluateError(`${source.path} has no known derivation to build on the target`, {
        hint: "build it locally instead (leave out --build-on-target), or deploy from --config/--flake",
      });
    }
    return { drvPath: deriver, outPath: source.path, system: await drvSystem(deriver) };
  }
  if (source.kind === "flake" && options.moduleArgsJson !== undefined) {
    throw new EvaluateError("injected module arguments are only supported with --config", {
      hint: "a flake configuration takes such values through specialArgs in its flake.nix",
    });
  }
  const argsDir = options.moduleArgsJson === undefined ? undefined : await mkdtemp(join(tmpdir(), "cdktf-nixos-args-"));
  if (argsDir !== undefined) trackTempDir(argsDir);
  try {
    let argsFile: string | undefined;
    if (argsDir !== undefined) {
      argsFile = join(argsDir, "args.json");
      await writeFile(argsFile, options.moduleArgsJson as string, { mode: 0o600 });
    }
    const command = instantiateCommand(source, { ...options, argsFile });
    const drvPath = lastLine(await runNix(command.program, command.args, "evaluate"));
    if (!drvPath.endsWith(".drv")) {
      throw new EvaluateError(`evaluation printed '${drvPath}', not a derivation`, { command: render(command.program, command.args) });
    }
    const outPath = lastLine(await runNix("nix-store", ["--query", "--outputs", drvPath], "evaluate"));
    return { drvPath, outPath, system: await drvSystem(drvPath) };
  } finally {
    if (argsDir !== undefined) {
      await rm(argsDir, { recursive: true, force: true });
      untrackTempDir(argsDir);
    }
  }
}

/** Evaluates and builds the system locally. */
export async function buildSystem(source: SystemSource, options: NixOptions = {}): Promise<LocalSystem> {
  if (source.kind === "toplevel") {
    await runNix("nix-store", ["--realise", source.path], "build");
    return { outPath: source.path, system: await toplevelSystem(source.path) };
  }
  const instantiated = await instantiateSystem(source, options);
  const built = lastLine(await runNix("nix-store", ["--realise", instantiated.drvPath, ...(options.extraArgs ?? [])], "build"));
  if (built !== instantiated.outPath) {
    throw new BuildError(`building ${instantiated.drvPath} produced ${built}, expected ${instantiated.outPath}`);
  }
  return instantiated;
}

async function drvSystem(drvPath: string): Promise<string> {
  return (await runNix("nix-store", ["--query", "--binding", "system", drvPath], "evaluate")).trim();
}

/** A NixOS toplevel records its system double in `$out/system`. */
async function toplevelSystem(toplevel: string): Promise<string> {
  try {
    return (await readFile(join(toplevel, "system"), "utf8")).trim();
  } catch {
    throw new BuildError(`${toplevel} is not a NixOS system (it has no 'system' file)`, {
      hint: "pass the toplevel: config.system.build.toplevel, the result of nix-build '<nixpkgs/nixos>' -A system",
    });
  }
}

function lastLine(output: string): string {
  return output.trim().split("\n").at(-1) ?? "";
}

export function render(program: string, args: readonly string[]): string {
  return [program, ...args].map(shellQuote).join(" ");
}

/** Runs a Nix command; its stderr streams to ours (build logs) and comes back verbatim in the error. */
export function runNix(program: string, args: readonly string[], phase: "evaluate" | "build"): Promise<string> {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, { stdio: ["ignore", "pipe", "pipe"] });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => stdout.push(c));
    child.stderr.on("data", (c: Buffer) => {
      stderr = (stderr + c.toString("utf8")).slice(-256 * 1024);
    });
    child.on("error", (err) => {
      const ErrorType = phase === "evaluate" ? EvaluateError : BuildError;
      reject(new ErrorType(`cannot run ${program}: ${err.message}`, { command: render(program, args), hint: "is Nix installed and on PATH?" }));
    });
    child.on("close", (code) => {
      if (code === 0) {
        resolvePromise(Buffer.concat(stdout).toString("utf8"));
        return;
      }
      const ErrorType = phase === "evaluate" ? EvaluateError : BuildError;
      const reason = stderr.split("\n").find((l) => l.startsWith("error:"))?.replace(/^error:\s*/, "") ?? `exit code ${code}`;
      reject(new ErrorType(`${program} failed: ${reason}`, { command: render(program, args), stderr, exitCode: code ?? undefined }));
    });
  });
}
