import { execFileSync } from "node:child_process";
import { existsSync, readFileSync } from "node:fs";
import { cp, mkdir, mkdtemp, readdir, readFile, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MANIFEST_FILE } from "../src/spec/manifest";
import { NIXPKGS_LITE } from "./harness/fixture";
import { missing } from "./harness/requirements";
import { run, startTargets } from "./harness/target-hosts";
import { pinProviderVersion, terraform, terraformEnv } from "./harness/terraform";

const ROOT = join(__dirname, "..");
const pkg = JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")) as { devDependencies: Record<string, string> };
/** cdktn-cli runs only on Node ≥ 22.19; the project's own Node (20) stays as it is. A Node package from npm. */
const NODE_22 = "22.23.3";
/** The one hashicorp/aws in this machine's offline mirror. cdktn users run what @cdktn/provider-aws targets: 6.x. */
const MIRRORED_AWS = "5.100.0";

/** The flavours' differences in one app: the core, the provider bindings, the CLI, the package. */
const FLAVOURS = {
  cdktf: { pkg: "cdktf-nixos", core: "cdktf", provider: "@cdktf/provider-aws", cli: "cdktf-cli" },
  cdktn: { pkg: "cdktn-nixos", core: "cdktn", provider: "@cdktn/provider-aws", cli: "cdktn-cli" },
} as const;
type Flavour = keyof typeof FLAVOURS;

/**
 * A cdktf app's source migrated to CDK Terrain as the README says (cdktn's migration guide, plus the package name):
 * cdktf → cdktn, @cdktf/provider-aws → @cdktn/provider-aws, cdktf-nixos → cdktn-nixos.
 */
function migrated(source: string): string {
  return source.replaceAll(`from "cdktf"`, `from "cdktn"`).replaceAll(`from "@cdktf/provider-aws/`, `from "@cdktn/provider-aws/`)
    .replaceAll(`from "cdktf-nixos"`, `from "cdktn-nixos"`);
}

/** examples/fleet as a user's app of one flavour: the package's name for the repository's sources. */
function fleetSource(flavour: Flavour): string {
  const source = readFileSync(join(ROOT, "examples", "fleet", "main.ts"), "utf8").replace(`from "../../src"`, `from "cdktf-nixos"`);
  return flavour === "cdktn" ? migrated(source) : source;
}

/**
 * What the cdktn package gives a CDK Terrain user: `npm run pack:cdktn`'s tarball in a fresh cdktn app, next to the
 * cdktf package (`npm pack`) in a fresh cdktf app, both synthesizing the same fleet.
 */
