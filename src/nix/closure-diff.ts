/**
 * What changed between two closures, by package name and version, the way `nix store diff-closures` groups them: a
 * store path's name loses its output suffix (`-man`, `-dev`, `-lib64`), then splits into name and version at the first
 * dash not followed by a letter (Nix's DrvName). Paths whose versions did not change are left out, as nvd and
 * diff-closures leave out rebuilds.
 */
export interface ClosureChange {
  readonly name: string;
  /** Versions in the old closure (sorted); empty when the package was added. "" is a path without a version. */
  readonly before: readonly string[];
  /** Versions in the new closure (sorted); empty when the package was removed. */
  readonly after: readonly string[];
}

const STORE_PATH = /^\/nix\/store\/[0-9a-z]{32}-(.+)$/;
const OUTPUT_SUFFIX = /^(.*)-([a-z]+|lib32|lib64)$/;

/** Package name and version of a store path, as diff-closures reads them; undefined for a non-store path. */
export function packageOf(storePath: string): { name: string; version: string } | undefined {
  const match = STORE_PATH.exec(storePath);
  if (match === null) return undefined;
  let name = match[1];
  const output = OUTPUT_SUFFIX.exec(name);
  if (output !== null) name = output[1];
  for (let i = 0; i < name.length; i++) {
    if (name[i] === "-" && i + 1 < name.length && !/[A-Za-z]/.test(name[i + 1])) {
      return { name: name.slice(0, i), version: name.slice(i + 1) };
    }
  }
  return { name, version: "" };
}

function versions(closure: readonly string[]): Map<string, Set<string>> {
  const byName = new Map<string, Set<string>>();
  for (const path of closure) {
    const pkg = packageOf(path);
    if (pkg === undefined) continue;
    byName.set(pkg.name, (byName.get(pkg.name) ?? new Set()).add(pkg.version));
  }
  return byName;
}

/** Packages added, removed or changed in version from `before` to `after` (two closures), sorted by name. */
export function diffClosures(before: readonly string[], after: readonly string[]): ClosureChange[] {
  const old = versions(before);
  const now = versions(after);
  const changes: ClosureChange[] = [];
  for (const name of [...new Set([...old.keys(), ...now.keys()])].sort()) {
    const was = [...(old.get(name) ?? [])].sort();
    const is = [...(now.get(name) ?? [])].sort();
    if (JSON.stringify(was) !== JSON.stringify(is)) changes.push({ name, before: was, after: is });
  }
  return changes;
}

/** One change in diff-closures' words: `hello: 2.10 → 2.12`, `∅ → 1.0` for an addition, `ε` for no version. */
export function describeChange(change: ClosureChange): string {
  const side = (vs: readonly string[]) => (vs.length === 0 ? "∅" : vs.map((v) => v || "ε").join(", "));
  return `${change.name}: ${side(change.before)} → ${side(change.after)}`;
}
