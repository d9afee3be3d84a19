import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { run } from "./target-hosts";

/** Absolute path of the nixpkgs-lite fixture: `-I nixpkgs=…` or a flake input `path:…`. */
export const NIXPKGS_LITE = fileURLToPath(new URL("../fixtures/nixpkgs-lite", import.meta.url));

/** Every build skips binary caches: there is no network, and each attempt costs seconds of retries. */
export const NO_SUBSTITUTERS = ["--option", "substituters", ""];
const FLAKES = ["--extra-experimental-features", "nix-command flakes"];

/** A NixOS module: configuration.nix text, or a plain value rendered as the module's attribute set. */
export type ModuleSource = string | NixValue;
export type NixValue = string | number | boolean | null | NixExpr | NixValue[] | { [key: string]: NixValue };

/** Verbatim Nix code inside a NixValue, e.g. `nix("[ pkgs.hello-lite ]")`. */
export class NixExpr {
  constructor(readonly code: string) {}
}
export const nix = (code: string) => new NixExpr(code);

export function toNix(value: NixValue): string {
  if (value instanceof NixExpr) return value.code;
  if (value === null) return "null";
  if (typeof value === "string") return JSON.stringify(value).replaceAll("${", "\\${");
  if (typeof value === "number") {
    if (!Number.isInteger(value)) throw new Error(`toNix: only integers are supported, got ${value}`);
    return String(value);
  }
  if (typeof value === "boolean") return String(value);
  if (Array.isArray(value)) return `[ ${value.map((v) => `(${toNix(v)})`).join(" ")} ]`;
  return `{ ${Object.entries(value).map(([k, v]) => `${JSON.stringify(k).replaceAll("${", "\\${")} = ${toNix(v)};`).join(" ")} }`;
}

export function moduleText(config: ModuleSource): string {
  return typeof config === "string" ? config : `{ config, lib, pkgs, ... }:\n${toNix(config)}\n`;
}

export interface SystemSource {
  /** configuration.nix */
  config: ModuleSource;
  /** More files beside configuration.nix (relative path → content), e.g. modules it imports. */
  files?: Record<string, string>;
}

export interface FlakeSource extends SystemSource {
  /** nixosConfigurations.<name> @default "web" */
  name?: string;
  /** Nix expression for nixosSystem's specialArgs @default "{ }" */
  specialArgs?: string;
  /** @default "x86_64-linux" */
  system?: string;
}

export async function writeConfiguration(dir: string, source: SystemSource): Promise<string> {
  await writeFiles(dir, { ...source.files, "configuration.nix": moduleText(source.config) });
  return join(dir, "configuration.nix");
}

/** Writes a user flake whose nixpkgs input is the fixture; `nix build` creates its flake.lock on first use. */
export async function writeFlake(dir: string, source: FlakeSource): Promise<string> {
  const name = source.name ?? "web";
  const flake = `{
  inputs.nixpkgs.url = "path:${NIXPKGS_LITE}";
  outputs = { self, nixpkgs }: {
    nixosConfigurations.${JSON.stringify(name)} = nixpkgs.lib.nixosSystem {
      system = ${JSON.stringify(source.system ?? "x86_64-linux")};
      modules = [ ./configuration.nix ];
      specialArgs = ${source.specialArgs ?? "{ }"};
    };
  };
}
`;
  await writeFiles(dir, { ...source.files, "configuration.nix": moduleText(source.config), "flake.nix": flake });
  return dir;
}

export interface BuiltSystem {
  toplevel: string;
  drvPath: string;
}

/**
 * Builds a system as a user would: `nix-instantiate`/`nix-build '<nixpkgs/nixos>' -A system` with
 * `-I nixpkgs=NIXPKGS_LITE`, or with `flake: true`, `nix build path:DIR#nixosConfigurations.NAME.config.system.build.toplevel`.
 * Works in `dir` when given (kept), else in a temporary directory (removed).
 */
export async function buildSystem(source: FlakeSource & { flake?: boolean; dir?: string }): Promise<BuiltSystem> {
  const dir = source.dir ?? (await mkdtemp(join(tmpdir(), "cdktf-nixos-system-")));
  try {
    if (source.flake) {
      await writeFlake(dir, source);
      const attr = `nixosConfigurations.${JSON.stringify(source.name ?? "web")}.config.system.build.toplevel`;
      const { stdout } = await nixCommand(["nix", ...FLAKES, "build", "--no-link", "--json", ...NO_SUBSTITUTERS, `path:${dir}#${attr}`], dir);
      const [built] = JSON.parse(stdout) as { drvPath: string; outputs: { out: string } }[];
      return { toplevel: built.outputs.out, drvPath: built.drvPath };
    }
    const config = await writeConfiguration(dir, source);
    const args = ["<nixpkgs/nixos>", "-A", "system", "-I", `nixpkgs=${NIXPKGS_LITE}`, "-I", `nixos-config=${config}`];
    const drvPath = (await nixCommand(["nix-instantiate", ...args], dir)).stdout.trim();
    const toplevel = (await nixCommand(["nix-build", ...args, "--no-out-link", ...NO_SUBSTITUTERS], dir)).stdout.trim();
    return { toplevel, drvPath };
  } finally {
    if (source.dir === undefined) await rm(dir, { recursive: true, force: true });
  }
}

/** Evaluates `<nixpkgs/nixos>` attribute `attr` (e.g. "config.networking.hostName") strictly, as JSON. */
export async function evalSystem(source: SystemSource, attr: string): Promise<unknown> {
  const dir = await mkdtemp(join(tmpdir(), "cdktf-nixos-eval-"));
  try {
    const config = await writeConfiguration(dir, source);
    const { stdout } = await nixCommand(
      ["nix-instantiate", "--eval", "--strict", "--json", "<nixpkgs/nixos>", "-A", attr, "-I", `nixpkgs=${NIXPKGS_LITE}`,
        "-I", `nixos-config=${config}`],
      dir,
    );
    return JSON.parse(stdout);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The store paths of a closure, via the machine's nix-store. */
export async function closureOf(storePath: string): Promise<string[]> {
  return (await run("nix-store", ["--query", "--requisites", storePath])).stdout.split("\n").filter(Boolean);
}

async function nixCommand(argv: string[], cwd: string) {
  const [command, ...args] = argv;
  const result = await run(command!, args, { cwd, check: false });
  if (result.exitCode !== 0) {
    throw new Error(`${argv.join(" ")} failed (exit ${result.exitCode}) in ${cwd}:\n${result.stderr.trim()}`);
  }
  return result;
}

async function writeFiles(dir: string, files: Record<string, string>): Promise<void> {
  for (const [name, content] of Object.entries(files)) {
    await mkdir(dirname(join(dir, name)), { recursive: true });
    await writeFile(join(dir, name), content);
  }
}
