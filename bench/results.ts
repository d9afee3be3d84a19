/**
 * Benchmark results, written where the README's tables come from: one file per run,
 * `bench/results/<date>-<commit>.json`, each benchmark adding its table. `bench/readme-tables.ts` writes the README's
 * tables from the newest file, so a number in the README is one a run measured.
 */
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from "node:fs";
import { cpus } from "node:os";
import { join } from "node:path";

export const RESULTS_DIR = join(__dirname, "results");
export const BENCHMARKS = ["copy", "push", "synth", "fleet-eval", "status", "cache", "image"] as const;
export type BenchmarkName = (typeof BENCHMARKS)[number];

export interface BenchTable {
  readonly header: readonly string[];
  readonly rows: ReadonlyArray<readonly string[]>;
  /** How it was measured (rounds, sizes, load), for the record. */
  readonly conditions: string;
  /** The commit whose build was measured (set by recordTable). */
  readonly commit?: string;
}

export interface BenchResults {
  readonly date: string;
  readonly commit: string;
  readonly machine: string;
  readonly tables: Partial<Record<BenchmarkName, BenchTable>>;
}

/** This run's file: BENCH_RESULTS_FILE when `npm run bench` set it, else today's for the checked-out commit. */
export function resultsFile(): string {
  if (process.env.BENCH_RESULTS_FILE) return process.env.BENCH_RESULTS_FILE;
  const commit = execFileSync("git", ["rev-parse", "--short=12", "HEAD"], { cwd: __dirname, encoding: "utf8" }).trim();
  return join(RESULTS_DIR, `${new Date().toISOString().slice(0, 10)}-${commit}.json`);
}

/**
 * Adds (or replaces) one benchmark's table in this run's results file; returns the file. The commit is the one whose
 * build was measured: BENCH_COMMIT when `npm run bench` built it at the start, else HEAD.
 */
export function recordTable(name: BenchmarkName, measured: BenchTable): string {
  const file = resultsFile();
  mkdirSync(RESULTS_DIR, { recursive: true });
  const commit = process.env.BENCH_COMMIT ?? execFileSync("git", ["rev-parse", "HEAD"], { cwd: __dirname, encoding: "utf8" }).trim();
  const table: BenchTable = { ...measured, commit };
  const dirty = execFileSync("git", ["status", "--porcelain", "--", "src", "bench"], { cwd: __dirname, encoding: "utf8" }).trim() !== "";
  const previous: BenchResults | undefined = existsSync(file) ? JSON.parse(readFileSync(file, "utf8")) as BenchResults : undefined;
  const results: BenchResults = {
    date: new Date().toISOString(),
    commit: `${commit}${dirty ? " (with uncommitted changes)" : ""}`,
    machine: `${cpus().length} × ${cpus()[0]?.model ?? "unknown CPU"}, Node ${process.version}`,
    tables: { ...previous?.tables, [name]: table },
  };
  writeFileSync(file, `${JSON.stringify(results, null, 2)}\n`);
  console.log(`\n${markdownTable(table)}\n\n(recorded in ${file})`);
  return file;
}

export function markdownTable(table: BenchTable): string {
  return [`| ${table.header.join(" | ")} |`, `|${table.header.map(() => "---").join("|")}|`, ...table.rows.map((row) => `| ${row.join(" | ")} |`)].join("\n");
}

/** The newest results file (by name: dates sort). */
export function newestResults(): string | undefined {
  if (!existsSync(RESULTS_DIR)) return undefined;
  const files = readdirSync(RESULTS_DIR).filter((f) => f.endsWith(".json")).sort();
  return files.length === 0 ? undefined : join(RESULTS_DIR, files.at(-1)!);
}
