import { describe, expect, it } from "vitest";
import { withTables } from "../../bench/readme-tables";
import type { BenchResults } from "../../bench/results";

describe("the README's benchmark tables", () => {
  const results: BenchResults = {
    date: "2026-12-06T08:00:00.000Z",
    commit: "0123456789abcdef0123456789abcdef01234567",
    machine: "2 × test CPU, Node v20",
    tables: { synth: { header: ["hosts", "constructs", "bare", "ratio"], rows: [["3", "0.81 s", "0.77 s", "1.05×"]], conditions: "median of 5" } },
  };

  it("are written from a results file, between their markers, naming the file and commit", () => {
    const readme = "intro\n<!-- bench:synth -->\n| old | table |\n|---|---|\n| 1 | 2 |\n<!-- /bench:synth -->\nafter\n";
    expect(withTables(readme, results, "/x/bench/results/2026-12-06-0123456789ab.json")).toBe(
      "intro\n<!-- bench:synth -->\n| hosts | constructs | bare | ratio |\n|---|---|---|---|\n| 3 | 0.81 s | 0.77 s | 1.05× |\n\n" +
        "<sub>median of 5; measured at 0123456789ab, from bench/results/2026-12-06-0123456789ab.json.</sub>\n<!-- /bench:synth -->\nafter\n",
    );
  });

  it("refuses a README without the section a result has", () => {
    expect(() => withTables("no markers\n", results, "r.json")).toThrow("README.md has no <!-- bench:synth --> … <!-- /bench:synth --> section");
  });
});
