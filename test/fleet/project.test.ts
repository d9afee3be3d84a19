import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MANIFEST_FILE, MANIFEST_VERSION } from "../../src/deploy/manifest";
import { loadStack } from "../../src/fleet/project";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** A cdktf project synthesized a minute ago: `stacks` with deployments, `plain` stacks without. */
function project(stacks: string[], plain: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "push-project-"));
  dirs.push(dir);
  const old = new Date(Date.now() - 60_000);
  writeFileSync(join(dir, "cdktf.json"), JSON.stringify({ app: "npx tsx main.ts" }));
  writeFileSync(join(dir, "main.ts"), "// the app\n");
  mkdirSync(join(dir, "nixos"));
  writeFileSync(join(dir, "nixos", "web.nix"), "{ }\n");
  const all = [...stacks, ...plain];
  for (const name of all) {
    mkdirSync(join(dir, "cdktf.out", "stacks", name), { recursive: true });
    if (stacks.includes(name)) {
      writeFileSync(join(dir, "cdktf.out", "stacks", name, MANIFEST_FILE), JSON.stringify({ version: MANIFEST_VERSION, stack: name, deployments: [] }));
    }
  }
  writeFileSync(join(dir, "cdktf.out", "manifest.json"), JSON.stringify({
    stacks: Object.fromEntries(all.map((name) => [name, { workingDirectory: `stacks/${name}` }])),
  }));
  for (const file of ["cdktf.json", "main.ts"]) utimesSync(join(dir, file), old, old);
  return dir;
}

describe("loadStack", () => {
  it("uses cdktf.out when no app source is newer (a changed .nix file needs no synth), and finds the only stack with deployments", async () => {
    const dir = project(["fleet"], ["network"]);
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, "nixos", "web.nix"), later, later);
    // a VM's disk (cdktf-nixos vm) is state, not a source
    mkdirSync(join(dir, "web.qcow2", "nix-var"), { recursive: true });
    writeFileSync(join(dir, "web.qcow2", "nix-var", "actions.log"), "switch\n");
    writeFileSync(join(dir, "db.qcow2"), "a qemu disk\n");
    // and so is the test script `cdktf-nixos test` was given
    writeFileSync(join(dir, "fleet.py"), "start_all()\n");
    for (const file of ["web.qcow2/nix-var/actions.log", "db.qcow2", "fleet.py"]) utimesSync(join(dir, file), later, later);
    const loaded = await loadStack(dir, undefined, "auto", undefined, [join(dir, "fleet.py")]);
    expect(loaded).toMatchObject({ stack: "fleet", stackDir: join(dir, "cdktf.out", "stacks", "fleet"), synth: "using cdktf.out (up to date with the sources)" });
    expect(loaded.manifest.stack).toBe("fleet");
  });

  it("names the stacks when it cannot choose, and refuses unknown ones", async () => {
    const dir = project(["eu", "us"], ["network"]);
    await expect(loadStack(dir, undefined, "never")).rejects.toThrow("the app has several stacks with NixOS deployments: name one (eu, us)");
    await expect(loadStack(dir, "asia", "never")).rejects.toThrow("the app has no stack 'asia' (stacks: eu, us, network)");
    await expect(loadStack(dir, "network", "never")).rejects.toThrow("stack 'network' has no NixOS deployments (stacks with some: eu, us)");
  });

  it("with --no-synth, says what is missing; without cdktf.json, where to run it", async () => {
    const dir = project(["fleet"]);
    rmSync(join(dir, "cdktf.out"), { recursive: true });
    await expect(loadStack(dir, undefined, "never")).rejects.toThrow("cdktf.out is missing: run cdktf synth (or leave out --no-synth)");
    rmSync(join(dir, "cdktf.json"));
    await expect(loadStack(dir, undefined, "never")).rejects.toThrow(/^no readable cdktf.json in .*: run cdktf-nixos in the directory of your cdktf project, or pass --project DIR$/);
  });

  it("refuses a manifest of another version", async () => {
    const dir = project(["fleet"]);
    writeFileSync(join(dir, "cdktf.out", "stacks", "fleet", MANIFEST_FILE), JSON.stringify({ version: 1, stack: "fleet", deployments: [] }));
    await expect(loadStack(dir, "fleet", "never")).rejects.toThrow(/is manifest version 1, this cdktf-nixos reads 2: synthesize again \(--synth\)$/);
  });
});
