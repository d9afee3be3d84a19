import { createHash } from "node:crypto";
import { readdirSync, readFileSync, realpathSync, statSync } from "node:fs";
import { isAbsolute, join, relative, sep } from "node:path";

/**
 * What a synthesis was made from, recorded in the deployment manifest: the project directory it was synthesized
 * in, and the app's sources by content. A copied or moved project (cdktf.out holds absolute paths: the
 * configurations, the keys, the Terraform state) and a source whose content changed (whatever its mtime says: `cp -a`,
 * `git checkout`, `tar x` keep or set old ones) both make the synthesis stale.
 */
export interface SynthesisRecord {
  /** The real path of the directory `cdktf synth` ran the app in. */
  readonly projectDir: string;
  /** The app's sources, relative to projectDir, with the sha256 of their content (hex). */
  readonly sources: { readonly [path: string]: string };
}

/** Directories that never hold the app's sources. */
const NOT_SOURCE_DIRS = new Set(["node_modules", "cdktf.out"]);
/** Data files an app may read itself besides its modules (host lists, settings); lock files excepted. */
const DATA_FILE = /\.(json|ya?ml|toml)$/;
const NEVER_SOURCES = /(\.(nix|tfstate|tfstate\.backup|lock|lock\.hcl|qcow2)|^package-lock\.json)$/;
/** A source larger than this is recorded by size and mtime instead of content: hashing it each push would cost. */
const HASHED_BYTES = 64 * 1024 * 1024;

function walk(dir: string, keep: (name: string) => boolean, found: string[] = []): string[] {
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name.startsWith(".") || NOT_SOURCE_DIRS.has(entry.name) || NEVER_SOURCES.test(entry.name)) continue;
    const path = join(dir, entry.name);
    if (entry.isDirectory()) walk(path, keep, found);
    else if (entry.isFile() && keep(entry.name)) found.push(path);
  }
  return found;
}

/**
 * The app's sources in `projectDir`: the modules the app loaded (`loadedModules`: its own files and what they import,
 * outside node_modules), cdktf.json, and the data files (JSON, YAML, TOML) an app may read itself. Nix files do not
 * count (a push evaluates them itself), nor READMEs, test scripts or secrets. When the app loaded no module of the
 * project that can be seen (an ES module app), every file counts but those.
 */
export function appSources(projectDir: string, loadedModules: readonly string[]): string[] {
  const inProject = (file: string) => {
    const path = relative(projectDir, file);
    return path !== "" && !path.startsWith("..") && !isAbsolute(path) && !path.split(sep).some((part) => NOT_SOURCE_DIRS.has(part) || part.startsWith("."));
  };
  const modules = loadedModules.filter((file) => isAbsolute(file) && inProject(file) && !NEVER_SOURCES.test(file));
  const files = modules.length > 0
    ? [...modules, ...walk(projectDir, (name) => DATA_FILE.test(name))]
    : walk(projectDir, () => true);
  return [...new Set(files.map((file) => relative(projectDir, file)))].sort();
}

/** What a source's content is recorded as: its sha256, or its size and mtime when it is too large to hash each time. */
export function sourceDigest(file: string): string | undefined {
  try {
    const stat = statSync(file);
    if (!stat.isFile()) return undefined;
    if (stat.size > HASHED_BYTES) return `size:${stat.size}:mtime:${Math.trunc(stat.mtimeMs)}`;
    return createHash("sha256").update(readFileSync(file)).digest("hex");
  } catch {
    return undefined;
  }
}

/** The record of a synthesis running now, in the app's process: its directory and its loaded modules. */
export function synthesisRecord(projectDir: string, loadedModules: readonly string[]): SynthesisRecord {
  const real = realpathSync(projectDir);
  const sources: Record<string, string> = {};
  for (const path of appSources(real, loadedModules.map((file) => (file.startsWith(projectDir) ? join(real, relative(projectDir, file)) : file)))) {
    const digest = sourceDigest(join(real, path));
    if (digest !== undefined) sources[path] = digest;
  }
  return { projectDir: real, sources };
}

/** The first recorded source whose content is not what the synthesis saw (changed or gone), if any. */
export function changedSource(record: SynthesisRecord, ignore: ReadonlySet<string> = new Set()): string | undefined {
  return Object.keys(record.sources).find((path) => !ignore.has(join(record.projectDir, path)) &&
    sourceDigest(join(record.projectDir, path)) !== record.sources[path]);
}
