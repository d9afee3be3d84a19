import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { execFileSync } from "node:child_process";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { App, Testing, TerraformStack, TerraformVariable } from "cdktf";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NixosAction, NixosDeployment, NixosImage } from "../../src";
import { imageUploadExpression } from "../../src/deploy/image-upload";
import { instantiateSystem } from "../../src/nix/build";
import { NIXPKGS_LITE } from "../harness/fixture";
import { missing } from "../harness/requirements";

interface Synthesized {
  resource: { terraform_data: Record<string, {
    triggers_replace: { drv_path: string; nixos_args: Record<string, unknown>; settings: Record<string, unknown> };
    input: Record<string, unknown>;
    provisioner: { "local-exec": { command: string; environment: Record<string, string> } }[];
  }> };
}

/** Synthesizes deployments of the given configurations and counts the nix-instantiate processes it took. */
describe.skipIf(missing("nix"))("NixosDeployment at synth: one evaluation for the whole stack", () => {
  let dir: string;
  let log: string;
  let savedPath: string | undefined;

  beforeAll(() => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    dir = mkdtempSync(join(tmpdir(), "deployment-synth-"));
    log = join(dir, "nix-instantiate.log");
    mkdirSync(join(dir, "bin"));
    const real = execFileSync("sh", ["-c", "command -v nix-instantiate"], { encoding: "utf8" }).trim();
    writeFileSync(join(dir, "bin", "nix-instantiate"), `#!/bin/sh\necho call >> ${log}\nexec ${real} "$@"\n`);
    chmodSync(join(dir, "bin", "nix-instantiate"), 0o755);
    savedPath = process.env.PATH;
    process.env.PATH = `${join(dir, "bin")}:${process.env.PATH}`;
  });
  afterAll(() => {
    process.env.PATH = savedPath;
    rmSync(dir, { recursive: true, force: true });
  });

  const config = (name: string, body: string, formals = "") => {
    const file = join(dir, `${name}.nix`);
    writeFileSync(file, `{ config, pkgs, ${formals}... }: { networking.hostName = "${name}"; ${body} }\n`);
    return file;
  };
  /** A private key file (synth checks that it is one, without its content ever reaching the synthesized stack). */
  const opsKey = () => {
    if (!existsSync(join(dir, "ops"))) execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", join(dir, "ops")]);
    return join(dir, "ops");
  };
  const calls = () => {
    try {
      return readFileSync(log, "utf8").split("\n").filter(Boolean).length;
    } catch {
      return 0;
    }
  };

  function synth(motd: string, peer: string): Synthesized {
    const stack = new TerraformStack(Testing.app(), "fleet");
    const peers = new TerraformVariable(stack, "peers", { type: "list(string)" });
    const nixPath = { nixpkgs: NIXPKGS_LITE };
    new NixosDeployment(stack, "web", { host: "10.0.0.1", configuration: config("web", `environment.etc.motd.text = "${motd}";`), nixPath, instanceId: "i-0000000000000000a", region: "eu-central-1" });
    new NixosDeployment(stack, "app", { host: "10.0.0.2", configuration: config("app", ""), nixPath, sshPrivateKeyFile: opsKey(), action: NixosAction.TEST });
    new NixosDeployment(stack, "db", {
      host: "10.0.0.3",
      configuration: config("db", `environment.etc.peers.text = builtins.concatStringsSep "," (peers ++ [ primary ]);`, "peers, primary, "),
      nixPath,
      nixosArgs: { peers: peers.listValue, primary: peer },
    });
    return JSON.parse(Testing.synth(stack)) as Synthesized;
  }

  const data = (s: Synthesized, name: string) =>
    Object.entries(s.resource.terraform_data).find(([key]) => key.startsWith(`${name}_`))![1];

  it("evaluates three deployments in one Nix process, to the derivations the deploy step builds", async () => {
    const before = calls();
    const synthesized = synth("v1", "10.0.0.9");
    expect(calls() - before).toBe(1);

    const web = data(synthesized, "web");
    const alone = await instantiateSystem({ kind: "config", configuration: join(dir, "web.nix"), includes: [`nixpkgs=${NIXPKGS_LITE}`] });
    expect(web.triggers_replace.drv_path).toBe(alone.drvPath);
    const db = data(synthesized, "db");
    const dbAlone = await instantiateSystem(
      { kind: "config", configuration: join(dir, "db.nix"), includes: [`nixpkgs=${NIXPKGS_LITE}`] },
      { moduleArgsJson: JSON.stringify({ peers: ["@cdktf-nixos:peers@"], primary: "10.0.0.9" }) },
    );
    expect(db.triggers_replace.drv_path).toBe(dbAlone.drvPath);
    expect(db.triggers_replace.nixos_args).toEqual({ peers: "${var.peers}", primary: "10.0.0.9" });
  });

  it("changes exactly the triggers of what changed", () => {
    const base = synth("v1", "10.0.0.9");
    const motd = synth("v2", "10.0.0.9");
    const peer = synth("v1", "10.0.0.10");
    const drv = (s: Synthesized, name: string) => data(s, name).triggers_replace.drv_path;
    expect([drv(motd, "web"), drv(motd, "app"), drv(motd, "db")]).toEqual([expect.not.stringMatching(drv(base, "web")), drv(base, "app"), drv(base, "db")]);
    expect(drv(peer, "db")).not.toBe(drv(base, "db"));
    expect([drv(peer, "web"), drv(peer, "app")]).toEqual([drv(base, "web"), drv(base, "app")]);
  });

  it("runs the CLI by absolute path with apply-time values from self.input, and no secrets", () => {
    const synthesized = synth("v1", "10.0.0.9");
    const web = data(synthesized, "web");
    const exec = web.provisioner[0]["local-exec"];
    const bin = join(__dirname, "..", "..", "lib", "cli", "bin.js");
    // every setting resolved, written by SETTING_FLAGS (the construct's own defaults: 300 s connect, 30 s confirm)
    expect(exec.command).toBe(`${process.execPath} ${bin} deploy --target-port 22 --action switch --known-hosts ${join(process.cwd(), ".cdktf-nixos", "known_hosts")} ` +
      "--compress auto --max-channels 8 --connect-timeout 300 --console-timeout 600 --confirm-timeout 30 --activation-timeout 600 " +
      `--lock-timeout 300 --reply-timeout 60 --json --config ${join(dir, "web.nix")} -I nixpkgs=${NIXPKGS_LITE} ` +
      '--host-key-from-ec2-console "$CDKTF_NIXOS_INSTANCE_ID" --region "$CDKTF_NIXOS_REGION"');
    expect(exec.command).toContain(`--host-key-from-ec2-console "$CDKTF_NIXOS_INSTANCE_ID" --region "$CDKTF_NIXOS_REGION"`);
    expect(exec.environment).toEqual({
      CDKTF_NIXOS_TARGET_HOST: "${self.input.target}",
      CDKTF_NIXOS_ARGS_JSON: "${jsonencode(self.input.nixos_args)}",
      CDKTF_NIXOS_INSTANCE_ID: "${self.input.instance_id}",
      CDKTF_NIXOS_REGION: "${self.input.region}",
    });
    expect(data(synthesized, "app").provisioner[0]["local-exec"].command).toContain(`--action test --ssh-key ${join(dir, "ops")} --known-hosts`);
    expect(JSON.stringify(synthesized)).not.toMatch(/PRIVATE KEY/);
  });

  it("NixosImage.fromConfiguration is evaluated with the deployments (one Nix process), to the image upload-image builds", () => {
    const stack = new TerraformStack(Testing.app(), "baked");
    const nixPath = { nixpkgs: NIXPKGS_LITE };
    const configuration = config("baked", `environment.etc.motd.text = "baked";`);
    NixosImage.fromConfiguration(stack, "image", { configuration, nixPath, bucket: "acme-images", nixosArgs: { greeting: "hi" } });
    new NixosDeployment(stack, "web", { host: "10.0.0.1", configuration: config("web", ""), nixPath });
    const before = calls();
    const synthesized = JSON.parse(Testing.synth(stack)) as Synthesized & { resource: { aws_ami: Record<string, { tags: Record<string, string>; name: string }> } };
    expect(calls() - before).toBe(1);
    const upload = data(synthesized, "image");
    const expected = execFileSync("nix-instantiate", [...imageUploadExpression({
      source: { configuration, nixPath }, moduleArgs: { greeting: "hi" }, format: "amazon", drvPath: "", key: "",
    }).args, "-"], { input: imageUploadExpression({ source: { configuration, nixPath }, moduleArgs: { greeting: "hi" }, format: "amazon", drvPath: "", key: "" }).expression, encoding: "utf8" }).trim();
    expect(upload.triggers_replace.drv_path).toBe(expected);
    expect(upload.provisioner[0]!["local-exec"].command).toContain(" upload-image --format amazon --config ");
    expect(upload.provisioner[0]!["local-exec"].environment).toMatchObject({ CDKTF_NIXOS_IMAGE_DRV: "${self.input.drv_path}", CDKTF_NIXOS_ARGS_JSON: "${jsonencode(self.input.nixos_args)}" });
    const ami = Object.values(synthesized.resource.aws_ami)[0]!;
    expect(ami.name).toBe(`cdktf-nixos/${ami.tags["nixos:system"]!.slice("/nix/store/".length)}`);
  });

  it("refuses an image whose configuration is for another architecture, naming both", () => {
    const stack = new TerraformStack(Testing.app(), "arm");
    const configuration = config("arm", `nixpkgs.hostPlatform = "aarch64-linux";`);
    NixosImage.fromConfiguration(stack, "image", { configuration, nixPath: { nixpkgs: NIXPKGS_LITE }, bucket: "acme-images" });
    expect(() => Testing.synth(stack)).toThrow("arm/image (NixosConfigurationImage): the configuration is for aarch64-linux, but architecture is x86_64: " +
      "set architecture to NixosArchitecture.AARCH64 (or nixpkgs.hostPlatform in the configuration)");
  });

  it("an image in raw format is imported as RAW from a .img object; a format EC2 cannot import is refused, naming it", () => {
    const raw = new TerraformStack(Testing.app(), "raw");
    NixosImage.fromConfiguration(raw, "image", { configuration: config("raw", `amazonImage.format = "raw";`), nixPath: { nixpkgs: NIXPKGS_LITE }, bucket: "acme-images" });
    const synthesized = JSON.parse(Testing.synth(raw)) as { resource: { aws_ebs_snapshot_import: Record<string, { disk_container: { format: string; user_bucket: { s3_key: string } } }> } };
    const container = Object.values(synthesized.resource.aws_ebs_snapshot_import)[0]!.disk_container;
    expect(container.format).toBe("RAW");
    expect(container.user_bucket.s3_key).toMatch(/^nixos-images\/[a-z0-9]{32}-nixos-amazon-image-[^/]+\.img$/);
    const qcow = new TerraformStack(Testing.app(), "qcow");
    NixosImage.fromConfiguration(qcow, "image", { configuration: config("qcow", `amazonImage.format = "qcow2";`), nixPath: { nixpkgs: NIXPKGS_LITE }, bucket: "acme-images" });
    expect(() => Testing.synth(qcow)).toThrow('qcow/image (NixosConfigurationImage): the configuration sets amazonImage.format = "qcow2", which EC2\'s snapshot import does not read: use "vpc" (nixpkgs\' default, a VHD) or "raw"');
  });

  it("names the configuration and shows Nix's message when evaluation fails", () => {
    const app = new App({ outdir: join(dir, "broken.out") });
    const stack = new TerraformStack(app, "broken");
    const file = join(dir, "broken.nix");
    writeFileSync(file, "{ config, ... }: { networking.hostName = 42; }\n");
    new NixosDeployment(stack, "broken", { host: "10.0.0.4", configuration: file, nixPath: { nixpkgs: NIXPKGS_LITE } });
    new NixosDeployment(stack, "fine", { host: "10.0.0.5", configuration: config("fine", ""), nixPath: { nixpkgs: NIXPKGS_LITE } });
    const error = (() => {
      try {
        app.synth();
      } catch (err) {
        return err as Error;
      }
      throw new Error("synth should have failed");
    })();
    // one short message: the construct, Nix's first error line, where to get the trace; no JavaScript stack
    expect(error.message).toBe(`evaluating the NixOS configuration of broken/broken failed: The option \`networking.hostName' is not of type \`string'. ` +
      `Definition in \`${file}': 42\n  (Nix's full trace: CDKTF_NIXOS_SHOW_TRACE=1 cdktf synth)`);
    expect(error.stack).toBe(`Error: ${error.message}`);
  });

  it("keeps sensitive module arguments out of Nix's error messages", () => {
    const app = new App({ outdir: join(dir, "leaky.out") });
    const stack = new TerraformStack(app, "leaky");
    const file = join(dir, "leaky.nix");
    // an assertion whose message shows the value (lib.assertMsg, throw): Nix prints it
    writeFileSync(file, "{ config, dbPassword, ... }: { networking.hostName = throw \"dbPassword ${dbPassword} is too short\"; }\n");
    new NixosDeployment(stack, "leaky", {
      host: "10.0.0.4", configuration: file, nixPath: { nixpkgs: NIXPKGS_LITE }, nixosArgs: { dbPassword: "hunter2-canary" }, sensitiveArgs: ["dbPassword"],
    });
    expect(() => app.synth()).toThrow("evaluating the NixOS configuration of leaky/leaky failed: dbPassword «sensitive nixosArgs.dbPassword» is too short");
  });

  it("rejects props that cannot work, with the bad value", () => {
    const stack = new TerraformStack(Testing.app(), "bad");
    expect(() => new NixosDeployment(stack, "a", { host: "h" })).toThrow("bad/a (NixosDeployment): give exactly one of configuration and flake");
    expect(() => new NixosDeployment(stack, "b", { host: "h", flake: "./x" })).toThrow(`bad/b (NixosDeployment): flake "./x" is not REF#NAME (e.g. "./infra#web")`);
    expect(() => new NixosDeployment(stack, "c", { host: "h", configuration: "/nonexistent.nix" })).toThrow(`bad/c (NixosDeployment): configuration "/nonexistent.nix" does not exist`);
    expect(() => new NixosDeployment(stack, "d", { host: "h", flake: "./x#web", nixosArgs: { a: "b" } })).toThrow("bad/d (NixosDeployment): nixosArgs works with configuration");
    expect(() => new NixosDeployment(stack, "e", { host: "h", flake: "./x#web", confirmTimeoutSeconds: -1 })).toThrow("bad/e (NixosDeployment): confirmTimeoutSeconds -1 is not a whole number of seconds (0 turns it off)");
  });
});
