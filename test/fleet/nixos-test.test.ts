import { describe, expect, it } from "vitest";
import type { DeploymentSpec } from "../../src/spec/manifest";
import { LocalArgsError, type LocalHost } from "../../src/fleet/local-args";
import {
  NixosTestError,
  addressExpressions,
  addressReplacer,
  nixosTestExpression,
  nodeNameOf,
  planNixosTest,
  planNixosTestNodes,
} from "../../src/fleet/nixos-test";
import { deploymentSpec } from "./deployment-spec";

const host = (name: string, overrides: Partial<DeploymentSpec> = {}, input?: LocalHost["input"]): LocalHost =>
  ({ name, spec: deploymentSpec(name, overrides), tags: {}, input });

describe("node names", () => {
  it("are host names where those are Python identifiers, with _ for every other character", () => {
    expect(["web", "db/replica", "web-1", "9lives"].map(nodeNameOf)).toEqual(["web", "db_replica", "web_1", "_9lives"]);
  });
});

describe("address replacement", () => {
  it("knows a host's address by its host expression and its EC2 instance's IPs and DNS names", () => {
    expect(addressExpressions(host("db"))).toEqual([
      "aws_instance.db_Instance_CD34.public_ip",
      "aws_instance.db_Instance_CD34.private_ip",
      "aws_instance.db_Instance_CD34.private_dns",
      "aws_instance.db_Instance_CD34.public_dns",
    ]);
    expect(addressExpressions(host("db", { host: "${aws_eip.db_Ip_AB12.public_ip}", instanceId: undefined }))).toEqual(["aws_eip.db_Ip_AB12.public_ip"]);
    expect(addressExpressions(host("db", { host: "203.0.113.9", instanceId: undefined }))).toEqual([]);
  });

  it("replaces those expressions anywhere in a value, inside strings too, and leaves every other expression", () => {
    const replace = addressReplacer([{ nodeName: "db", host: host("db") }, { nodeName: "cache_1", host: host("cache/1", { host: "${aws_eip.c.public_ip}" }) }]);
    expect(replace({
      url: "postgres://${aws_instance.db_Instance_CD34.private_ip}:5432/app",
      peers: ["${aws_eip.c.public_ip}", "${ aws_instance.db_Instance_CD34.private_dns }"],
      other: "${aws_instance.web_Instance_CD34.private_ip}",
      greeting: "${var.greeting}",
      port: 5432,
    })).toEqual({
      url: "postgres://db:5432/app",
      peers: ["cache_1", "db"],
      other: "${aws_instance.web_Instance_CD34.private_ip}",
      greeting: "${var.greeting}",
      port: 5432,
    });
  });
});

describe("planNixosTestNodes", () => {
  it("refuses hosts of two flakes, mixed nixPaths and node-name clashes, saying what to do", () => {
    expect(() => planNixosTestNodes([host("web", { source: { flake: "path:/work/infra#web" } }), host("db", { source: { flake: "path:/work/db#db" } })]))
      .toThrow(new NixosTestError("the hosts come from different flakes (web: path:/work/infra; db: path:/work/db); " +
        "one test takes its node.specialArgs from one flake: select hosts of one flake with --on"));
    expect(() => planNixosTestNodes([host("web"), host("db", { source: { configuration: "/db.nix", nixPath: { nixpkgs: "/other" } } })]))
      .toThrow('the hosts use different nixPath (web: [["nixpkgs","/work/nixpkgs"]]; db: [["nixpkgs","/other"]]); one test runs on one nixpkgs: select hosts that share it with --on');
    expect(() => planNixosTestNodes([host("web-1"), host("web_1")])).toThrow("hosts web-1 and web_1 would both be test node web_1; leave one out with --on");
  });
});

