import { nixError } from "./nix-errors";
import { spawn } from "node:child_process";
import { readFile } from "node:fs/promises";
import { join, resolve } from "node:path";
import { BuildError, EvaluateError } from "../errors";
import { NO_REDACTION, type Redact } from "../redact";
import { shellQuote } from "../shell";
import {
  absoluteFlakeRef,
  configurationSystemExpression,
  flakeSystemExpression,
  moduleArgsExpression,
  parseFlakeRef,
  type LocalSystem,
  type SystemSource,
} from "./system";

const FLAKES = ["--extra-experimental-features", "nix-command flakes"];

export interface NixOptions {
  /** Extra arguments for every evaluation and build, e.g. ["--show-trace"] or ["--option", "substituters", ""]. */
  readonly extraArgs?: readonly string[];
  /**
   * Values that become NixOS module arguments (`{ config, peers, ... }:`), as JSON text. They reach Nix through its
   * stdin, never the command line, the environment or a file.
   */
  readonly moduleArgsJson?: string;
  /** Takes sensitive values out of Nix's messages before they become errors. */
  readonly redact?: Redact;
  /** Hears each line Nix writes to stderr while it builds (progress: what it builds, how many). */
  readonly onLog?: (line: string) => void;
}

/** The Nix commands for one system source, as users could type them. */
export interface EvaluationCommand {
  readonly program: string;
  readonly args: readonly string[];
  /** The expression, for `-` in args: on stdin, because it holds the module arguments. */
  readonly stdin?: string;
}

