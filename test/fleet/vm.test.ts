import { describe, expect, it } from "vitest";
import { LocalArgsError, type LocalHost } from "../../src/fleet/local-args";
import { findHost, planVm, vmDiskImage } from "../../src/fleet/vm";
import { deploymentSpec } from "./deployment-spec";

const web: LocalHost = {
  name: "web",
  spec: deploymentSpec("web", { nixosArgs: { greeting: "${var.greeting}", port: 8080 } }),
  tags: {},
  input: { nixos_args: { greeting: "hi \"there\"", port: 8080 } },
};

describe("planVm", () => {
  it("builds the deployment's configuration as <nixpkgs/nixos>'s vm, with the module arguments on Nix's stdin", () => {
    const plan = planVm(web, {});
    expect(plan.build).toEqual({
      expression: '(import <nixpkgs/nixos> { configuration = { imports = [ "/work/app/nixos/web.nix" ]; _module.args = ' +
        'builtins.fromJSON "{\\"greeting\\":\\"hi \\\\\\"there\\\\\\"\\",\\"port\\":8080}"; }; }).vm',
      includes: ["nixpkgs=/work/nixpkgs", "nixos-config=/work/app/nixos/web.nix"],
      what: "the VM of web",
    });
    expect(plan.args.origins).toEqual({ greeting: "state", port: "stack" });
  });

  it("a flake host: nixosConfigurations.NAME.config.system.build.vm", () => {
    const plan = planVm({ ...web, spec: deploymentSpec("web", { source: { flake: "path:/work/infra#web" } }) }, {});
    expect(plan.build).toEqual({
      expression: '(builtins.getFlake "path:/work/infra").nixosConfigurations.web.config.system.build.vm',
      includes: [],
      flakes: true,
      what: "the VM of web",
    });
  });

  it("refuses an unknown --arg and an unknown host", () => {
    expect(() => planVm(web, { gretting: "x" })).toThrow(new LocalArgsError("--arg gretting: no module argument of web has that name (they have: greeting, port)"));
    expect(() => findHost([web], "wbe")).toThrow(new LocalArgsError("the stack has no host 'wbe' (hosts: web)"));
  });
});

describe("vmDiskImage", () => {
  it("is NAME.qcow2 in the current directory, or NIX_DISK_IMAGE", () => {
    expect(vmDiskImage("/nix/store/x-nixos-vm/bin/run-web-vm", "/work/app", {})).toBe("/work/app/web.qcow2");
    expect(vmDiskImage("/nix/store/x-nixos-vm/bin/run-db-replica-vm", "/work/app", {})).toBe("/work/app/db-replica.qcow2");
    expect(vmDiskImage("/nix/store/x-nixos-vm/bin/run-web-vm", "/work/app", { NIX_DISK_IMAGE: "/tmp/web.img" })).toBe("/tmp/web.img");
  });
});
