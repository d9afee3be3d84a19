import { stripAnsi } from "../nix/nix-errors";
import { UserInputError } from "../errors";
import { spawn } from "node:child_process";
import { accessSync, constants, existsSync, readFileSync, realpathSync, statSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { basename, join, relative, resolve as resolvePath } from "node:path";
import { MANIFEST_FILE, MANIFEST_VERSION, type DeploymentManifest } from "../spec/manifest";
import { changedSource } from "../spec/synthesis";
import { cdkCli, flavour } from "../flavour";
import type { TerraformShowState } from "./inventory";

/** The user's cdktf project cannot be read as asked (no cdktf.json, no such stack, synth failed, …). */
export class ProjectError extends UserInputError {}

export type SynthMode = "auto" | "always" | "never";

export interface LoadedStack {
  readonly stack: string;
  /** Where Terraform runs for this stack (cdktf.out/stacks/NAME). */
  readonly stackDir: string;
  readonly manifest: DeploymentManifest;
  /** What was done about synthesis, in words, e.g. "synthesized: main.ts changed since the last synth". */
  readonly synth: string;
}

interface CdktfJson {
  readonly app?: string;
  readonly output?: string;
}

/**
 * The CDK CLI that synthesizes the project: the project's own (cdktn's or cdktf's, this package's kind first), else
 * this package's kind from PATH.
 */
export function cdkCommand(projectDir: string, own: "cdktf" | "cdktn" = cdkCli()): string {
  for (const cli of [own, own === "cdktf" ? "cdktn" : "cdktf"]) {
    const local = join(projectDir, "node_modules", ".bin", cli);
    if (existsSync(local)) return local;
  }
  return own;
}

/** Lines that are noise around the app's error: spinner frames, stack frames, Node's crash banner. */
const NOISE = /^\s*([\u2800-\u28ff]\s|at\s|node:internal|triggerUncaughtException|\^\s*$|[{}]\s*$|name: '|Node\.js v)/;

/**
 * What the app said when `cdktf synth` failed, alone: cdktf wraps it in spinner frames, escapes, its own log lines and
 * the stack of the crash, each sometimes twice. Takes the app's stderr block when cdktf shows one, else every line
 * that is not noise, without repeats.
 */
export function synthError(output: string): string {
  // cdktf's colours and cursor movement
  const text = stripAnsi(output).replace(/\r/g, "\n");
  const block = /Command output on stderr:\n([\s\S]*)/.exec(text)?.[1] ?? text;
  const seen = new Set<string>();
  const lines = block.split("\n").filter((line) => {
    if (NOISE.test(line) || line.trim() === "") return false;
    if (seen.has(line.trim())) return false;
    seen.add(line.trim());
    return true;
  });
  const indent = Math.min(...lines.map((l) => /^\s*/.exec(l)![0].length));
  const kept = lines.map((l) => l.slice(Number.isFinite(indent) ? indent : 0));
  return (kept.length > 30 ? [...kept.slice(0, 30), `… (${kept.length - 30} more lines)`] : kept).join("\n") || "(it printed nothing)";
}

/** Runs `cdktf synth` in the project; its output comes back only when it fails. */
function synthesize(projectDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const command = cdkCommand(projectDir);
    const cli = basename(command);
    const child = spawn(command, ["synth"], { cwd: projectDir, env: { ...process.env, CHECKPOINT_DISABLE: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-65_536)));
    child.stderr.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-65_536)));
    child.on("error", (err) => reject(new ProjectError(`cannot run ${command} synth: ${err.message} (install ${flavour().cdkCliPackage}, or synthesize first and pass --no-synth)`)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new ProjectError(`${cli} synth failed (exit ${code}):\n${synthError(output)}\n(${cli} synth in ${projectDir} shows all it said)`));
    });
  });
}

/** The deployment manifests in a synthesized output directory: stack name → working directory. */
async function synthesizedStacks(output: string): Promise<Record<string, { workingDirectory: string }>> {
  return (JSON.parse(await readFile(join(output, "manifest.json"), "utf8")) as { stacks: Record<string, { workingDirectory: string }> }).stacks;
}

async function readManifest(file: string): Promise<DeploymentManifest> {
  try {
    return JSON.parse(await readFile(file, "utf8")) as DeploymentManifest;
  } catch (err) {
    throw new ProjectError(`${file} cannot be read (${(err as Error).message}): synthesize again (--synth)`);
  }
}

