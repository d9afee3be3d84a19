/**
 * Writes the README's benchmark tables from a results file (default: the newest in bench/results): the text between
 * `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` becomes that benchmark's table, with the file it came from.
 * `npm run bench` runs it last; `npx tsx bench/readme-tables.ts --check` fails when the README differs.
 */
import { readFileSync, writeFileSync } from "node:fs";
import { basename, join } from "node:path";
import { BENCHMARKS, markdownTable, newestResults, type BenchResults } from "./results";

export function withTables(readme: string, results: BenchResults, source: string): string {
  let text = readme;
  for (const name of BENCHMARKS) {
    const table = results.tables[name];
    if (table === undefined) continue;
    const pattern = new RegExp(`(<!-- bench:${name} -->\\n)[\\s\\S]*?(<!-- /bench:${name} -->)`);
    if (!pattern.test(text)) throw new Error(`README.md has no <!-- bench:${name} --> … <!-- /bench:${name} --> section`);
    const body = `${markdownTable(table)}\n\n<sub>${table.conditions}; measured at ${(table.commit ?? results.commit).slice(0, 12)}, from bench/results/${basename(source)}.</sub>\n`;
    text = text.replace(pattern, (_, open: string, close: string) => `${open}${body}${close}`);
  }
  return text;
}

if (require.main === module) {
  const args = process.argv.slice(2);
  const check = args.includes("--check");
  const source = args.find((a) => !a.startsWith("--")) ?? newestResults();
  if (source === undefined) throw new Error("no results in bench/results: run npm run bench first");
  const readmeFile = join(__dirname, "..", "README.md");
  const readme = readFileSync(readmeFile, "utf8");
  const updated = withTables(readme, JSON.parse(readFileSync(source, "utf8")) as BenchResults, source);
  if (check) {
    if (updated !== readme) {
      console.error(`README.md's benchmark tables are not those of ${source}: run npx tsx bench/readme-tables.ts`);
      process.exitCode = 1;
    }
  } else {
    writeFileSync(readmeFile, updated);
    console.log(`README.md tables written from ${source}`);
  }
}
