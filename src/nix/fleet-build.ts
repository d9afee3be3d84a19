import { BuildError, EvaluateError } from "../errors";
import type { Redact } from "../redact";
import { render, runNix } from "./build";
import { fleetExpression, groupArgs, groupByNixPath, type FleetMember, type FleetSystem } from "./fleet-evaluation";
import { type LocalSystem } from "./system";

/** One host's system, for the evaluation and build of a whole fleet: a member of the synth's evaluation, with its real module arguments. */
export interface FleetBuildMember extends FleetMember {
  /** Only instantiate: the host builds it (a system of another architecture). */
  readonly buildOnTarget: boolean;
}

/** A member's outcome: its system (built, or instantiated for buildOnTarget), or why it has none. */
export type FleetBuildResult =
  | { readonly ok: true; readonly system: LocalSystem & { readonly drvPath: string } }
  | { readonly ok: false; readonly error: EvaluateError | BuildError };


export interface FleetBuildOptions {
  /** Extra arguments for every Nix command, e.g. ["--show-trace"]. */
  readonly extraArgs?: readonly string[];
  /** Takes sensitive module arguments out of Nix's messages. */
  readonly redact?: Redact;
  /** Hears each line Nix writes while it builds. */
  readonly onLog?: (line: string) => void;
}

/** How many members are evaluated at once when a group's evaluation failed and each is evaluated alone. */
const SEPARATE_EVALUATIONS = 4;

/**
 * Evaluates every member with one `nix-instantiate` per NIX_PATH (writing the derivations), then realises all the
 * toplevels to build here with one `nix-store --realise --keep-going`, so Nix builds them in parallel and shares
 * what they have in common. A build that fails fails only its member. An evaluation that fails is repeated for each
 * member of its group alone (one Nix process cannot say which member broke it), so it too fails only the members
 * whose configuration fails.
 */
export async function buildFleet(members: readonly FleetBuildMember[], options: FleetBuildOptions = {}): Promise<Map<string, FleetBuildResult>> {
  const extra = options.extraArgs ?? [];
  const results = new Map<string, FleetBuildResult>();
  const evaluate = async (group: readonly FleetBuildMember[]): Promise<void> => {
    // --read-write-mode: evaluating drvPath writes the derivations, which the build (here or on a host) needs
    const args = ["--eval", "--strict", "--json", "--read-write-mode", ...groupArgs(group), ...extra, "-"];
    let evaluated: Record<string, FleetSystem>;
    try {
      evaluated = JSON.parse(await runNix("nix-instantiate", args, "evaluate", { stdin: fleetExpression(group), redact: options.redact })) as typeof evaluated;
    } catch (err) {
      if (!(err instanceof EvaluateError)) throw err;
      if (group.length > 1) {
        await eachAtMost(SEPARATE_EVALUATIONS, group, (member) => evaluate([member]));
        return;
      }
      const error = new EvaluateError(`evaluating ${group[0].name} failed: ${err.message.replace(/^nix-instantiate failed: /, "")}`, {
        command: `${render("nix-instantiate", args)} < <${group[0].name}'s expression>`,
        stderr: err.stderr,
        exitCode: err.exitCode,
      });
      results.set(group[0].name, { ok: false, error });
      return;
    }
    for (const member of group) {
      const { drv, out, system } = evaluated[member.name];
      results.set(member.name, { ok: true, system: { drvPath: drv, outPath: out, system } });
    }
  };
  for (const group of groupByNixPath(members)) await evaluate(group);

  const toBuild = members.filter((m) => !m.buildOnTarget && results.get(m.name)?.ok === true);
  const drvs = [...new Set(toBuild.map((m) => (results.get(m.name) as { system: { drvPath: string } }).system.drvPath))];
  if (drvs.length === 0) return results;
  const args = ["--realise", "--keep-going", ...drvs, ...extra];
  try {
    await runNix("nix-store", args, "build", { onLog: options.onLog });
  } catch (err) {
    if (!(err instanceof BuildError)) throw err;
    // --keep-going built what it could: find whose toplevel is missing
    const outs = toBuild.map((m) => (results.get(m.name) as { system: LocalSystem }).system.outPath);
    const invalid = new Set((await runNix("nix-store", ["--check-validity", "--print-invalid", ...outs], "build")).trim().split("\n").filter(Boolean));
    for (const member of toBuild) {
      const system = (results.get(member.name) as { system: LocalSystem & { drvPath: string } }).system;
      if (invalid.has(system.outPath)) {
        results.set(member.name, {
          ok: false,
          error: new BuildError(`building ${system.drvPath} failed: ${err.message.replace(/^nix-store failed: /, "")}`, {
            command: render("nix-store", ["--realise", system.drvPath]),
            stderr: err.stderr,
            exitCode: err.exitCode,
          }),
        });
      }
    }
  }
  return results;
}

async function eachAtMost<T>(limit: number, items: readonly T[], work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