/** Why the synthesis in `output` is not that of this project's sources, or undefined when it is. */
export async function staleSynthesis(
  projectDir: string,
  output: string,
  notSources: ReadonlySet<string>,
  /** Compare the sources' content too (not right after a synth, which has just recorded it). */
  contents = true,
): Promise<Staleness | undefined> {
  const shown = relative(projectDir, output);
  if (!existsSync(join(output, "manifest.json"))) return { kind: "missing", why: `${shown} was missing` };
  const stacks = await synthesizedStacks(output);
  const files = Object.values(stacks).map((s) => join(output, s.workingDirectory, MANIFEST_FILE)).filter((f) => existsSync(f));
  if (files.length === 0) return { kind: "no-deployments", why: `${shown} has no NixOS deployments` };
  const manifest = await readManifest(files[0]);
  if (manifest.version !== MANIFEST_VERSION) {
    return { kind: "version", why: `${files[0]} is manifest version ${String(manifest.version)}, this cdktf-nixos reads ${MANIFEST_VERSION}` };
  }
  const here = realpathSync(projectDir);
  if (manifest.synthesis.projectDir !== here) {
    return { kind: "elsewhere", why: `${shown} was synthesized for ${manifest.synthesis.projectDir}, not for this directory ${here} (a copied or moved project)` };
  }
  const changed = contents ? changedSource(manifest.synthesis, notSources) : undefined;
  return changed === undefined ? undefined : { kind: "changed", why: `${changed} changed since the last synth` };
}

export interface Staleness {
  readonly kind: "missing" | "no-deployments" | "version" | "elsewhere" | "changed";
  /** In words, e.g. "main.ts changed since the last synth". */
  readonly why: string;
}

/**
 * Finds the stack's deployment manifest in the project's cdktf.out, synthesizing first when it is missing, was
 * synthesized for another directory (a copied project), by another version, or from sources whose content changed
 * (`auto`); always; or never (then output made for another directory or version is refused).
 */
export async function loadStack(
  projectDir: string,
  stack: string | undefined,
  mode: SynthMode,
  onSynthesizing: (why: string) => void = () => undefined,
  /** Files the command reads itself (absolute), which say nothing about the app's synthesis. */
  notSources: readonly string[] = [],
  runSynth: (projectDir: string) => Promise<void> = synthesize,
): Promise<LoadedStack> {
  const cdktfJsonFile = join(projectDir, "cdktf.json");
  let cdktfJson: CdktfJson;
  try {
    cdktfJson = JSON.parse(await readFile(cdktfJsonFile, "utf8")) as CdktfJson;
  } catch (err) {
    throw new ProjectError(`no readable cdktf.json in ${projectDir} (${(err as Error).message}): run cdktf-nixos in the directory of your cdktf project, or pass --project DIR`);
  }
  const output = join(projectDir, cdktfJson.output ?? "cdktf.out");
  const shown = relative(projectDir, output);
  const ignored = new Set(notSources);
  const stale = mode === "always" ? undefined : await staleSynthesis(projectDir, output, ignored);
  let synth: string;
  if (mode === "never") {
    if (stale?.kind === "missing") throw new ProjectError(`${shown} is missing: run ${cdkCli()} synth (or leave out --no-synth)`);
    if (stale?.kind === "version") throw new ProjectError(`${stale.why}: synthesize again (--synth)`);
    if (stale?.kind === "elsewhere") throw new ProjectError(`${stale.why}: its configurations, keys and state are that directory's; synthesize here (leave out --no-synth)`);
    synth = "using the existing synthesis (--no-synth)";
  } else if (mode === "always" || stale !== undefined) {
    synth = mode === "always" ? "synthesized (--synth)" : `synthesized: ${stale!.why}`;
    const cli = basename(cdkCommand(projectDir));
    onSynthesizing(synth.replace(/^synthesized/, `synthesizing (${cli} synth)`));
    await runSynth(projectDir);
    const after = await staleSynthesis(projectDir, output, ignored, false);
    if (after?.kind === "elsewhere" || after?.kind === "version" || after?.kind === "missing") {
      throw new ProjectError(`${cli} synth in ${projectDir} ran, but ${after.why}: check the app's output directory (cdktf.json "output")`);
    }
  } else {
    synth = `using ${shown} (up to date with the sources)`;
  }

  const stacks = await synthesizedStacks(output);
  const withDeployments = Object.keys(stacks).filter((name) => existsSync(join(output, stacks[name].workingDirectory, MANIFEST_FILE)));
  let chosen = stack;
  if (chosen === undefined) {
    if (withDeployments.length !== 1) {
      throw new ProjectError(withDeployments.length === 0
        ? "no stack of this app has NixOS deployments"
        : `the app has several stacks with NixOS deployments: name one (${withDeployments.join(", ")})`);
    }
    chosen = withDeployments[0];
  } else if (!(chosen in stacks)) {
    throw new ProjectError(`the app has no stack '${chosen}' (stacks: ${Object.keys(stacks).join(", ")})`);
  } else if (!withDeployments.includes(chosen)) {
    throw new ProjectError(`stack '${chosen}' has no NixOS deployments (stacks with some: ${withDeployments.join(", ") || "none"})`);
  }
  const stackDir = join(output, stacks[chosen].workingDirectory);
  const manifest = await readManifest(join(stackDir, MANIFEST_FILE));
  if (manifest.version !== MANIFEST_VERSION) {
    throw new ProjectError(`${join(stackDir, MANIFEST_FILE)} is manifest version ${String(manifest.version)}, this cdktf-nixos reads ${MANIFEST_VERSION}: synthesize again (--synth)`);
  }
  return { stack: chosen, stackDir, manifest, synth };
}

/** The stack's backend is not the one `terraform init` set up in its directory. */
export class BackendMovedError extends ProjectError {}

