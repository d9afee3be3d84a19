import { nixError } from "./nix-errors";
import { buildHint } from "./build";
import { execFileSync } from "node:child_process";
import { EvaluateError } from "../errors";
import { NO_REDACTION, type Redact } from "../redact";
import { configurationImageEvaluation, flakeImageEvaluation, imageAttribute, type ImageFormat } from "./image";
import { configurationSystemExpression, flakeSystemExpression, moduleArgsExpression, nixAttrName } from "./system";

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
  /** An image of the configuration (NixosImage.fromConfiguration): its derivation too, and the toplevel it boots. */
  readonly image?: ImageFormat;
}

export interface EvaluatedSystem {
  readonly drvPath: string;
  /** The toplevel a build of drvPath makes. */
  readonly outPath: string;
  readonly system: string;
  /** For a member with `image`: the image's derivation and output, and how EC2 boots it. */
  readonly image?: EvaluatedImage;
}

export interface EvaluatedImage {
  readonly drvPath: string;
  readonly outPath: string;
  /** `uefi` or `legacy-bios`, as nixpkgs' amazon image module says (config.ec2.efi). */
  readonly bootMode: string;
  /** The disk format nixpkgs writes it in (`amazonImage.format`: vpc, raw, qcow2). */
  readonly diskFormat: string;
}

/**
 * The Nix expression that evaluates several systems at once, as an attribute set name → { drv, out, system }: the one
 * expression of a fleet, for the synth-time evaluation (Terraform's trigger) and push's build (what is deployed). It
 * holds the module arguments, so it goes to Nix on stdin, never on a command line.
 */
export function fleetExpression(members: readonly FleetMember[]): string {
  const entries = members.map((member) => {
    if (member.image !== undefined) {
      const evaluation = member.flake !== undefined
        ? flakeImageEvaluation(member.flake, member.image)
        : configurationImageEvaluation(member.configuration as string, `args.${nixAttrName(member.name)}`, member.image);
      return `  ${nixAttrName(member.name)} = let e = ${evaluation}; t = e.config.system.build.toplevel; i = ${imageAttribute("e", member.image)}; in ` +
        `{ drv = t.drvPath; out = t.outPath; inherit (t) system; image = { drv = i.drvPath; out = i.outPath; ` +
        `bootMode = if e.config.ec2.efi or false then "uefi" else "legacy-bios"; diskFormat = e.config.amazonImage.format or "vpc"; }; };`;
    }
    const toplevel = member.flake !== undefined
      ? flakeSystemExpression(member.flake)
      : configurationSystemExpression(member.configuration as string, `args.${nixAttrName(member.name)}`);
    // not `outPath`: builtins.toJSON turns a set with an outPath into that string
    return `  ${nixAttrName(member.name)} = let t = ${toplevel}; in { drv = t.drvPath; out = t.outPath; inherit (t) system; };`;
  });
  const args = moduleArgsExpression(Object.fromEntries(members.map((m) => [m.name, m.moduleArgs])));
  return `let args = ${args}; in {\n${entries.join("\n")}\n}`;
}

/** What fleetExpression gives for each member. */
export interface FleetSystem {
  readonly drv: string;
  readonly out: string;
  readonly system: string;
  readonly image?: { readonly drv: string; readonly out: string; readonly bootMode: string; readonly diskFormat: string };
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

export interface FleetEvaluationOptions {
  /** Extra arguments for Nix, e.g. ["--show-trace"]. */
  readonly extraArgs?: readonly string[];
  readonly redact?: Redact;
}

/**
 * Evaluates every member with as few Nix processes as possible: one per distinct NIX_PATH (usually one per stack),
 * instead of one per machine. Read-only: derivation paths are computed, nothing is written to the store.
 *
 * A failure is one EvaluateError per group whose message is Nix's first error line and where it points
 * (`at file:line:column`), naming the members whose configuration that file is (or all members of the group when it
 * is a shared file); Nix's whole output is in `stderr`.
 */
export function evaluateFleet(members: readonly FleetMember[], options: FleetEvaluationOptions = {}): Map<string, EvaluatedSystem> {
  const results = new Map<string, EvaluatedSystem>();
  const redact = options.redact ?? NO_REDACTION;
  for (const group of groupByNixPath(members)) {
    const args = ["--eval", "--strict", "--json", ...groupArgs(group), ...(options.extraArgs ?? []), "-"];
    let stdout: string;
    try {
      stdout = execFileSync("nix-instantiate", args, {
        encoding: "utf8", input: fleetExpression(group), stdio: ["pipe", "pipe", "pipe"], maxBuffer: 64 * 1024 * 1024,
      });
    } catch (err) {
      const stderr = redact(String((err as { stderr?: string }).stderr ?? ""));
      const { reason, location } = nixError(stderr);
      const file = location?.replace(/:\d+:\d+$/, "");
      // the member whose configuration Nix points at, or names in its message (a type error names the defining file)
      const culprits = group.filter((m) => m.configuration !== undefined && (m.configuration === file || (reason ?? "").includes(m.configuration)));
      const names = (culprits.length > 0 ? culprits : group).map((m) => m.name);
      const notInstalled = (err as NodeJS.ErrnoException).code === "ENOENT";
      throw new EvaluateError(`evaluating the NixOS configuration of ${names.join(", ")} failed: ${reason ?? redact((err as Error).message)}` +
        (location !== undefined ? ` (at ${location})` : ""), {
        command: `${["nix-instantiate", ...args].join(" ")} < <fleet expression>`,
        stderr,
        hint: notInstalled ? "is Nix installed and nix-instantiate on PATH?" : buildHint(stderr),
      });
    }
    for (const [name, value] of Object.entries(JSON.parse(stdout) as Record<string, FleetSystem>)) results.set(name, {
      drvPath: value.drv, outPath: value.out, system: value.system,
      ...(value.image === undefined ? {} : { image: { drvPath: value.image.drv, outPath: value.image.out, bootMode: value.image.bootMode, diskFormat: value.image.diskFormat } }),
    });
  }
  return results;
}

