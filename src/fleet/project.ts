import { spawn } from "node:child_process";
import { existsSync } from "node:fs";
import { readFile, readdir, stat } from "node:fs/promises";
import { join, relative } from "node:path";
import { MANIFEST_FILE, MANIFEST_VERSION, type DeploymentManifest } from "../deploy/manifest";
import type { TerraformShowState } from "./inventory";

/** The user's cdktf project cannot be read as asked (no cdktf.json, no such stack, synth failed, …). */
export class ProjectError extends Error {}

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

/** Directories that never hold the app's sources. */
const NOT_SOURCES = new Set(["node_modules", "cdktf.out"]);

/**
 * The newest source file of the project newer than `since`, if any: what makes cdktf.out stale. Nix files do not
 * count (a push evaluates them itself), nor dot-directories, node_modules, the output directory, Terraform state or
 * the command's own inputs (`notSources`: a test script).
 */
async function newerSource(dir: string, output: string, since: number, notSources: ReadonlySet<string>, root = dir): Promise<string | undefined> {
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const path = join(dir, entry.name);
    // VM disks (`cdktf-nixos vm`'s NAME.qcow2) change whenever a VM runs: they are state, not sources
    if (entry.name.startsWith(".") || NOT_SOURCES.has(entry.name) || entry.name.endsWith(".qcow2") || path === output || notSources.has(path)) continue;
    if (entry.isDirectory()) {
      const found = await newerSource(path, output, since, notSources, root);
      if (found !== undefined) return found;
    } else if (entry.isFile() && !/\.(nix|tfstate|tfstate\.backup|lock)$/.test(entry.name) && !entry.name.endsWith(".lock.hcl")) {
      if ((await stat(path)).mtimeMs > since) return relative(root, path);
    }
  }
  return undefined;
}

function cdktfCommand(projectDir: string): string {
  const local = join(projectDir, "node_modules", ".bin", "cdktf");
  return existsSync(local) ? local : "cdktf";
}

/** Runs `cdktf synth` in the project; its output comes back only when it fails. */
function synthesize(projectDir: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const command = cdktfCommand(projectDir);
    const child = spawn(command, ["synth"], { cwd: projectDir, env: { ...process.env, CHECKPOINT_DISABLE: "1" }, stdio: ["ignore", "pipe", "pipe"] });
    let output = "";
    child.stdout.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-16_384)));
    child.stderr.on("data", (c: Buffer) => (output = (output + c.toString()).slice(-16_384)));
    child.on("error", (err) => reject(new ProjectError(`cannot run ${command} synth: ${err.message} (install cdktf-cli, or synthesize first and pass --no-synth)`)));
    child.on("close", (code) => {
      if (code === 0) resolve();
      else reject(new ProjectError(`cdktf synth failed (exit ${code}):\n${output.trimEnd()}`));
    });
  });
}

/**
 * Finds the stack's deployment manifest in the project's cdktf.out, synthesizing first when it is missing or older
 * than the app's sources (`auto`), always, or never.
 */
export async function loadStack(
  projectDir: string,
  stack: string | undefined,
  mode: SynthMode,
  onSynthesizing: (why: string) => void = () => undefined,
  /** Files the command reads itself (absolute), which say nothing about the app's synthesis. */
  notSources: readonly string[] = [],
): Promise<LoadedStack> {
  const cdktfJsonFile = join(projectDir, "cdktf.json");
  let cdktfJson: CdktfJson;
  try {
    cdktfJson = JSON.parse(await readFile(cdktfJsonFile, "utf8")) as CdktfJson;
  } catch (err) {
    throw new ProjectError(`no readable cdktf.json in ${projectDir} (${(err as Error).message}): run cdktf-nixos in the directory of your cdktf project, or pass --project DIR`);
  }
  const output = join(projectDir, cdktfJson.output ?? "cdktf.out");
  const cdktfManifest = join(output, "manifest.json");
  let synth: string;
  const synthesizedAt = existsSync(cdktfManifest) ? (await stat(cdktfManifest)).mtimeMs : undefined;
  const changed = synthesizedAt === undefined ? undefined : await newerSource(projectDir, output, synthesizedAt, new Set(notSources));
  if (mode === "never") {
    if (synthesizedAt === undefined) throw new ProjectError(`${relative(projectDir, output)} is missing: run cdktf synth (or leave out --no-synth)`);
    synth = "using the existing synthesis (--no-synth)";
  } else if (mode === "always" || synthesizedAt === undefined || changed !== undefined) {
    synth = mode === "always" ? "synthesized (--synth)"
      : synthesizedAt === undefined ? `synthesized: ${relative(projectDir, output)} was missing`
      : `synthesized: ${changed} changed since the last synth`;
    onSynthesizing(synth.replace(/^synthesized/, "synthesizing (cdktf synth)"));
    await synthesize(projectDir);
  } else {
    synth = `using ${relative(projectDir, output)} (up to date with the sources)`;
  }

  const stacks = (JSON.parse(await readFile(cdktfManifest, "utf8")) as { stacks: Record<string, { workingDirectory: string }> }).stacks;
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
  const manifest = JSON.parse(await readFile(join(stackDir, MANIFEST_FILE), "utf8")) as DeploymentManifest;
  if (manifest.version !== MANIFEST_VERSION) {
    throw new ProjectError(`${join(stackDir, MANIFEST_FILE)} is manifest version ${String(manifest.version)}, this cdktf-nixos reads ${MANIFEST_VERSION}: synthesize again (--synth)`);
  }
  return { stack: chosen, stackDir, manifest, synth };
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
        reject(new ProjectError(`terraform show -json in ${stackDir} failed: ${reason}. Has the stack been deployed (cdktf deploy) from here?`));
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