describe("nixosTestExpression", () => {
  const web = host("web", { nixosArgs: { upstream: "http://${aws_instance.app_Instance_CD34.private_ip}:8080", greeting: "${var.greeting}", port: 8080 }, sensitiveArgs: ["greeting"] },
    { nixos_args: { upstream: "http://10.0.1.7:8080", greeting: "hi", port: 8080 } });
  const app = host("app", { source: { configuration: "/work/app/nixos/app server.nix", nixPath: { nixpkgs: "/work/nixpkgs" } } });
  const options = { stack: "fleet", testScript: "/work/app/tests/fleet.py", forFile: false };

  it("is a runNixOSTest of the nodes with their module arguments, as Nix reads it from stdin", () => {
    const plan = planNixosTest([web, app], {}, options);
    expect(plan.origins).toEqual({ web: { upstream: "test network", greeting: "state", port: "stack" }, app: {} });
    expect(nixosTestExpression(plan.test)).toBe(`{ nixpkgs ? <nixpkgs>, pkgs ? import nixpkgs { } }:
pkgs.testers.runNixOSTest {
  name = "fleet";
  nodes = {
    # host web
    web = {
      imports = [ /work/app/nixos/web.nix ];
      _module.args = {
        upstream = "http://app:8080";
        greeting = "hi";
        port = 8080;
      };
    };
    # host app
    app = {
      imports = [ (/. + "/work/app/nixos/app server.nix") ];
    };
  };
  testScript = builtins.readFile /work/app/tests/fleet.py;
}
`);
  });

  it("written to a file: paths relative to it, and how to build it", () => {
    const plan = planNixosTest([web, app], { greeting: "test greeting" }, { ...options, forFile: true });
    const text = nixosTestExpression(plan.test, { path: "/work/app/tests/fleet.nix", shownAs: "tests/fleet.nix", projectDir: "/work/app" });
    expect(text.split("\n").slice(0, 7)).toEqual([
      "# NixOS integration test of stack fleet: web, app.",
      "# Written by `cdktf-nixos test --write`: the hosts' configurations and module arguments, other hosts' addresses",
      "# replaced by their node names. Write it again after changing the stack rather than editing it.",
      "#   run:         nix-build tests/fleet.nix -A driver -I nixpkgs=/work/nixpkgs && ./result/bin/nixos-test-driver",
      "#   interactive: nix-build tests/fleet.nix -A driverInteractive -I nixpkgs=/work/nixpkgs && ./result/bin/nixos-test-driver",
      "{ nixpkgs ? <nixpkgs>, pkgs ? import nixpkgs { } }:",
      "pkgs.testers.runNixOSTest {",
    ]);
    expect(text).toContain("      imports = [ ../nixos/web.nix ];\n");
    expect(text).toContain('      imports = [ (/. + "/work/app/nixos/app server.nix") ];\n');
    expect(text).toContain('        greeting = "test greeting";\n');
    expect(text).toContain("  testScript = builtins.readFile ./fleet.py;\n");
    // outside the project: absolute, not a climb to the root
    const outside = nixosTestExpression({ ...plan.test, testScript: "/srv/tests/fleet.py" }, { path: "/work/app/tests/fleet.nix", shownAs: "tests/fleet.nix", projectDir: "/work/app" });
    expect(outside).toContain("  testScript = builtins.readFile /srv/tests/fleet.py;\n");
  });

  it("flake hosts: the modules and specialArgs their nixosSystem was given, on the flake's nixpkgs", () => {
    const cache = host("cache", { source: { flake: "path:/work/app/infra#cache-1" } });
    const plan = planNixosTest([cache], {}, options);
    expect(nixosTestExpression(plan.test)).toBe(`{ nixpkgs ? (builtins.getFlake "path:/work/app/infra").inputs.nixpkgs, pkgs ? import nixpkgs { } }:
let flake = builtins.getFlake "path:/work/app/infra"; in
pkgs.testers.runNixOSTest {
  name = "fleet";
  # what the flake's nixosSystem gave its modules for imports (one set for every node)
  node.specialArgs = builtins.removeAttrs flake.nixosConfigurations.cache-1._module.specialArgs [ "modulesPath" ];
  nodes = {
    # host cache
    cache = {
      imports = flake.nixosConfigurations.cache-1._module.args.modules;
    };
  };
  testScript = builtins.readFile /work/app/tests/fleet.py;
}
`);
    // beside configuration hosts: <nixpkgs> from their nixPath; written into the project: the flake relative to the file
    const mixed = nixosTestExpression(planNixosTest([web, app, cache], { greeting: "x" }, { ...options, forFile: true }).test,
      { path: "/work/app/tests/fleet.nix", shownAs: "tests/fleet.nix", projectDir: "/work/app" });
    expect(mixed).toContain("#   run:         nix-build --extra-experimental-features 'nix-command flakes' tests/fleet.nix -A driver -I nixpkgs=/work/nixpkgs && ./result/bin/nixos-test-driver\n");
    expect(mixed).toContain("{ nixpkgs ? <nixpkgs>, pkgs ? import nixpkgs { } }:\nlet flake = builtins.getFlake (toString ../infra); in\n");
  });

  it("refuses to write a sensitive value from the state into a file", () => {
    expect(() => planNixosTest([web, app], {}, { ...options, forFile: true })).toThrow(new LocalArgsError(
      "sensitive module arguments (web: greeting) would be written into the file; give test values for them with --arg greeting=VALUE"));
  });
});
