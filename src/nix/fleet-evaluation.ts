import { execFileSync } from "node:child_process";
import { EvaluateError } from "../errors";
import { configurationSystemExpression, flakeSystemExpression, moduleArgsFromJson, nixString } from "./system";

/** One system to evaluate at synth. */
export interface FleetMember {
  /** Unique within the evaluation; names the result. */
  readonly name: string;
  /** Absolute path of configuration.nix, or undefined for a flake. */
  readonly configuration?: string;
  /** `path:/abs#name` for a flake configuration. */
  readonly flake?: string;
  /** NIX_PATH entries, name → absolute path. Members with the same entries share one evaluation. */
  readonly nixPath: Readonly<Record<string, string>>;
  /** Module arguments (JSON-able; apply-time values replaced by stable placeholders). */
  readonly moduleArgs: Readonly<Record<string, unknown>>;
}

export interface EvaluatedSystem {
  readonly drvPath: string;
  readonly system: string;
}

/** The Nix expression that evaluates several systems at once, as an attribute set name → { drvPath, system }. */
export function fleetExpression(members: readonly FleetMember[]): string {
  const entries = members.map((member) => {
    const toplevel = member.flake !== undefined
      ? flakeSystemExpression(member.flake)
      : configurationSystemExpression(member.configuration as string, moduleArgsFromJson(JSON.stringify(member.moduleArgs)));
    return `  ${nixString(member.name)} = let t = ${toplevel}; in { drvPath = t.drvPath; system = t.system; };`;
  });
  return `{\n${entries.join("\n")}\n}`;
}

/** Members that share a NIX_PATH, so one Nix process can evaluate them together (usually one group per stack). */
export function groupByNixPath<T extends { readonly nixPath: Readonly<Record<string, string>> }>(members: readonly T[]): T[][] {
  const groups = new Map<string, T[]>();
  for (const member of members) {
    const key = JSON.stringify(Object.entries(member.nixPath).sort());
    groups.set(key, [...(groups.get(key) ?? []), member]);
  }
  return [...groups.values()];
}

/** The nix-instantiate arguments a group needs: its NIX_PATH entries, and flakes when a member is one. */
export function groupArgs(group: ReadonlyArray<{ readonly nixPath: Readonly<Record<string, string>>; readonly flake?: string }>): string[] {
  const includes = Object.entries(group[0].nixPath).flatMap(([name, path]) => ["-I", `${name}=${path}`]);
  const flakes = group.some((m) => m.flake !== undefined) ? ["--extra-experimental-features", "nix-command flakes"] : [];
  return [...flakes, ...includes];
}

/**
 * Evaluates every member with as few Nix processes as possible: one per distinct NIX_PATH (usually one per stack),
 * instead of one per machine. Read-only: derivation paths are computed, nothing is written to the store.
 */
export function evaluateFleet(members: readonly FleetMember[], extraArgs: readonly string[] = []): Map<string, EvaluatedSystem> {
  const results = new Map<string, EvaluatedSystem>();
  for (const group of groupByNixPath(members)) {
    const args = ["--eval", "--strict", "--json", ...groupArgs(group), ...extraArgs, "-E", fleetExpression(group)];
    let stdout: string;
    try {
      stdout = execFileSync("nix-instantiate", args, { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024 });
    } catch (err) {
      const stderr = String((err as { stderr?: string }).stderr ?? "");
      const reason = stderr.split("\n").find((l) => l.startsWith("error:"))?.replace(/^error:\s*/, "") ?? (err as Error).message;
      throw new EvaluateError(`evaluating ${group.map((m) => m.name).join(", ")} failed: ${reason}`, {
        command: ["nix-instantiate", ...args.slice(0, -1), "-E", "<fleet expression>"].join(" "),
        stderr,
      });
    }
    for (const [name, value] of Object.entries(JSON.parse(stdout) as Record<string, EvaluatedSystem>)) results.set(name, value);
  }
  return results;
}
