import { describe, expect, it } from "vitest";
import { instantiateCommand } from "../../src/nix/build";
import { fleetExpression } from "../../src/nix/fleet-evaluation";
import { absoluteFlakeRef, flakeSystemExpression } from "../../src/nix/system";

describe("a flake's system, one expression wherever it is evaluated", () => {
  it("makes a relative reference absolute (builtins.getFlake needs one) and keeps one with a scheme", () => {
    expect(absoluteFlakeRef("./infra#web", "/work/app")).toBe("path:/work/app/infra#web");
    expect(absoluteFlakeRef(".#web", "/work/app")).toBe("path:/work/app#web");
    expect(absoluteFlakeRef("git+file:///work/app#web", "/elsewhere")).toBe("git+file:///work/app#web");
    expect(() => absoluteFlakeRef("nohash")).toThrow("flake 'nohash' is not REF#NAME");
  });

  it("is the same for deploy --flake, the synth-time evaluation and push's build", () => {
    const toplevel = flakeSystemExpression("path:/work/app#web");
    expect(toplevel).toBe('(builtins.getFlake "path:/work/app").nixosConfigurations.web.config.system.build.toplevel');
    const cli = instantiateCommand({ kind: "flake", ref: "./#web" }, {});
    expect(cli).toEqual({ program: "nix-instantiate", args: ["--extra-experimental-features", "nix-command flakes", "-"], stdin: flakeSystemExpression(absoluteFlakeRef("./#web")) });
    expect(fleetExpression([{ name: "web", flake: "path:/work/app#web", nixPath: {}, moduleArgs: {} }])).toContain(`let t = ${toplevel};`);
  });
});
