import { execFileSync } from "node:child_process";
import { mkdirSync, mkdtempSync, readFileSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/errors";
import { cdktfNixos, type CliResult } from "../harness/cli";
import { NIXPKGS_LITE } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { run, startTargets, type TargetWorld } from "../harness/target-hosts";
import { terraform, terraformEnv } from "../harness/terraform";
import type { ThreeHosts } from "./three-hosts-stack";

const ROOT = join(__dirname, "..", "..");
const HOSTS: readonly ThreeHosts[] = ["web", "app", "db"];

const configuration = (name: ThreeHosts, motd: string) => {
  const args = name === "web" ? "upstream, greeting, " : name === "app" ? "dbAddress, greeting, " : "";
  return `{ ${args}... }: { networking.hostName = "${name}"; environment.etc."motd".text = "${motd}\\n"; }\n`;
};

/**
 * A project copied with `cp -a` (every mtime kept) after `cdktf deploy`: its cdktf.out holds the original directory's
 * absolute paths (configurations, keys, the state file). A push in the copy must deploy the copy's configurations
 * and read the copy's state, never the original's, and say what it did about it.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "terraform", "aws-provider-mirror"))("push in a copied project", () => {
  let original: string;
  let copy: string;
  let world: TargetWorld;
  const target = (name: ThreeHosts) => world.hosts[HOSTS.indexOf(name)];
  const motd = async (name: ThreeHosts) => (await target(name).exec("cat /nix/var/nixos-lite/etc/motd")).stdout;
  const push = async (dir: string, ...args: string[]): Promise<CliResult> => cdktfNixos(["push", "--project", dir, ...args], {
    ...(await terraformEnv()),
    PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
  }, { cwd: dir });
  const statuses = (result: CliResult) => Object.fromEntries(((result.json?.hosts ?? []) as Array<{ name: string; status: string }>).map((h) => [h.name, h.status]));

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    original = mkdtempSync(join(tmpdir(), "copied-project-original-"));
    mkdirSync(join(original, "nixos"));
    for (const name of HOSTS) writeFileSync(join(original, "nixos", `${name}.nix`), configuration(name, `${name} from the original`));
    world = await startTargets(3);
    writeFileSync(join(original, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "copied-project-test", sendCrashReports: "false" }));
    const addresses = Object.fromEntries(HOSTS.map((name) => [name, target(name).address]));
    // as users write it: the configurations relative to the project
    writeFileSync(join(original, "main.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { ThreeHostsStack } from ${JSON.stringify(join(__dirname, "three-hosts-stack"))};
const app = new App();
new ThreeHostsStack(app, "fleet", { nixosDir: "nixos", nixpkgs: ${JSON.stringify(NIXPKGS_LITE)}, addresses: ${JSON.stringify(addresses)}, sshPrivateKeyFile: ${JSON.stringify(world.clientKeyFile)}, knownHostsFile: ${JSON.stringify(world.knownHostsFile)} });
app.synth();
`);
    const synth = await run(join(ROOT, "node_modules", ".bin", "cdktf"), ["synth"], { cwd: original, env: { ...process.env, CHECKPOINT_DISABLE: "1", NIX_CONFIG: "substituters =" } as Record<string, string>, check: false });
    if (synth.exitCode !== 0) throw new Error(`synth failed:\n${synth.stdout}\n${synth.stderr}`);
    const stackDir = join(original, "cdktf.out", "stacks", "fleet");
    await terraform(stackDir, ["init", "-input=false", "-no-color"]);
    await terraform(stackDir, ["apply", "-auto-approve", "-input=false", "-no-color"], { NIX_CONFIG: "substituters =" });
    for (const name of HOSTS) expect(await motd(name)).toBe(`${name} from the original\n`);
    copy = mkdtempSync(join(tmpdir(), "copied-project-copy-"));
    execFileSync("cp", ["-a", `${original}/.`, copy]);
    writeFileSync(join(copy, "nixos", "db.nix"), configuration("db", "db from the copy"));
  });
  afterAll(async () => {
    await world?.stop();
    for (const dir of [original, copy]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("--no-synth refuses the original's output, naming both directories", async () => {
    const result = await push(copy, "--dry-run", "--no-synth");
    expect(result.code, result.stderr).toBe(EXIT_CODES.usage);
    expect(result.stderr.trim()).toBe(`cdktf-nixos: cdktf.out was synthesized for ${realpathSync(original)}, not for this directory ${realpathSync(copy)} ` +
      "(a copied or moved project): its configurations, keys and state are that directory's; synthesize here (leave out --no-synth)");
  });

  it("synthesizes the copy for itself and reads the copy's state: without a state file of its own, nothing is created", async () => {
    const state = join(copy, "terraform.fleet.tfstate");
    const saved = readFileSync(state);
    rmSync(state);
    const result = await push(copy, "--dry-run", "--json");
    expect(result.stderr).toContain(`synthesizing (cdktf synth): cdktf.out was synthesized for ${realpathSync(original)}, not for this directory ${realpathSync(copy)}`);
    expect(result.stderr).toContain("initializing the stack's local backend for this directory");
    expect(result.code, result.stderr).toBe(EXIT_CODES.connect);
    expect(statuses(result)).toEqual({ db: "not-created", app: "not-created", web: "not-created" });
    writeFileSync(state, saved);
  });

  it("with the copy's state: deploys the copy's configuration; the original still sees its own", async () => {
    const dryRun = await push(copy, "--dry-run", "--json");
    expect(dryRun.code, dryRun.stderr).toBe(0);
    expect(dryRun.stderr).toContain("using cdktf.out (up to date with the sources)");
    expect(statuses(dryRun)).toEqual({ db: "would-deploy", app: "up-to-date", web: "up-to-date" });

    const pushed = await push(copy, "--on", "db", "--json");
    expect(pushed.code, pushed.stderr).toBe(0);
    expect(await motd("db")).toBe("db from the copy\n");

    // deployed from here, its .terraform removed since (P20): initialized again, the state read as before
    rmSync(join(copy, "cdktf.out", "stacks", "fleet", ".terraform"), { recursive: true, force: true });
    const reinitialized = await push(copy, "--dry-run", "--json");
    expect(reinitialized.code, reinitialized.stderr).toBe(0);
    expect(reinitialized.stderr).toContain("initializing the stack's local backend for this directory");
    expect(statuses(reinitialized)).toEqual({ db: "up-to-date", app: "up-to-date", web: "up-to-date" });

    // the original was never re-synthesized or re-initialized: it judges db by its own configuration
    const fromOriginal = await push(original, "--dry-run", "--json");
    expect(fromOriginal.code, fromOriginal.stderr).toBe(0);
    expect(fromOriginal.stderr).toContain("using cdktf.out (up to date with the sources)");
    expect(fromOriginal.stderr).not.toContain("initializing");
    expect(statuses(fromOriginal)).toEqual({ db: "would-deploy", app: "up-to-date", web: "up-to-date" });
  });
});
