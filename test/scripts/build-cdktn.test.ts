import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";
import { cdktnManifest, cdktnSpecifier, rewriteSpecifiers, strayImports, type ProjectManifest } from "../../scripts/build-cdktn";

const ROOT = join(__dirname, "..", "..");

describe("the cdktn build", () => {
  it("maps the core and the AWS provider's modules onto cdktn's, and nothing else", () => {
    expect(cdktnSpecifier("cdktf")).toBe("cdktn");
    expect(cdktnSpecifier("cdktf/lib/synthesize/types")).toBe("cdktn/lib/synthesize/types");
    expect(cdktnSpecifier("@cdktf/provider-aws/lib/instance")).toBe("@cdktn/provider-aws/lib/instance");
    expect(cdktnSpecifier("@cdktf/provider-aws")).toBe("@cdktn/provider-aws");
    expect(cdktnSpecifier("cdktf-nixos")).toBeUndefined();
    expect(cdktnSpecifier("constructs")).toBeUndefined();
    expect(cdktnSpecifier("./core")).toBeUndefined();
  });

  it("rewrites the specifiers of emitted JavaScript and declarations, not the text around them", () => {
    const js = `// cdktf's core, see "cdktf"
var cdktf_1 = require("cdktf");
var instance_1 = require("@cdktf/provider-aws/lib/instance");
var constructs_1 = require("constructs");
`;
    expect(rewriteSpecifiers(js)).toEqual({
      rewritten: 2,
      text: `// cdktf's core, see "cdktf"
var cdktf_1 = require("cdktn");
var instance_1 = require("@cdktn/provider-aws/lib/instance");
var constructs_1 = require("constructs");
`,
    });
    expect(rewriteSpecifiers(`export { Token, type ISynthesisSession, } from "cdktf";\nexport { Ami } from "@cdktf/provider-aws/lib/ami";\n`)).toEqual({
      rewritten: 2,
      text: `export { Token, type ISynthesisSession, } from "cdktn";\nexport { Ami } from "@cdktn/provider-aws/lib/ami";\n`,
    });
  });

  it("finds any other module that would load cdktf: an import, a require, an inline import type, a path into node_modules", () => {
    expect(strayImports([
      { path: "constructs/core.js", text: `require("cdktn"); require("@cdktn/provider-aws/lib/ami");` },
      { path: "constructs/a.d.ts", text: `import { Construct } from "constructs";\nexport declare const t: import("cdktf").IResolvable;` },
      { path: "constructs/b.js", text: `const x = require("@cdktf/provider-google/lib/x");` },
      { path: "constructs/c.d.ts", text: `import { Token } from "../../node_modules/cdktn/lib";` },
      { path: "cli/bin.js", text: `// run "cdktf synth"\nrequire("cdktf-nixos/deploy");` },
    ])).toEqual([
      "constructs/a.d.ts: cdktf",
      "constructs/b.js: @cdktf/provider-google/lib/x",
      "constructs/c.d.ts: ../../node_modules/cdktn/lib",
    ]);
  });

  it("writes cdktn-nixos's package.json from the project's: cdktn's peers, the CLI under both names, no scripts", () => {
    const project = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as ProjectManifest;
    const manifest = cdktnManifest(project, ">=10.6.0 <10.8.0");
    expect(manifest).toMatchObject({
      name: "cdktn-nixos",
      version: project.version,
      main: project.main,
      exports: project.exports,
      files: project.files,
      dependencies: project.dependencies,
      bin: { "cdktf-nixos": "lib/cli/bin.js", "cdktn-nixos": "lib/cli/bin.js" },
      peerDependencies: {
        cdktn: `^${project.devDependencies.cdktn}`,
        "@cdktn/provider-aws": `^${project.devDependencies["@cdktn/provider-aws"]}`,
        constructs: ">=10.6.0 <10.8.0",
      },
    });
    expect(manifest.description).toContain("CDK Terrain");
    expect(Object.keys(manifest)).not.toContain("scripts");
    expect(Object.keys(manifest)).not.toContain("devDependencies");
    // the project's fields in the project's order
    expect(Object.keys(manifest)).toEqual(Object.keys(project).filter((k) => k !== "scripts" && k !== "devDependencies"));
  });
});
