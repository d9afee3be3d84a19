import { execFileSync } from "node:child_process";
import { readdirSync, readFileSync } from "node:fs";
import { dirname, join, relative, resolve } from "node:path";
import { describe, expect, it } from "vitest";

const SRC = join(__dirname, "..", "src");

/** Every module of src/ with the src/ modules it imports (type-only imports included: they are still dependencies). */
function moduleGraph(): Map<string, string[]> {
  const files = readdirSync(SRC, { recursive: true, encoding: "utf8" }).filter((f) => f.endsWith(".ts")).map((f) => join(SRC, f));
  const graph = new Map<string, string[]>();
  for (const file of files) {
    const imports = [...readFileSync(file, "utf8").matchAll(/^(?:import|export)\b[^;]*?from "(\.[^"]+)"/gms)].map((m) => {
      const target = resolve(dirname(file), m[1]);
      return files.includes(`${target}.ts`) ? `${target}.ts` : join(target, "index.ts");
    });
    graph.set(relative(SRC, file), imports.map((i) => relative(SRC, i)));
  }
  return graph;
}

function findCycle(graph: Map<string, string[]>): string[] | undefined {
  const state = new Map<string, "visiting" | "done">();
  const stack: string[] = [];
  const visit = (node: string): string[] | undefined => {
    if (state.get(node) === "done") return undefined;
    if (state.get(node) === "visiting") return [...stack.slice(stack.indexOf(node)), node];
    state.set(node, "visiting");
    stack.push(node);
    for (const next of graph.get(node) ?? []) {
      const cycle = visit(next);
      if (cycle) return cycle;
    }
    stack.pop();
    state.set(node, "done");
    return undefined;
  };
  for (const node of graph.keys()) {
    const cycle = visit(node);
    if (cycle) return cycle;
  }
  return undefined;
}

describe("the module graph of src/", () => {
  const graph = moduleGraph();

  it("is read from the sources", () => {
    expect(graph.get("deploy/deploy.ts")).toContain("deploy/activation.ts");
    expect(graph.size).toBeGreaterThan(30);
  });

  it("has no import cycles", () => {
    expect(findCycle(graph)).toBeUndefined();
  });

  it("points one way (cli → fleet → deploy → nix): nix imports nothing from deploy, fleet, cli or constructs; deploy nothing from fleet, cli or constructs; fleet nothing from cli or constructs", () => {
    const offending = [...graph].flatMap(([file, imports]) => imports
      .filter((i) => (file.startsWith("nix/") && /^(deploy|fleet|cli|constructs)\//.test(i)) ||
        (file.startsWith("deploy/") && /^(fleet|cli|constructs)\//.test(i)) ||
        (file.startsWith("fleet/") && /^(cli|constructs)\//.test(i)))
      .map((i) => `${file} -> ${i}`));
    expect(offending).toEqual([]);
  });

  it("keeps spec/ a leaf: it imports spec/ and leaves only (modules that import nothing of ours)", () => {
    const leaves = new Set([...graph].filter(([, imports]) => imports.length === 0).map(([file]) => file));
    const offending = [...graph].filter(([file]) => file.startsWith("spec/"))
      .flatMap(([file, imports]) => imports.filter((i) => !i.startsWith("spec/") && !leaves.has(i)).map((i) => `${file} -> ${i}`));
    expect(offending).toEqual([]);
    expect([...graph.keys()].filter((f) => f.startsWith("spec/")).length).toBeGreaterThan(5);
  });

  it("keeps the constructs off the engine: they import no deploy/, fleet/ or cli/", () => {
    const offending = [...graph].filter(([file]) => file.startsWith("constructs/"))
      .flatMap(([file, imports]) => imports.filter((i) => /^(deploy|fleet|cli)\//.test(i)).map((i) => `${file} -> ${i}`));
    expect(offending).toEqual([]);
  });

  it("keeps ssh2 and the AWS SDK out of what `cdktf synth` loads", () => {
    const loaded = (entry: string) => JSON.parse(execFileSync(process.execPath, ["-r", "tsx/cjs", "-e",
      `require(${JSON.stringify(entry)}); console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /node_modules\\/(ssh2|@aws-sdk)\\//.test(f))))`,
    ], { encoding: "utf8" })) as string[];
    expect(loaded(join(SRC, "index.ts"))).toEqual([]);
    expect(loaded(join(SRC, "engine.ts")).some((f) => f.includes("/ssh2/"))).toBe(true);
    // the CLI starts without the AWS SDK (a fifth of a second); only `ami` and console host keys load it
    expect(loaded(join(SRC, "cli", "program.ts")).filter((f) => f.includes("/@aws-sdk/"))).toEqual([]);
  });
});
