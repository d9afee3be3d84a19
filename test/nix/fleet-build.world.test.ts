import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { EvaluateError } from "../../src/errors";
import { buildFleet, type FleetBuildMember } from "../../src/nix/fleet-build";
import { NIXPKGS_LITE } from "../harness/fixture";
import { missing } from "../harness/requirements";

/** One host's broken configuration fails that host only: the others are evaluated and built, each error said once. */
describe.skipIf(missing("nix"))("buildFleet with real Nix", () => {
  const dir = mkdtempSync(join(tmpdir(), "fleet-build-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const member = (name: string, text: string): FleetBuildMember => {
    writeFileSync(join(dir, `${name}.nix`), text);
    return { name, configuration: join(dir, `${name}.nix`), nixPath: { nixpkgs: NIXPKGS_LITE }, moduleArgs: {}, buildOnTarget: false };
  };

  it("a syntax error and a type error fail their hosts alone; the others are built", async () => {
    const members = [
      member("web", '{ ... }: { networking.hostName = "web"; }\n'),
      member("db", '{ ... }: { networking.hostName = "db" }\n'),
      member("cache", "{ ... }: { networking.hostName = 5; }\n"),
      member("app", '{ ... }: { networking.hostName = "app"; }\n'),
    ];
    const results = await buildFleet(members);
    expect([...results.keys()].sort()).toEqual(["app", "cache", "db", "web"]);
    for (const name of ["web", "app"]) {
      const result = results.get(name)!;
      expect(result.ok, name).toBe(true);
      expect(result.ok && result.system.outPath).toMatch(new RegExp(`^/nix/store/[a-z0-9]{32}-nixos-system-${name}-`));
    }
    const db = results.get("db")!;
    const cache = results.get("cache")!;
    expect(db.ok || db.error).toBeInstanceOf(EvaluateError);
    expect(!db.ok && db.error.message).toMatch(/^evaluating db failed: .*syntax error/);
    expect(!db.ok && db.error.message).not.toMatch(/cache|web|app/);
    expect(!cache.ok && cache.error.message).toMatch(/^evaluating cache failed: .*networking\.hostName' is not of type `string'/);
  });
});
