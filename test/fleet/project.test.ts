import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterEach, describe, expect, it } from "vitest";
import { MANIFEST_FILE, MANIFEST_VERSION } from "../../src/spec/manifest";
import { synthesisRecord } from "../../src/spec/synthesis";
import { cdkCommand, loadStack, synthError, tmpdirProblem } from "../../src/fleet/project";

const dirs: string[] = [];
afterEach(() => {
  for (const dir of dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
});

/** What `cdktf synth` of the app writes, as the fake synth of these tests writes it: each stack's manifest. */
function writeManifests(dir: string, stacks: string[], plain: string[] = [], version: number = MANIFEST_VERSION): void {
  const all = [...stacks, ...plain];
  const synthesis = synthesisRecord(dir, [join(dir, "main.ts"), join(dir, "hosts.ts")]);
  for (const name of all) {
    mkdirSync(join(dir, "cdktf.out", "stacks", name), { recursive: true });
    if (stacks.includes(name)) {
      writeFileSync(join(dir, "cdktf.out", "stacks", name, MANIFEST_FILE), JSON.stringify({ version, stack: name, synthesis, deployments: [] }));
    }
  }
  writeFileSync(join(dir, "cdktf.out", "manifest.json"), JSON.stringify({
    stacks: Object.fromEntries(all.map((name) => [name, { workingDirectory: `stacks/${name}` }])),
  }));
}

/** A synthesized cdktf project: `stacks` with deployments, `plain` stacks without; the app is main.ts importing hosts.ts. */
function project(stacks: string[], plain: string[] = []): string {
  const dir = mkdtempSync(join(tmpdir(), "push-project-"));
  dirs.push(dir);
  writeFileSync(join(dir, "cdktf.json"), JSON.stringify({ app: "npx tsx main.ts" }));
  writeFileSync(join(dir, "main.ts"), "import { hosts } from './hosts';\n");
  writeFileSync(join(dir, "hosts.ts"), "export const hosts = ['web'];\n");
  mkdirSync(join(dir, "nixos"));
  writeFileSync(join(dir, "nixos", "web.nix"), "{ }\n");
  writeManifests(dir, stacks, plain);
  return dir;
}

/** A synth that must not run. */
const noSynth = () => Promise.reject(new Error("synthesized although the output was up to date"));

describe("loadStack", () => {
  it("uses cdktf.out while the app's sources have the content it was synthesized from, and finds the only stack with deployments", async () => {
    const dir = project(["fleet"], ["network"]);
    // what is not the app's source changes freely: a configuration (push evaluates it), a VM's disk, a test
    // script, a README, a rotated secret; and a source touched without a change in content
    writeFileSync(join(dir, "nixos", "web.nix"), "{ networking.hostName = \"web\"; }\n");
    mkdirSync(join(dir, "web.qcow2", "nix-var"), { recursive: true });
    writeFileSync(join(dir, "web.qcow2", "nix-var", "actions.log"), "switch\n");
    writeFileSync(join(dir, "fleet.py"), "start_all()\n");
    writeFileSync(join(dir, "README.md"), "# fleet\n");
    mkdirSync(join(dir, "secrets"));
    writeFileSync(join(dir, "secrets", "db-password"), "rotated\n");
    const later = new Date(Date.now() + 60_000);
    utimesSync(join(dir, "main.ts"), later, later);
    const loaded = await loadStack(dir, undefined, "auto", undefined, [join(dir, "fleet.py")], noSynth);
    expect(loaded).toMatchObject({ stack: "fleet", stackDir: join(dir, "cdktf.out", "stacks", "fleet"), synth: "using cdktf.out (up to date with the sources)" });
    expect(loaded.manifest.stack).toBe("fleet");
  });

  it("synthesizes again when a source's content changed, whatever its mtime says, and says which", async () => {
    const dir = project(["fleet"]);
    const synthesized: string[] = [];
    const synth = (at: string) => {
      synthesized.push(at);
      writeManifests(at, ["fleet"]);
      return Promise.resolve();
    };
    for (const [file, content] of [["hosts.ts", "export const hosts = ['web', 'db'];\n"], ["cdktf.json", JSON.stringify({ app: "npx tsx main.ts", output: "cdktf.out" })]]) {
      const old = new Date(Date.now() - 3_600_000);
      writeFileSync(join(dir, file), content);
      utimesSync(join(dir, file), old, old);
      const said: string[] = [];
      const loaded = await loadStack(dir, undefined, "auto", (why) => said.push(why), [], synth);
      expect(said).toEqual([`synthesizing (cdktf synth): ${file} changed since the last synth`]);
      expect(loaded.synth).toBe(`synthesized: ${file} changed since the last synth`);
      // and afterwards it is up to date again
      expect((await loadStack(dir, undefined, "auto", undefined, [], noSynth)).synth).toBe("using cdktf.out (up to date with the sources)");
    }
    // a data file the app may read (hosts.json) counts too, a removed source as well
    writeFileSync(join(dir, "hosts.json"), "[]\n");
    await synth(dir);
    writeFileSync(join(dir, "hosts.json"), "[\"db\"]\n");
    expect((await loadStack(dir, undefined, "auto", undefined, [], synth)).synth).toBe("synthesized: hosts.json changed since the last synth");
    rmSync(join(dir, "hosts.ts"));
    expect((await loadStack(dir, undefined, "auto", undefined, [], synth)).synth).toBe("synthesized: hosts.ts changed since the last synth");
    expect(synthesized).toEqual([dir, dir, dir, dir, dir]);
  });

  it("a copied project (cp -a keeps every mtime): synthesizes it for its own directory, or refuses with --no-synth", async () => {
    const original = project(["fleet"]);
    const copy = mkdtempSync(join(tmpdir(), "push-project-copy-"));
    dirs.push(copy);
    execFileSync("cp", ["-a", `${original}/.`, copy]);
    const why = `cdktf.out was synthesized for ${realpathSync(original)}, not for this directory ${realpathSync(copy)} (a copied or moved project)`;
    await expect(loadStack(copy, undefined, "never")).rejects.toThrow(`${why}: its configurations, keys and state are that directory's; synthesize here (leave out --no-synth)`);
    const synthesized: string[] = [];
    const loaded = await loadStack(copy, undefined, "auto", undefined, [], (at) => {
      synthesized.push(at);
      writeManifests(at, ["fleet"]);
      return Promise.resolve();
    });
    expect(synthesized).toEqual([copy]);
    expect(loaded.synth).toBe(`synthesized: ${why}`);
    expect(loaded.manifest.synthesis.projectDir).toBe(realpathSync(copy));
    // an app that writes its output for another directory even so is refused, not used
    const stubborn = mkdtempSync(join(tmpdir(), "push-project-copy-"));
    dirs.push(stubborn);
    execFileSync("cp", ["-a", `${original}/.`, stubborn]);
    await expect(loadStack(stubborn, undefined, "auto", undefined, [], () => Promise.resolve())).rejects.toThrow(
      `cdktf synth in ${stubborn} ran, but cdktf.out was synthesized for ${realpathSync(original)}, not for this directory ${realpathSync(stubborn)} (a copied or moved project): check the app's output directory (cdktf.json "output")`);
    expect(JSON.parse(readFileSync(join(original, "cdktf.out", "stacks", "fleet", MANIFEST_FILE), "utf8")).synthesis.projectDir).toBe(realpathSync(original));
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

  it("a manifest of another version: synthesizes again, or refuses with --no-synth", async () => {
    const dir = project(["fleet"]);
    writeManifests(dir, ["fleet"], [], 2);
    await expect(loadStack(dir, "fleet", "never")).rejects.toThrow(/is manifest version 2, this cdktf-nixos reads 4: synthesize again \(--synth\)$/);
    const loaded = await loadStack(dir, "fleet", "auto", undefined, [], (at) => {
      writeManifests(at, ["fleet"]);
      return Promise.resolve();
    });
    expect(loaded.synth).toMatch(/^synthesized: .*cdktf-nixos.manifest.json is manifest version 2, this cdktf-nixos reads 4$/);
  });

  it("a truncated manifest names the file and the fix", async () => {
    const dir = project(["fleet"]);
    writeFileSync(join(dir, "cdktf.out", "stacks", "fleet", MANIFEST_FILE), '{"version": 3, "stack": "fl');
    await expect(loadStack(dir, "fleet", "never")).rejects.toThrow(new RegExp(`^${join(dir, "cdktf.out", "stacks", "fleet", MANIFEST_FILE)} cannot be read \\(.*\\): synthesize again \\(--synth\\)$`));
  });
});

describe("cdkCommand", () => {
  const project = (...clis: string[]) => {
    const dir = mkdtempSync(join(tmpdir(), "cdk-cli-"));
    dirs.push(dir);
    mkdirSync(join(dir, "node_modules", ".bin"), { recursive: true });
    for (const cli of clis) writeFileSync(join(dir, "node_modules", ".bin", cli), "#!/bin/sh\n", { mode: 0o755 });
    return dir;
  };

  it("takes the project's own CLI, this package's kind first, else this package's kind from PATH", () => {
    const both = project("cdktf", "cdktn");
    expect(cdkCommand(both, "cdktn")).toBe(join(both, "node_modules", ".bin", "cdktn"));
    expect(cdkCommand(both, "cdktf")).toBe(join(both, "node_modules", ".bin", "cdktf"));
    // a cdktf project with cdktn-nixos installed (mid-migration) still synthesizes with the CLI it has
    const cdktfOnly = project("cdktf");
    expect(cdkCommand(cdktfOnly, "cdktn")).toBe(join(cdktfOnly, "node_modules", ".bin", "cdktf"));
    expect(cdkCommand(project(), "cdktn")).toBe("cdktn");
    expect(cdkCommand(project(), "cdktf")).toBe("cdktf");
  });

  it("is cdktf's in this repository, whose package is cdktf-nixos", () => {
    expect(cdkCommand(project())).toBe("cdktf");
  });
});

describe("synthError", () => {
  it("shows the app's error alone: no spinner frames, escapes, stack frames or repeats", () => {
    const output = readFileSync(join(__dirname, "fixtures", "cdktf-synth-failure.txt"), "utf8");
    expect(synthError(output)).toBe([
      "Error: Transform failed with 1 error:",
      '/tmp/synth-err/main.ts:2:20: ERROR: Unexpected ";"',
    ].join("\n"));
  });

  it("without cdktf's stderr block, keeps every line that is not noise, once", () => {
    expect(synthError("\u001b[2K\u001b[1A\u28cb  Synthesizing\nError: evaluating the NixOS configuration of fleet/web failed: cannot run nix-instantiate\n" +
      "Error: evaluating the NixOS configuration of fleet/web failed: cannot run nix-instantiate\n    at Object.<anonymous> (/p/main.ts:3:1)\n"))
      .toBe("Error: evaluating the NixOS configuration of fleet/web failed: cannot run nix-instantiate");
  });
});

describe("tmpdirProblem", () => {
  it("names a TMPDIR that is no writable directory, which terraform's own errors never do", () => {
    const dir = mkdtempSync(join(tmpdir(), "tmpdir-"));
    dirs.push(dir);
    writeFileSync(join(dir, "a-file"), "");
    expect(tmpdirProblem({ TMPDIR: join(dir, "a-file") })).toBe(`TMPDIR is ${join(dir, "a-file")}, which is not a writable directory: unset it or point it at one`);
    expect(tmpdirProblem({ TMPDIR: join(dir, "missing") })).toBe(`TMPDIR is ${join(dir, "missing")}, which is not a writable directory: unset it or point it at one`);
    expect(tmpdirProblem({ TMPDIR: dir })).toBeUndefined();
    expect(tmpdirProblem({})).toBeUndefined();
  });
});
