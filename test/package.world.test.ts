import { execFileSync, spawnSync } from "node:child_process";
import { readFileSync, realpathSync, writeFileSync } from "node:fs";
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../src/cli/program";
import { MANIFEST_VERSION } from "../src/spec/manifest";
import { NIXPKGS_LITE, buildSystem } from "./harness/fixture";
import { missing } from "./harness/requirements";
import { startTargets } from "./harness/target-hosts";
import { terraform } from "./harness/terraform";

const ROOT = join(__dirname, "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as {
  peerDependencies: Record<string, string>;
  devDependencies: Record<string, string>;
};

/** What a user gets: the packed tarball installed into a fresh cdktf app. */
describe.skipIf(missing("terraform", "aws-provider-mirror"))("the npm package in a user's cdktf app", () => {
  let dir: string;
  let home: string;
  const env = () => ({ ...process.env, HOME: home, CHECKPOINT_DISABLE: "1" });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "user-app-"));
    home = join(dir, "home");
    await mkdir(join(home, ".ssh"), { recursive: true });
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(home, ".ssh", "id_ed25519")]);
    execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    const tarball = (await readdir(dir)).find((f) => f.endsWith(".tgz"))!;
    await writeFile(join(dir, "package.json"), JSON.stringify({
      name: "user-app",
      private: true,
      dependencies: {
        "cdktf-nixos": `file:./${tarball}`,
        cdktf: pkg.devDependencies.cdktf,
        constructs: pkg.devDependencies.constructs,
        "@cdktf/provider-aws": pkg.devDependencies["@cdktf/provider-aws"],
        typescript: pkg.devDependencies.typescript,
      },
    }, null, 2));
    execFileSync("npm", ["install", "--no-audit", "--no-fund", "--loglevel=error"], { cwd: dir, env: env(), stdio: ["ignore", "ignore", "inherit"] });
    await writeFile(join(dir, "main.ts"), `import { App, TerraformOutput, TerraformStack } from "cdktf";
import { AwsProvider } from "@cdktf/provider-aws/lib/provider";
import { NixosInstance, NixosKeyPair } from "cdktf-nixos";

const app = new App({ outdir: "cdktf.out" });
const stack = new TerraformStack(app, "web");
new AwsProvider(stack, "aws", { region: "eu-central-1" });
const web = new NixosInstance(stack, "web", {
  release: "25.05",                 // NixOS release of the AMI
  instanceType: "t3.micro",
  rootVolumeSize: 50,               // GiB
  sshAllowedCidrs: ["203.0.113.0/24"],
  keyPair: NixosKeyPair.fromPublicKeyFile(stack, "ops", "~/.ssh/id_ed25519.pub"),
});
new TerraformOutput(stack, "public_dns", { value: web.publicDns });
app.synth();
`);
  }, 600_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("ships the CLI", () => {
    const help = execFileSync("npx", ["cdktf-nixos", "--help"], { cwd: dir, env: env(), encoding: "utf8" });
    expect(help).toContain("Usage: cdktf-nixos");
    expect(help).toMatch(/deploy .*\n/);
    expect(help).toMatch(/ami .*\n/);
    expect(execFileSync("npx", ["cdktf-nixos", "--version"], { cwd: dir, env: env(), encoding: "utf8" }).trim()).toBe("0.1.0");
  });

  it("loads the constructs without ssh2 or the AWS SDK, and the deploy engine from cdktf-nixos/deploy", async () => {
    const loads = (entry: string) => JSON.parse(execFileSync("node", ["-e", `require(${JSON.stringify(entry)});
      console.log(JSON.stringify(Object.keys(require.cache).filter((f) => /node_modules\\/(ssh2|@aws-sdk)\\//.test(f))))`],
    { cwd: dir, env: env(), encoding: "utf8" })) as string[];
    expect(loads("cdktf-nixos")).toEqual([]);
    // the same check sees them where they belong
    expect(loads("cdktf-nixos/deploy").some((f) => f.includes("/ssh2/"))).toBe(true);
    await writeFile(join(dir, "engine.ts"), `import { deploy, planActivation, EXIT_CODES, type DeployRequest } from "cdktf-nixos/deploy";
const request: Omit<DeployRequest, "source"> = { target: { host: "203.0.113.10", knownHostsFile: "known_hosts" } };
console.log(typeof deploy, typeof planActivation, EXIT_CODES.rollback, request.target.host);
`);
    execFileSync("npx", ["tsc", "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "--skipLibCheck", "engine.ts"], { cwd: dir, env: env(), stdio: "inherit" });
    expect(execFileSync("node", ["engine.js"], { cwd: dir, env: env(), encoding: "utf8" })).toBe("function function 8 203.0.113.10\n");
  });

  it("refuses props of the wrong type from plain JavaScript, naming construct and prop", async () => {
    await writeFile(join(dir, "plain.js"), `const { App, TerraformStack } = require("cdktf");
const { NixosInstance, NixosKeyPair } = require("cdktf-nixos");
const stack = new TerraformStack(new App(), "plain");
try {
  new NixosInstance(stack, "web", { keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops"), tags: "web", rootVolumeSize: "50" });
  console.log("accepted");
} catch (err) {
  console.log(err.message);
}
`);
    expect(execFileSync("node", ["plain.js"], { cwd: dir, env: env(), encoding: "utf8" })).toBe(
      'plain/web (NixosInstance): rootVolumeSize must be a number, got the string "50"; tags must be a map (an object of names to values), got the string "web"\n');
  });

  it("typechecks, synthesizes and validates the README snippet", async () => {
    execFileSync("npx", ["tsc", "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "--skipLibCheck", "main.ts"], { cwd: dir, env: env(), stdio: "inherit" });
    execFileSync("node", ["main.js"], { cwd: dir, env: env(), stdio: "inherit" });
    const stackDir = join(dir, "cdktf.out", "stacks", "web");
    const synthesized = await readFile(join(stackDir, "cdk.tf.json"), "utf8");
    expect(synthesized).toContain(await readFile(join(home, ".ssh", "id_ed25519.pub"), "utf8").then((k) => k.trim()));
    await terraform(stackDir, ["init", "-input=false", "-no-color"]);
    const validate = await terraform(stackDir, ["validate", "-no-color"]);
    expect(validate.stdout).toContain("Success! The configuration is valid.");
  });

  it.skipIf(missing("nix"))("points NixosDeployment's provisioner at the installed CLI", () => {
    writeFileSync(join(dir, "web.nix"), `{ config, ... }: { networking.hostName = "web"; }\n`);
    writeFileSync(join(dir, "deployment.ts"), `import { App, TerraformStack } from "cdktf";
import { NixosDeployment } from "cdktf-nixos";
const app = new App({ outdir: "cdktf.out" });
const stack = new TerraformStack(app, "deployment");
new NixosDeployment(stack, "web", { host: "203.0.113.10", configuration: "web.nix", nixPath: { nixpkgs: ${JSON.stringify(NIXPKGS_LITE)} }, acceptNewHostKey: true });
app.synth();
`);
    execFileSync("npx", ["tsc", "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "--skipLibCheck", "deployment.ts"], { cwd: dir, env: env(), stdio: "inherit" });
    execFileSync("node", ["deployment.js"], { cwd: dir, env: env(), stdio: "inherit" });
    const synthesized = readFileSync(join(dir, "cdktf.out", "stacks", "deployment", "cdk.tf.json"), "utf8");
    expect(synthesized).toContain(`${process.execPath} ${join(dir, "node_modules", "cdktf-nixos", "lib", "cli", "bin.js")} deploy `);
    expect(synthesized).toMatch(/"drv_path": "\/nix\/store\/[a-z0-9]{32}-nixos-system-web-[^"]*\.drv"/);
    const manifest = JSON.parse(readFileSync(join(dir, "cdktf.out", "stacks", "deployment", "cdktf-nixos.manifest.json"), "utf8"));
    expect(manifest).toMatchObject({ version: MANIFEST_VERSION, stack: "deployment", deployments: [{ id: "deployment/web", host: "203.0.113.10", user: "root" }] });
    // what the app loaded from the project is its source; the installed package is not
    expect(manifest.synthesis.projectDir).toBe(realpathSync(dir));
    expect(Object.keys(manifest.synthesis.sources)).toContain("deployment.js");
    expect(Object.keys(manifest.synthesis.sources).filter((f) => f.includes("node_modules"))).toEqual([]);
  });

  it.skipIf(missing("root", "nix", "sshd", "netns"))("deploys with the installed CLI: switches, then copies nothing, and refuses another host key", async () => {
    const world = await startTargets(1);
    try {
      const target = world.hosts[0];
      const system = await buildSystem({ config: { networking: { hostName: "packaged" } } });
      const deploy = (knownHosts: string) => spawnSync("npx", ["cdktf-nixos", "deploy", "--target-host", `root@${target.address}`,
        "--ssh-key", world.clientKeyFile, "--known-hosts", knownHosts, "--toplevel", system.toplevel, "--json"],
      { cwd: dir, env: env(), encoding: "utf8" });
      const first = deploy(world.knownHostsFile);
      expect(first.status, first.stderr).toBe(0);
      expect(JSON.parse(first.stdout.trim().split("\n").at(-1)!)).toMatchObject({ newSystem: system.toplevel, newGeneration: 1 });
      expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(system.toplevel);
      const second = deploy(world.knownHostsFile);
      expect(JSON.parse(second.stdout.trim().split("\n").at(-1)!)).toMatchObject({ pathsCopied: 0, bytesSent: 0 });

      const forged = join(dir, "forged_known_hosts");
      await writeFile(forged, `${target.address} ${(await readFile(`${join(home, ".ssh", "id_ed25519")}.pub`, "utf8")).split(" ").slice(0, 2).join(" ")}\n`);
      const before = await target.exec("readlink /nix/var/nix/profiles/system; ls /nix/store | wc -l");
      const refused = deploy(forged);
      expect(refused.status).toBe(EXIT_CODES.connect);
      expect(refused.stderr).toContain("HOST KEY MISMATCH");
      expect(await target.exec("readlink /nix/var/nix/profiles/system; ls /nix/store | wc -l")).toEqual(before);
    } finally {
      await world.stop();
    }
  });
});
