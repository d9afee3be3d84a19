import { describe, expect, it } from "vitest";
import { buildHostCommand } from "../../src/deploy/build-host";
import { deploy, type DeployRequest } from "../../src/deploy/deploy";
import { BuildError, DeployError } from "../../src/errors";
import { FakeHost, NEW, fakeDependencies, healthyHost } from "./fake-host";

const DRV = "/nix/store/0000000000000000000000000000000c-nixos-system-new.drv";
const KEY = `cache-1:${Buffer.alloc(32, 1).toString("base64")}`;
const request: DeployRequest = {
  source: { kind: "config", configuration: "/work/web.nix", includes: [] },
  target: { host: "198.51.100.7", knownHostsFile: "/dev/null" },
  buildHost: { host: "198.51.100.20", user: "builder", knownHostsFile: "/dev/null" },
};

describe("building on a build host", () => {
  it("realises every derivation there, with the cache as an extra substituter when there is one", () => {
    expect(buildHostCommand([DRV])).toBe(`nix-store --realise ${DRV}`);
    expect(buildHostCommand([DRV, "/nix/store/0000000000000000000000000000000d-x.drv"], { substituter: "s3://fleet?region=eu-west-1", publicKey: KEY })).toBe(
      `nix-store --realise --option extra-substituters 's3://fleet?region=eu-west-1' --option extra-trusted-public-keys ${KEY} ${DRV} /nix/store/0000000000000000000000000000000d-x.drv`,
    );
  });

  it("deploy --build-host: evaluates here, copies the derivations to the build host, builds there, then copies from its store to the target", async () => {
    const builder = new FakeHost([[/^nix-store --realise/, { stdout: `${NEW}\n` }]], { log: [], name: "builder@198.51.100.20:22" });
    const target = healthyHost();
    const world = fakeDependencies(target, { connect: async (spec) => (spec.host === "198.51.100.20" ? builder : target) });
    await deploy(request, world.deps);
    expect(world.calls).toEqual(["instantiate config"]);
    expect(builder.log).toEqual([`copy ${DRV}`, `nix-store --realise ${DRV}`, "open-store"]);
    expect(target.log[1]).toBe(`copy ${NEW}`);
    expect(builder.closed).toBe(1);
  });

  it("a build that fails there is the build's error, and nothing is copied to the target", async () => {
    const builder = new FakeHost([[/^nix-store --realise/, { exitCode: 1, stderr: "error: builder for '/nix/store/…-web.drv' failed with exit code 2" }]], { log: [], name: "builder@198.51.100.20:22" });
    const target = healthyHost();
    const world = fakeDependencies(target, { connect: async (spec) => (spec.host === "198.51.100.20" ? builder : target) });
    const err = await deploy(request, world.deps).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(BuildError);
    expect((err as DeployError).message).toBe("building on the build host builder@198.51.100.20:22 failed");
    expect(target.log).toEqual([]);
    expect(builder.closed).toBe(1);
  });
});