/**
 * The stack's state as `readTerraformState` reads it. A stack whose local backend (a state file in the project) was
 * initialized for another directory, as in a copied or moved project, is initialized again for this one first
 * (`terraform init -reconfigure`: the state file of this project, never migrated from the other's); other backends
 * are the user's to initialize.
 */
export async function readStackState(stackDir: string, onNote: (note: string) => void = () => undefined): Promise<TerraformShowState> {
  try {
    return await readTerraformState(stackDir);
  } catch (err) {
    if (!(err instanceof BackendMovedError) || localBackend(stackDir) === undefined) throw err;
    onNote(`initializing the stack's local backend for this directory (terraform init -reconfigure in ${stackDir}): it was initialized for another one`);
    await terraformInit(stackDir);
    return readTerraformState(stackDir);
  }
}

/**
 * The stack's backend when it is the local one (a state file in the project): `{ path }` of its state file, or
 * undefined for any other backend (those are the user's to initialize).
 */
function localBackend(stackDir: string): { readonly statePath?: string } | undefined {
  try {
    const backend = (JSON.parse(readFileSync(join(stackDir, "cdk.tf.json"), "utf8")) as { terraform?: { backend?: Record<string, { path?: string }> } }).terraform?.backend;
    if (backend === undefined) return {};
    if (!Object.keys(backend).every((name) => name === "local")) return undefined;
    const path = backend.local?.path;
    return { statePath: path === undefined ? undefined : resolvePath(stackDir, path) };
  } catch {
    return undefined;
  }
}

/** The state file of the stack's local backend exists: it was applied from this project. */
function localStateExists(stackDir: string): boolean {
  const statePath = localBackend(stackDir)?.statePath;
  return statePath !== undefined && existsSync(statePath);
}

function terraformInit(stackDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn("terraform", ["init", "-reconfigure", "-input=false", "-no-color"], {
      cwd: stackDir,
      env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" },
      stdio: ["ignore", "ignore", "pipe"],
    });
    let stderr = "";
    child.stderr.on("data", (c: Buffer) => (stderr = (stderr + c.toString()).slice(-8192)));
    child.on("error", (err) => reject(new ProjectError(`cannot run terraform: ${err.message}`)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new ProjectError(`terraform init in ${stackDir} failed: ${stderr.split("\n").find((l) => l.trim().startsWith("Error:"))?.trim() ?? `exit ${code}`}`));
    });
  });
}

/**
 * What Terraform knows about the stack's resources, through `terraform show -json` in the stack's directory (so any
 * backend works). Reads only: no refresh, no plan, no apply.
 */
export function readTerraformState(stackDir: string): Promise<TerraformShowState> {
  return new Promise((resolve, reject) => {
    const child = spawn("terraform", ["show", "-json", "-no-color"], {
      cwd: stackDir,
      env: { ...process.env, CHECKPOINT_DISABLE: "1", TF_IN_AUTOMATION: "1" },
      stdio: ["ignore", "pipe", "pipe"],
    });
    const stdout: Buffer[] = [];
    let stderr = "";
    child.stdout.on("data", (c: Buffer) => stdout.push(c));
    child.stderr.on("data", (c: Buffer) => (stderr += c.toString()));
    child.on("error", (err) => reject(new ProjectError(`cannot run terraform: ${err.message} (push reads the stack's state with terraform show -json)`)));
    child.on("close", (code) => {
      if (code !== 0) {
        const reason = stderr.split("\n").find((l) => l.trim().startsWith("Error:"))?.trim() ?? `exit ${code}`;
        // initialized before (for another directory), or deployed from here with .terraform gone since: the state is there
        if (/Backend initialization required|Backend configuration changed/.test(stderr) &&
          (existsSync(join(stackDir, ".terraform")) || localStateExists(stackDir))) {
          reject(new BackendMovedError(`terraform show -json in ${stackDir} failed: ${reason}. The stack is not initialized for its backend here ` +
            `(a copied or moved project, a changed backend, or .terraform removed): run terraform init in ${stackDir} (${cdkCli()} diff does it), then try again`));
          return;
        }
        const hint = tmpdirProblem() ?? `Has the stack been deployed (${cdkCli()} deploy) from here?`;
        reject(new ProjectError(`terraform show -json in ${stackDir} failed: ${reason}. ${hint}`));
        return;
      }
      try {
        resolve(JSON.parse(Buffer.concat(stdout).toString("utf8")) as TerraformShowState);
      } catch (err) {
        reject(new ProjectError(`terraform show -json printed no JSON: ${(err as Error).message}`));
      }
    });
  });
}

/** TMPDIR that names no writable directory: terraform then fails with messages that do not say so. */
export function tmpdirProblem(env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dir = env.TMPDIR;
  if (dir === undefined || dir === "") return undefined;
  try {
    accessSync(dir, constants.W_OK);
    if (statSync(dir).isDirectory()) return undefined;
  } catch {
    // not there, or not writable
  }
  return `TMPDIR is ${dir}, which is not a writable directory: unset it or point it at one`;
}
