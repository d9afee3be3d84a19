import { describe, expect, it } from "vitest";
import { configurationImageEvaluation, flakeImageEvaluation, imageAttribute } from "../../src/nix/image";

describe("image expressions", () => {
  it("a configuration's image: its own module arguments, the format's module named through modulesPath (as configurations name it)", () => {
    expect(imageAttribute(configurationImageEvaluation("/p/web.nix", "ARGS", "amazon"), "amazon")).toBe(
      '(import <nixpkgs/nixos> { configuration = { imports = [ "/p/web.nix" ({ modulesPath, ... }: { imports = [ (modulesPath + "/../maintainers/scripts/ec2/amazon-image.nix") ]; }) ]; _module.args = ARGS; }; })' +
        ".config.system.build.amazonImage");
    expect(configurationImageEvaluation("/p/web.nix", "ARGS", "raw")).toBe(
      '(import <nixpkgs/nixos> { configuration = { imports = [ "/p/web.nix" ({ modulesPath, ... }: { imports = [ (modulesPath + "/../modules/virtualisation/disk-image.nix") ]; }) ' +
        '{ image.format = "raw"; } ]; _module.args = ARGS; }; })');
  });

  it("a flake's image: the configuration extended with the module of the nixpkgs it was built with", () => {
    expect(imageAttribute(flakeImageEvaluation("path:/p#web", "iso"), "iso")).toBe(
      '(let c = (builtins.getFlake "path:/p").nixosConfigurations.web; in c.extendModules { modules = [ ' +
        '(c._module.specialArgs.modulesPath + "/../modules/installer/cd-dvd/installation-cd-minimal.nix") ]; }).config.system.build.isoImage');
  });
});