/** The command that instantiates a source's system derivation and prints the .drv path. */
export function instantiateCommand(source: SystemSource, options: NixOptions): EvaluationCommand {
  const extra = options.extraArgs ?? [];
  switch (source.kind) {
    case "config": {
      const includes = source.includes.flatMap((entry) => ["-I", entry]);
      const configuration = resolve(source.configuration);
      // <nixos-config> still names the configuration, as nixos-rebuild sets it.
      const args = options.moduleArgsJson === undefined ? "{ }" : moduleArgsExpression(JSON.parse(options.moduleArgsJson));
      return {
        program: "nix-instantiate",
        args: [...includes, "-I", `nixos-config=${configuration}`, ...extra, "-"],
        stdin: configurationSystemExpression(configuration, args),
      };
    }
    case "flake": {
      if (parseFlakeRef(source.ref) === undefined) throw new EvaluateError(`flake '${source.ref}' is not REF#NAME`);
      // the expression of the synth-time evaluation and of push's build, so all three mean the same system
      return { program: "nix-instantiate", args: [...FLAKES, ...extra, "-"], stdin: flakeSystemExpression(absoluteFlakeRef(source.ref)) };
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
  const command = instantiateCommand(source, options);
  const drvPath = lastLine(await runNix(command.program, command.args, "evaluate", { stdin: command.stdin, redact: options.redact })
    .catch(async (err: unknown) => {
      throw source.kind === "flake" ? await withFlakeConfigurations(err, source.ref) : err;
    }));
  if (!drvPath.endsWith(".drv")) {
    throw new EvaluateError(`evaluation printed '${drvPath}', not a derivation`, { command: render(command.program, command.args) });
  }
  const outPath = lastLine(await runNix("nix-store", ["--query", "--outputs", drvPath], "evaluate"));
  return { drvPath, outPath, system: await drvSystem(drvPath) };
}

/**
 * A flake evaluation that failed because the configuration is not there: the error then lists the configurations the
 * flake has (Nix's own message is a line of attribute paths).
 */
async function withFlakeConfigurations(err: unknown, ref: string): Promise<unknown> {
  const flake = parseFlakeRef(ref);
  if (!(err instanceof EvaluateError) || flake === undefined || !/does not provide attribute|attribute '.*' missing/.test(err.stderr ?? "")) return err;
  const names = await runNix("nix", [...FLAKES, "eval", "--json", `${flake.ref}#nixosConfigurations`, "--apply", "builtins.attrNames"], "evaluate")
    .then((out) => JSON.parse(out) as string[], () => undefined);
  const has = names === undefined ? "has no nixosConfigurations" : names.length === 0 ? "has an empty nixosConfigurations" : `has nixosConfigurations ${names.join(", ")}`;
  return new EvaluateError(`flake ${flake.ref} has no nixosConfigurations.${flake.name}; it ${has}`, {
    command: err.command,
    stderr: err.stderr,
    exitCode: err.exitCode,
    hint: names !== undefined && names.length > 0 ? `deploy one of them, e.g. --flake ${flake.ref}#${names[0]}` : "add the configuration to the flake's outputs",
  });
}

/** Evaluates and builds the system locally. */
export async function buildSystem(source: SystemSource, options: NixOptions = {}): Promise<LocalSystem> {
  if (source.kind === "toplevel") {
    await runNix("nix-store", ["--realise", source.path], "build");
    return { outPath: source.path, system: await toplevelSystem(source.path) };
  }
  const instantiated = await instantiateSystem(source, options);
  const built = lastLine(await runNix("nix-store", ["--realise", instantiated.drvPath, ...(options.extraArgs ?? [])], "build", { onLog: options.onLog }));
  if (built !== instantiated.outPath) {
    throw new BuildError(`building ${instantiated.drvPath} produced ${built}, expected ${instantiated.outPath}`);
  }
  return instantiated;
}

export interface ExpressionBuild {
  /** A Nix expression of one derivation; it may hold module arguments, so it goes to Nix on stdin. */
  readonly expression: string;
  /** `-I` entries, e.g. "nixpkgs=/path". */
  readonly includes: readonly string[];
  /** The expression uses builtins.getFlake. */
  readonly flakes?: boolean;
  /** What is built, for messages: "the VM of web". */
  readonly what: string;
}

/** Instantiates and builds one derivation (a VM, a test driver) and returns its output path. */
export async function buildExpression(build: ExpressionBuild, options: NixOptions = {}): Promise<string> {
  const args = [...(build.flakes === true ? FLAKES : []), ...build.includes.flatMap((entry) => ["-I", entry]), ...(options.extraArgs ?? []), "-"];
  const drvPath = lastLine(await runNix("nix-instantiate", args, "evaluate", { stdin: build.expression, redact: options.redact }));
  if (!drvPath.endsWith(".drv")) {
    throw new EvaluateError(`evaluating ${build.what} printed '${drvPath}', not a derivation`, { command: `${render("nix-instantiate", args)} < <expression>` });
  }
  return lastLine(await runNix("nix-store", ["--realise", drvPath, ...(options.extraArgs ?? [])], "build", { onLog: options.onLog, redact: options.redact }));
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

export interface RunNixOptions {
  /** Written to the command's stdin (an expression holding module arguments), then end of input. */
  readonly stdin?: string;
  readonly redact?: Redact;
  readonly onLog?: (line: string) => void;
}

/**
 * Runs a Nix command. Its stderr comes back in the error (redacted) and, line by line, to `onLog`. Children inherit
 * our environment, which never holds module arguments (the CLI takes them out of it as it reads them).
 */
export function runNix(program: string, args: readonly string[], phase: "evaluate" | "build", options: RunNixOptions = {}): Promise<string> {
  const redact = options.redact ?? NO_REDACTION;
  return new Promise((resolvePromise, reject) => {
    const child = spawn(program, args, { stdio: [options.stdin === undefined ? "ignore" : "pipe", "pipe", "pipe"] });
    if (options.stdin !== undefined) {
      // a Nix that fails before reading its input closes the pipe: its exit code tells what happened
      child.stdin!.on("error", () => undefined);
      child.stdin!.end(options.stdin);
    }
    const stdout: Buffer[] = [];
    let stderr = "";
    let partial = "";
    child.stdout!.on("data", (c: Buffer) => stdout.push(c));
    child.stderr!.on("data", (c: Buffer) => {
      const text = c.toString("utf8");
      stderr = (stderr + text).slice(-256 * 1024);
      if (options.onLog === undefined) return;
      const lines = (partial + text).split("\n");
      partial = lines.pop() ?? "";
      for (const line of lines) options.onLog(redact(line));
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
      const clean = redact(stderr);
      const reason = nixError(clean).reason ?? `exit code ${code}`;
      reject(new ErrorType(`${program} failed: ${reason}`, { command: render(program, args), stderr: clean, exitCode: code ?? undefined, hint: buildHint(clean) }));
    });
  });
}

/** What to do about a build Nix cannot do on this machine. */
export function buildHint(stderr: string): string | undefined {
  const foreign = /a '([^']+)' with features \{[^}]*\} is required to build '[^']+', but I am a '([^']+)'/.exec(stderr);
  if (foreign !== null) {
    return `the system is for ${foreign[1]} and this machine is ${foreign[2]}: build it on the host with --build-on-target ` +
      "(buildOnTarget), or give Nix a remote builder or emulation for it";
  }
  if (/No space left on device/.test(stderr)) return "this machine's disk is full: free space (nix-collect-garbage) and build again";
  const unlocked = /flake '([^']+)' requires lock file changes/.exec(stderr);
  if (unlocked !== null) {
    // builtins.getFlake, as synth, push and deploy --flake evaluate a flake, never writes the user's flake.lock
    return `the flake's flake.lock is missing or out of date: lock it (nix flake lock ${unlocked[1]}), commit it, and deploy again`;
  }
  if (/infinite recursion encountered/.test(stderr)) {
    return "a value of the configuration is defined from itself (often an option set from its own config value); " +
      "Nix's trace names the file and line: run again with --show-trace (cdktf synth: CDKTF_NIXOS_SHOW_TRACE=1)";
  }
  const coerce = /cannot coerce (an integer|a float|a Boolean|null) to a string/.exec(stderr);
  if (coerce !== null) {
    return `a value used as text is ${coerce[1]}: module argument values that are JSON stay JSON (--arg port=5 is the number 5); ` +
      "give text as a JSON string (--arg name='\"5\"', or \"5\" in nixosArgs)";
  }
  const argument = /Module argument `([^']+)' is not available/.exec(stderr);
  if (argument !== null) {
    return `the configuration takes a module argument ${argument[1]}: give it in the deployment's nixosArgs (vm and test: --arg ${argument[1]}=VALUE)`;
  }
  const missingEntry = /Nix search path entry '([^']+)' does not exist/.exec(stderr);
  if (missingEntry !== null) return `the Nix search path entry ${missingEntry[1]} does not exist: fix the nixPath (or -I, NIX_PATH) that names it`;
  const notFound = /file '([^'/]+)[^']*' was not found in the Nix search path/.exec(stderr);
  if (notFound !== null) {
    return `nothing named ${notFound[1]} is on the Nix search path: give it with the deployment's nixPath ({ ${notFound[1]}: "/path/to/${notFound[1]}" }), -I ${notFound[1]}=PATH, or NIX_PATH`;
  }
  return undefined;
}
