import { describe, expect, it } from "vitest";
import { fleetExpression } from "../../src/nix/fleet-evaluation";

describe("fleetExpression (the synth-time evaluation and push's build)", () => {
  it("evaluates every host of a NIX_PATH group in one expression that holds the module arguments (it goes on stdin)", () => {
    expect(fleetExpression([
      { name: "web", configuration: "/p/nixos/web.nix", nixPath: {}, moduleArgs: { peer: "10.0.0.5" } },
      { name: "db/replica", flake: "path:/p#db", nixPath: {}, moduleArgs: {} },
    ])).toBe([
      `let args = builtins.fromJSON "{\\"web\\":{\\"peer\\":\\"10.0.0.5\\"},\\"db/replica\\":{}}"; in {`,
      `  web = let t = (import <nixpkgs/nixos> { configuration = { imports = [ "/p/nixos/web.nix" ]; _module.args = args.web; }; }).system; ` +
        "in { drv = t.drvPath; out = t.outPath; inherit (t) system; };",
      `  "db/replica" = let t = (builtins.getFlake "path:/p").nixosConfigurations.db.config.system.build.toplevel; ` +
        "in { drv = t.drvPath; out = t.outPath; inherit (t) system; };",
      "}",
    ].join("\n"));
  });
});