describe.skipIf(missing("terraform", "aws-provider-mirror", "nix"))("the cdktn package in a user's CDK Terrain app", () => {
  let dir: string;
  let home: string;
  let node22: string;
  const apps = { cdktf: "", cdktn: "" };
  /** The cdktn app runs on Node 22 (cdktn-cli needs it), the cdktf app on the project's own Node. */
  const env = (flavour: Flavour) => ({
    ...process.env,
    HOME: home,
    CHECKPOINT_DISABLE: "1",
    NIXPKGS: NIXPKGS_LITE,
    NIX_CONFIG: "substituters =",
    PATH: flavour === "cdktn" ? `${join(node22, "node_modules", "node", "bin")}:${process.env.PATH}` : process.env.PATH!,
  } as Record<string, string>);
  const nodeOf = (flavour: Flavour) => (flavour === "cdktn" ? join(node22, "node_modules", "node", "bin", "node") : process.execPath);
  const npm = (cwd: string, args: string[]) =>
    execFileSync("npm", [...args, "--no-audit", "--no-fund", "--loglevel=error"], { cwd, env: { ...process.env, HOME: home }, stdio: ["ignore", "ignore", "inherit"] });
  const npmInstall = (cwd: string, args: string[] = []) => npm(cwd, ["install", ...args]);

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), "user-apps-"));
    home = join(dir, "home");
    await mkdir(home);
    node22 = join(dir, "node22");
    npmInstall(dir, ["--prefix", node22, `node@${NODE_22}`]);
    execFileSync("npm", ["pack", "--silent", "--pack-destination", dir], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    execFileSync("npm", ["run", "--silent", "pack:cdktn", "--", "--silent", "--pack-destination", dir], { cwd: ROOT, stdio: ["ignore", "ignore", "inherit"] });
    const tarballs = (await readdir(dir)).filter((f) => f.endsWith(".tgz"));
    for (const flavour of ["cdktf", "cdktn"] as const) {
      const { pkg: name, core, provider, cli } = FLAVOURS[flavour];
      const app = (apps[flavour] = join(dir, `${flavour}-app`));
      await mkdir(app);
      const tarball = tarballs.find((t) => t.startsWith(`${name}-`))!;
      await writeFile(join(app, "package.json"), JSON.stringify({
        name: `${flavour}-user-app`,
        private: true,
        dependencies: {
          [name]: `file:../${tarball}`,
          [core]: pkg.devDependencies[core],
          [provider]: pkg.devDependencies[provider],
          // the CLI has the core's version in both projects
          [cli]: pkg.devDependencies[core],
          constructs: pkg.devDependencies.constructs,
          typescript: pkg.devDependencies.typescript,
        },
      }, null, 2));
      npmInstall(app);
      await writeFile(join(app, "fleet.ts"), fleetSource(flavour));
      await cp(join(ROOT, "examples", "fleet", "nixos"), join(app, "nixos"), { recursive: true });
      await writeFile(join(app, "main.ts"), `import { App } from "${core}";
import { FleetStack } from "./fleet";

const app = new App();
new FleetStack(app, "fleet", { nixpkgs: ${JSON.stringify(NIXPKGS_LITE)} });
app.synth();
`);
      await writeFile(join(app, "cdktf.json"), JSON.stringify({ language: "typescript", app: "node main.js", sendCrashReports: "false" }));
    }
    // one key pair for both apps, so that what they synthesize can be compared
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "fleet")]);
    for (const app of Object.values(apps)) {
      await mkdir(join(app, ".cdktf-nixos", "keys"), { recursive: true });
      for (const file of ["fleet", "fleet.pub"]) await cp(join(dir, file), join(app, ".cdktf-nixos", "keys", file));
    }
  }, 900_000);
  afterAll(async () => {
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it("installs one CDK core: cdktn and @cdktn/provider-aws, never cdktf", () => {
    const app = apps.cdktn;
    const installed = JSON.parse(readFileSync(join(app, "node_modules", "cdktn-nixos", "package.json"), "utf8")) as {
      name: string; peerDependencies: Record<string, string>; bin: Record<string, string>;
    };
    expect(installed.name).toBe("cdktn-nixos");
    expect(Object.keys(installed.peerDependencies).sort()).toEqual(["@cdktn/provider-aws", "cdktn", "constructs"]);
    expect(existsSync(join(app, "node_modules", "cdktf"))).toBe(false);
    expect(existsSync(join(app, "node_modules", "@cdktf"))).toBe(false);
    // what loading the constructs pulls in: cdktn's core and provider, nothing of cdktf, nor ssh2 or the AWS SDK
    const loaded = JSON.parse(execFileSync(nodeOf("cdktn"), ["-e", `require("cdktn-nixos");
      console.log(JSON.stringify([...new Set(Object.keys(require.cache).map((f) => /node_modules\\/((@[^/]+\\/)?[^/]+)\\//.exec(f)?.[1]).filter(Boolean))].sort()))`],
    { cwd: app, env: env("cdktn"), encoding: "utf8" })) as string[];
    expect(loaded).toEqual(expect.arrayContaining(["@cdktn/provider-aws", "cdktn", "cdktn-nixos", "constructs"]));
    expect(loaded.filter((p) => /cdktf|ssh2|@aws-sdk/.test(p))).toEqual([]);
  });

  it("ships the same CLI, as cdktf-nixos and as cdktn-nixos", () => {
    for (const bin of ["cdktf-nixos", "cdktn-nixos"]) {
      const help = execFileSync(join(apps.cdktn, "node_modules", ".bin", bin), ["--help"], { cwd: apps.cdktn, env: env("cdktn"), encoding: "utf8" });
      expect(help).toContain("Usage: cdktf-nixos");
      expect(help).toMatch(/\n\s+push .*\n/);
    }
    expect(execFileSync(join(apps.cdktn, "node_modules", ".bin", "cdktn-nixos"), ["--version"], { cwd: apps.cdktn, env: env("cdktn"), encoding: "utf8" }).trim())
      .toBe(JSON.parse(readFileSync(join(ROOT, "package.json"), "utf8")).version);
  });

  it("refuses props of the wrong type from plain JavaScript, naming construct and prop", async () => {
    await writeFile(join(apps.cdktn, "plain.js"), `const { App, TerraformStack } = require("cdktn");
const { NixosInstance, NixosKeyPair } = require("cdktn-nixos");
const stack = new TerraformStack(new App(), "plain");
try {
  new NixosInstance(stack, "web", { keyPair: NixosKeyPair.fromKeyPairName(stack, "Ops", "ops"), rootVolumeSize: "50" });
  console.log("accepted");
} catch (err) {
  console.log(err.message);
}
`);
    expect(execFileSync(nodeOf("cdktn"), ["plain.js"], { cwd: apps.cdktn, env: env("cdktn"), encoding: "utf8" }))
      .toBe('plain/web (NixosInstance): rootVolumeSize must be a number, got the string "50"\n');
  });

  it("typechecks examples/fleet against cdktn's types; cdktn synth writes the stack and the manifest the cdktf flavour writes, but for the provider", async () => {
    const synthesized: Record<Flavour, { stack: string; manifest: Record<string, unknown> }> = { cdktf: undefined!, cdktn: undefined! };
    for (const flavour of ["cdktf", "cdktn"] as const) {
      const app = apps[flavour];
      // no --skipLibCheck: the package's declarations are checked against the core they were built for
      await run("npx", ["tsc", "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "main.ts"], { cwd: app, env: env(flavour) });
      const synth = await run(join(app, "node_modules", ".bin", flavour), ["synth"], { cwd: app, env: env(flavour), check: false });
      expect(synth.exitCode, `${flavour} synth:\n${synth.stdout}\n${synth.stderr}`).toBe(0);
      const stackDir = join(app, "cdktf.out", "stacks", "fleet");
      // what differs by installation, not by flavour: the app's directory, the package's, the Node that ran synth
      const normalize = (text: string) => text
        .replaceAll(`${nodeOf(flavour)} ${app}/node_modules/${FLAVOURS[flavour].pkg}/`, "<node> <app>/node_modules/<package>/")
        .replaceAll(app, "<app>");
      synthesized[flavour] = {
        stack: normalize(await readFile(join(stackDir, "cdk.tf.json"), "utf8")),
        manifest: JSON.parse(normalize(await readFile(join(stackDir, MANIFEST_FILE), "utf8"))) as Record<string, unknown>,
      };
    }
    const cdktf = JSON.parse(synthesized.cdktf.stack) as Record<string, Record<string, unknown>>;
    const cdktn = JSON.parse(synthesized.cdktn.stack) as Record<string, Record<string, unknown>>;
    expect(synthesized.cdktn.stack).not.toContain("cdktf-nixos/lib");
    // the provider block: each flavour's bindings require the hashicorp/aws they were generated from
    const awsOf = (stack: typeof cdktf) => (stack.terraform.required_providers as Record<string, { source: string; version: string }>).aws;
    expect(awsOf(cdktf)).toEqual({ source: "aws", version: MIRRORED_AWS });
    expect(awsOf(cdktn)).toEqual({ source: "hashicorp/aws", version: expect.stringMatching(/^6\./) });
    // and the core stamps its own version into the metadata
    const metadata = (stack: typeof cdktf) => (stack["//"].metadata as Record<string, string>);
    expect(metadata(cdktf).version).toBe(pkg.devDependencies.cdktf);
    expect(metadata(cdktn).version).toBe(pkg.devDependencies.cdktn);
    for (const stack of [cdktf, cdktn]) {
      delete (stack.terraform.required_providers as Record<string, unknown>).aws;
      delete metadata(stack).version;
    }
    expect(cdktn).toEqual(cdktf);
    expect(Object.keys(cdktn.resource).sort()).toEqual(["aws_instance", "aws_key_pair", "aws_security_group", "terraform_data"]);

    // the manifests: equal but for the hashes of the apps' own sources, which differ in their import lines
    const sources = (manifest: Record<string, unknown>) => (manifest.synthesis as { sources: Record<string, string> }).sources;
    expect(Object.keys(sources(synthesized.cdktn.manifest)).sort()).toEqual(["cdktf.json", "fleet.js", "main.js", "package.json"]);
    expect(Object.keys(sources(synthesized.cdktn.manifest))).toEqual(Object.keys(sources(synthesized.cdktf.manifest)));
    expect(sources(synthesized.cdktn.manifest)["cdktf.json"]).toBe(sources(synthesized.cdktf.manifest)["cdktf.json"]);
    for (const manifest of [synthesized.cdktf.manifest, synthesized.cdktn.manifest]) delete (manifest.synthesis as { sources?: unknown }).sources;
    expect(synthesized.cdktn.manifest).toEqual(synthesized.cdktf.manifest);
    const deployments = synthesized.cdktn.manifest.deployments as { id: string; system: string }[];
    expect(deployments.map((d) => `${d.id} ${d.system}`).sort()).toEqual(["fleet/app/Deployment x86_64-linux", "fleet/db/Deployment aarch64-linux", "fleet/web/Deployment x86_64-linux"]);
  });

  it(`terraform validate passes with hashicorp/aws pinned to the mirror's ${MIRRORED_AWS} (cdktn users run 6.x)`, async () => {
    const stackDir = join(apps.cdktn, "cdktf.out", "stacks", "fleet");
    await pinProviderVersion(stackDir, "aws", MIRRORED_AWS);
    await terraform(stackDir, ["init", "-input=false", "-no-color"]);
    const validate = await terraform(stackDir, ["validate", "-no-color"]);
    expect(validate.stdout).toContain("Success! The configuration is valid.");
    expect(await readFile(join(stackDir, ".terraform.lock.hcl"), "utf8")).toContain(`version     = "${MIRRORED_AWS}"`);
  });

  it("synthesizes with cdktn when the CLI needs the stack, and tells the user to run cdktn", async () => {
    await rm(join(apps.cdktn, "cdktf.out"), { recursive: true, force: true });
    const status = await run(join(apps.cdktn, "node_modules", ".bin", "cdktf-nixos"), ["status", "fleet"], { cwd: apps.cdktn, env: env("cdktn"), check: false });
    expect(status.stderr).toContain("synthesizing (cdktn synth): cdktf.out was missing");
    expect(existsSync(join(apps.cdktn, "cdktf.out", "stacks", "fleet", MANIFEST_FILE))).toBe(true);
    // never deployed: the state is not there, and the hint names the CLI this project has
    expect(status.exitCode).toBe(2);
    expect(status.stderr).toContain("Has the stack been deployed (cdktn deploy) from here?");

    // a failing app: cdktn's error, alone, named as cdktn's
    const main = await readFile(join(apps.cdktn, "main.js"), "utf8");
    await writeFile(join(apps.cdktn, "main.js"), `throw new Error("the app broke here");\n${main}`);
    try {
      const broken = await run(join(apps.cdktn, "node_modules", ".bin", "cdktf-nixos"), ["status", "fleet"], { cwd: apps.cdktn, env: env("cdktn"), check: false });
      expect(broken.exitCode).toBe(2);
      expect(broken.stderr).toContain("synthesizing (cdktn synth): main.js changed since the last synth");
      expect(broken.stderr).toContain(`cdktf-nixos: cdktn synth failed (exit 1):\n${apps.cdktn}/main.js:1\nthrow new Error("the app broke here");\nError: the app broke here\n(cdktn synth in ${apps.cdktn} shows all it said)`);
    } finally {
      await writeFile(join(apps.cdktn, "main.js"), main);
    }
  });

  // last: it turns the cdktf app into a cdktn app
  it.skipIf(missing("root", "sshd", "netns"))("migrating a deployed cdktf app changes nothing but the package: cdktn deploy finds no change, status finds the host up to date", async () => {
    const app = apps.cdktf;
    const world = await startTargets(1);
    try {
      const target = world.hosts[0];
      await writeFile(join(app, "deployed.nix"), `{ ... }: { networking.hostName = "deployed"; environment.etc."motd".text = "deployed with cdktf\\n"; }\n`);
      await writeFile(join(app, "main.ts"), `import { App, TerraformStack } from "cdktf";
import { NixosDeployment } from "cdktf-nixos";
import { FleetStack } from "./fleet";

const app = new App();
new FleetStack(app, "fleet", { nixpkgs: ${JSON.stringify(NIXPKGS_LITE)} });
const deployed = new TerraformStack(app, "deployed");
new NixosDeployment(deployed, "web", {
  host: ${JSON.stringify(target.address)},
  configuration: "deployed.nix",
  nixPath: { nixpkgs: ${JSON.stringify(NIXPKGS_LITE)} },
  sshPrivateKeyFile: ${JSON.stringify(world.clientKeyFile)},
  knownHostsFile: ${JSON.stringify(world.knownHostsFile)},
});
app.synth();
`);
      const cdk = async (flavour: Flavour, ...args: string[]) => {
        const result = await run(join(app, "node_modules", ".bin", flavour), args, { cwd: app, env: { ...env(flavour), ...(await terraformEnv()) }, check: false });
        expect(result.exitCode, `${flavour} ${args.join(" ")}:\n${result.stdout}\n${result.stderr}`).toBe(0);
        return result.stdout;
      };
      const motd = async () => (await target.exec("cat /nix/var/nixos-lite/etc/motd")).stdout;
      await run("npx", ["tsc", "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "main.ts"], { cwd: app, env: env("cdktf") });
      await cdk("cdktf", "deploy", "deployed", "--auto-approve", "--skip-provider-lock");
      expect(await motd()).toBe("deployed with cdktf\n");
      const system = (await target.exec("readlink /run/current-system")).stdout.trim();

      // the migration: the packages, then the imports
      npm(app, ["uninstall", "cdktf-nixos", "cdktf", "@cdktf/provider-aws", "cdktf-cli"]);
      const tarball = (await readdir(dir)).find((t) => t.startsWith("cdktn-nixos-"))!;
      npmInstall(app, [`cdktn-nixos@file:../${tarball}`, `cdktn@${pkg.devDependencies.cdktn}`, `@cdktn/provider-aws@${pkg.devDependencies["@cdktn/provider-aws"]}`, `cdktn-cli@${pkg.devDependencies.cdktn}`]);
      expect(existsSync(join(app, "node_modules", "cdktf"))).toBe(false);
      for (const file of ["main.ts", "fleet.ts"]) await writeFile(join(app, file), migrated(await readFile(join(app, file), "utf8")));
      expect(await readFile(join(app, "main.ts"), "utf8")).not.toMatch(/"cdktf/);
      await run("npx", ["tsc", "--strict", "--module", "commonjs", "--target", "es2022", "--esModuleInterop", "main.ts"], { cwd: app, env: env("cdktn") });

      const diff = await cdk("cdktn", "diff", "deployed", "--skip-provider-lock");
      expect(diff).toContain("No changes.");
      await cdk("cdktn", "deploy", "deployed", "--auto-approve", "--skip-provider-lock");
      expect((await target.exec("readlink /run/current-system")).stdout.trim()).toBe(system);
      const status = await run(join(app, "node_modules", ".bin", "cdktf-nixos"), ["status", "deployed", "--json"],
        { cwd: app, env: { ...env("cdktn"), ...(await terraformEnv()) }, check: false });
      expect(status.exitCode, status.stderr).toBe(0);
      expect(JSON.parse(status.stdout.trim().split("\n").at(-1)!)).toMatchObject({ hosts: [expect.objectContaining({ name: "web", state: "up-to-date" })] });
    } finally {
      await world.stop();
    }
  });
});
