/**
 * Builds cdktn-nixos, the CDK Terrain package, from the same sources as cdktf-nixos (`npm run build:cdktn`; `npm run
 * pack:cdktn` packs it as `npm pack` packs the cdktf one). The sources are compiled against cdktn and
 * @cdktn/provider-aws (tsconfig.build-cdktn.json maps the cdktf specifiers onto them, so the types are checked against
 * what cdktn users install), then the specifiers of src/constructs/core.ts — the one module that imports the CDK core
 * and the provider — are rewritten to the cdktn packages. A build in which any other emitted file still names cdktf
 * fails: its users would load both cores.
 */
import { execFileSync } from "node:child_process";
import { copyFileSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { join, relative } from "node:path";

const ROOT = join(__dirname, "..");
const OUT = join(ROOT, "dist", "cdktn");
const LIB = join(OUT, "lib");
const CORE = join(LIB, "constructs", "core");

/** The cdktf specifiers and what each becomes in the cdktn package. */
export function cdktnSpecifier(specifier: string): string | undefined {
  if (specifier === "cdktf" || specifier.startsWith("cdktf/")) return `cdktn${specifier.slice("cdktf".length)}`;
  if (specifier === "@cdktf/provider-aws" || specifier.startsWith("@cdktf/provider-aws/")) return `@cdktn${specifier.slice("@cdktf".length)}`;
  return undefined;
}

/** Module specifiers in emitted JavaScript and declarations: require("x"), from "x", import("x"). */
const SPECIFIER = /(require\(|from |import\()"([^"]+)"/g;

/** An emitted module with its cdktf specifiers made cdktn's, and how many there were. */
export function rewriteSpecifiers(text: string): { text: string; rewritten: number } {
  let rewritten = 0;
  const result = text.replace(SPECIFIER, (whole, lead: string, specifier: string) => {
    const replacement = cdktnSpecifier(specifier);
    if (replacement === undefined) return whole;
    rewritten += 1;
    return `${lead}"${replacement}"`;
  });
  return { text: result, rewritten };
}

/** Imports of cdktf (or of anything by a node_modules path) in emitted modules: `file: specifier` each. */
export function strayImports(files: readonly { readonly path: string; readonly text: string }[]): string[] {
  return files.flatMap(({ path, text }) => [...text.matchAll(SPECIFIER)]
    .filter((m) => /^(cdktf(\/|$)|@cdktf\/)/.test(m[2]) || m[2].includes("node_modules"))
    .map((m) => `${path}: ${m[2]}`));
}

export type ProjectManifest = Record<string, unknown> & {
  readonly description: string;
  readonly devDependencies: Record<string, string>;
  readonly bin: Record<string, string>;
};

/**
 * cdktn-nixos's package.json from the project's: its name, cdktn's peers (the versions the project builds and tests
 * with, and the constructs range cdktn itself accepts), the CLI under both names; no scripts (prepack would build the
 * cdktf flavour over this one) and no devDependencies.
 */
export function cdktnManifest(pkg: ProjectManifest, constructsRange: string): Record<string, unknown> {
  const changed: Record<string, unknown> = {
    name: "cdktn-nixos",
    description: pkg.description.replace("CDK for Terraform", "CDK Terrain (cdktn)"),
    // the same CLI under its usual name, so scripts and CI jobs change nothing but the package they install
    bin: { ...pkg.bin, "cdktn-nixos": pkg.bin["cdktf-nixos"] },
    peerDependencies: {
      "@cdktn/provider-aws": `^${pkg.devDependencies["@cdktn/provider-aws"]}`,
      cdktn: `^${pkg.devDependencies.cdktn}`,
      constructs: constructsRange,
    },
  };
  return Object.fromEntries(Object.entries(pkg)
    .filter(([key]) => key !== "scripts" && key !== "devDependencies")
    .map(([key, value]) => [key, key in changed ? changed[key] : value]));
}

function emittedFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: "utf8" }).filter((f) => /\.(js|d\.ts)$/.test(f)).map((f) => join(dir, f));
}

function main(): void {
  rmSync(OUT, { recursive: true, force: true });
  execFileSync("npx", ["tsc", "-p", join(ROOT, "tsconfig.build-cdktn.json")], { cwd: ROOT, stdio: "inherit" });

  for (const file of [`${CORE}.js`, `${CORE}.d.ts`]) {
    const { text, rewritten } = rewriteSpecifiers(readFileSync(file, "utf8"));
    if (rewritten === 0) throw new Error(`${relative(ROOT, file)} names no cdktf module: is src/constructs/core.ts still the core's one module?`);
    writeFileSync(file, text);
  }
  const strays = strayImports(emittedFiles(LIB).map((file) => ({ path: relative(LIB, file), text: readFileSync(file, "utf8") })));
  if (strays.length > 0) {
    throw new Error(`only src/constructs/core.ts may import the CDK core or the provider; the cdktn build found:\n  ${strays.join("\n  ")}`);
  }

  const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as ProjectManifest;
  const cdktn = JSON.parse(readFileSync(join(ROOT, "node_modules", "cdktn", "package.json"), "utf8")) as { peerDependencies: Record<string, string> };
  const manifest = cdktnManifest(pkg, cdktn.peerDependencies.constructs);
  writeFileSync(join(OUT, "package.json"), `${JSON.stringify(manifest, null, 2)}\n`);
  copyFileSync(join(ROOT, "README.md"), join(OUT, "README.md"));
}

if (require.main === module) main();
