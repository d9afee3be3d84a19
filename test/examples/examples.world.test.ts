import { mkdtemp, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { NEWEST_2505_AARCH64, NEWEST_2505_X86_64, NIXOS_IMAGES } from "../harness/ec2-double/nixos-images";
import { startEc2Double, type Ec2Double } from "../harness/ec2-double/server";
import { NIXPKGS_LITE } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { run } from "../harness/target-hosts";
import { MANIFEST_FILE, MANIFEST_VERSION, type DeploymentManifest } from "../../src/spec/manifest";
import { terraform, useEc2Endpoint } from "../harness/terraform";

const ROOT = join(__dirname, "..", "..");

interface PlanJson {
  resource_changes: { address: string; type: string; change: { actions: string[]; after: Record<string, unknown> } }[];
  prior_state?: { values?: { root_module?: { resources?: { address: string; values: Record<string, unknown> }[] } } };
}

describe.skipIf(missing("terraform", "aws-provider-mirror", "nix"))("example stacks: cdktf synth, terraform init/validate/plan offline", () => {
  let out: string;
  let ec2: Ec2Double;

  beforeAll(async () => {
    out = await mkdtemp(join(tmpdir(), "examples-synth-"));
    // examples/fleet deploys NixOS configurations: they are evaluated at synth, here against the fixture
    const env = { ...process.env, CHECKPOINT_DISABLE: "1", NIXPKGS: NIXPKGS_LITE, NIX_CONFIG: "substituters =" };
    const synth = await run("npx", ["cdktf", "synth", "--output", out], { cwd: ROOT, env: env as Record<string, string>, check: false });
    if (synth.exitCode !== 0) throw new Error(`cdktf synth failed:\n${synth.stdout}\n${synth.stderr}`);
    ec2 = await startEc2Double({ images: NIXOS_IMAGES });
  });
  afterAll(async () => {
    await ec2?.close();
    if (out) await rm(out, { recursive: true, force: true });
  });

  async function plan(stack: string): Promise<PlanJson> {
    const dir = join(out, "stacks", stack);
    await terraform(dir, ["init", "-input=false", "-no-color"]);
    await terraform(dir, ["validate", "-no-color"]);
    await useEc2Endpoint(dir, ec2.endpoint);
    await terraform(dir, ["plan", "-input=false", "-no-color", "-lock=false", "-out", "plan.bin"]);
    return JSON.parse((await terraform(dir, ["show", "-json", "plan.bin"])).stdout) as PlanJson;
  }

  const amiOf = (planned: PlanJson, instance: string) =>
    planned.resource_changes.find((r) => r.address.startsWith(`aws_instance.${instance}`))?.change.after.ami;

  it("single-host plans one NixOS instance on the newest 25.05 AMI, with its key pair and security group", async () => {
    const planned = await plan("single-host");
    const created = planned.resource_changes.filter((r) => r.change.actions.includes("create")).map((r) => r.type).sort();
    expect(created).toEqual(["aws_instance", "aws_key_pair", "aws_security_group"]);
    const instance = planned.resource_changes.find((r) => r.type === "aws_instance")!.change.after;
    expect(instance).toMatchObject({
      ami: NEWEST_2505_X86_64,
      instance_type: "t3.micro",
      root_block_device: [expect.objectContaining({ volume_size: 50, volume_type: "gp3", encrypted: true })],
      metadata_options: [expect.objectContaining({ http_tokens: "required" })],
    });
    const group = planned.resource_changes.find((r) => r.type === "aws_security_group")!.change.after;
    expect(group.ingress).toEqual([expect.objectContaining({ from_port: 22, to_port: 22, cidr_blocks: ["203.0.113.0/24"] })]);
    expect(ec2.model.calls).toContain("DescribeImages");
  });

  it("fleet plans three hosts, the Graviton one on the aarch64 image", async () => {
    const planned = await plan("fleet");
    const instances = planned.resource_changes.filter((r) => r.type === "aws_instance");
    expect(instances).toHaveLength(3);
    // per host: the deployment, and the record of its host key that lives as long as the instance
    const data = planned.resource_changes.filter((r) => r.type === "terraform_data").map((r) => r.address.replace(/_[0-9A-F]{8}$/, ""));
    expect(data.sort()).toEqual(["app", "db", "web"].flatMap((h) => [`terraform_data.${h}_Deployment`, `terraform_data.${h}_Deployment_HostKeyRecord`]).sort());
    expect(amiOf(planned, "web")).toBe(NEWEST_2505_X86_64);
    expect(amiOf(planned, "app")).toBe(NEWEST_2505_X86_64);
    expect(amiOf(planned, "db")).toBe(NEWEST_2505_AARCH64);
    const synthesized = await readFile(join(out, "stacks", "fleet", "cdk.tf.json"), "utf8");
    expect(synthesized).not.toContain("PRIVATE KEY");
  });

  it("cached-fleet plans a private S3 bucket as the hosts' binary cache, an instance profile that reads it, and deployments that go through it", async () => {
    const planned = await plan("cached-fleet");
    const created = new Set(planned.resource_changes.filter((r) => r.change.actions.includes("create")).map((r) => r.type));
    for (const type of ["aws_s3_bucket", "aws_s3_bucket_public_access_block", "aws_s3_bucket_ownership_controls", "aws_s3_bucket_lifecycle_configuration",
      "aws_iam_role", "aws_iam_role_policy", "aws_iam_instance_profile"]) expect(created).toContain(type);
    const instances = planned.resource_changes.filter((r) => r.type === "aws_instance");
    expect(instances).toHaveLength(3);
    const manifest = JSON.parse(await readFile(join(out, "stacks", "cached-fleet", MANIFEST_FILE), "utf8")) as DeploymentManifest;
    for (const deployment of manifest.deployments) {
      expect(deployment).toMatchObject({ cache: "s3://example-fleet-nix-cache?region=eu-central-1", cacheSigningKeyFile: expect.stringMatching(/\.cdktf-nixos\/binary-cache-key$/) });
      expect(deployment.cachePublicKey).toMatch(/^example-fleet-nix-cache-1:[A-Za-z0-9+/]{43}=$/);
      expect(deployment.nixosArgs).toMatchObject({ binaryCache: { substituter: deployment.cache, publicKey: deployment.cachePublicKey } });
    }
    const synthesized = await readFile(join(out, "stacks", "cached-fleet", "cdk.tf.json"), "utf8");
    expect(synthesized).toContain("--cache-signing-key");
    const secret = (await readFile(join(ROOT, ".cdktf-nixos", "binary-cache-key"), "utf8")).split(":")[1]!;
    expect(synthesized).not.toContain(secret);
  });

  it("baked-ami plans an image bucket, the configuration's image uploaded, imported and registered, and instances launched from it", async () => {
    const planned = await plan("baked-ami");
    const created = planned.resource_changes.filter((r) => r.change.actions.includes("create"));
    const types = created.map((r) => r.type);
    for (const type of ["aws_s3_bucket", "aws_s3_bucket_public_access_block", "terraform_data", "aws_ebs_snapshot_import", "aws_ami"]) expect(types).toContain(type);
    expect(types.filter((t) => t === "aws_instance")).toHaveLength(2);
    const ami = created.find((r) => r.type === "aws_ami")!.change.after;
    const tags = ami.tags as Record<string, string>;
    expect(ami).toMatchObject({ architecture: "x86_64", ena_support: true, imds_support: "v2.0", root_device_name: "/dev/xvda", virtualization_type: "hvm" });
    expect(ami.name).toBe(`cdktf-nixos/${tags["nixos:system"]!.slice("/nix/store/".length)}`);
    const snapshot = created.find((r) => r.type === "aws_ebs_snapshot_import")!.change.after;
    expect(snapshot).toMatchObject({ role_name: "vmimport", disk_container: [{ format: "VHD", user_bucket: [{ s3_bucket: "example-baked-ami-images", s3_key: `nixos-images/${tags["nixos:image"]!.slice("/nix/store/".length)}.vhd` }] }] });
    // the image boots the toplevel a deployment of the same file would put on a host (the file imports the image's module)
    const alone = await run("nix-instantiate", ["--eval", "-E", `(import <nixpkgs/nixos> { configuration = { imports = [ ${join(ROOT, "examples", "baked-ami", "nixos", "web.nix")} ]; _module.args.greeting = "baked into the AMI"; }; }).system.outPath`,
      "-I", `nixpkgs=${NIXPKGS_LITE}`], { env: { ...process.env, NIX_CONFIG: "substituters =" } as Record<string, string> });
    expect(JSON.parse(alone.stdout)).toBe(tags["nixos:system"]);
  });

  it("fleet's synth writes the deployment manifest: every host, its source, its apply-time values as Terraform expressions", async () => {
    const stackDir = join(out, "stacks", "fleet");
    const manifest = JSON.parse(await readFile(join(stackDir, "cdktf-nixos.manifest.json"), "utf8")) as DeploymentManifest;
    const stack = JSON.parse(await readFile(join(stackDir, "cdk.tf.json"), "utf8")) as {
      resource: { terraform_data: Record<string, { triggers_replace: { drv_path: string } }>; aws_instance: Record<string, unknown> };
    };
    expect(manifest.version).toBe(MANIFEST_VERSION);
    expect(manifest.stack).toBe("fleet");
    expect(manifest.deployments.map((d) => d.id)).toEqual(["fleet/app/Deployment", "fleet/web/Deployment", "fleet/db/Deployment"]);
    const web = manifest.deployments.find((d) => d.id === "fleet/web/Deployment")!;
    const webInstance = Object.keys(stack.resource.aws_instance).find((k) => k.startsWith("web_"))!;
    const appInstance = Object.keys(stack.resource.aws_instance).find((k) => k.startsWith("app_"))!;
    expect(web).toMatchObject({
      host: `\${aws_instance.${webInstance}.public_ip}`,
      instanceId: `\${aws_instance.${webInstance}.id}`,
      user: "root",
      port: 22,
      action: "switch",
      source: { configuration: join(ROOT, "examples", "fleet", "nixos", "web.nix"), nixPath: { nixpkgs: NIXPKGS_LITE } },
      nixosArgs: { appAddress: `\${aws_instance.${appInstance}.private_ip}`, greeting: "${var.greeting}" },
      nixosArgsAtSynth: { appAddress: "@cdktf-nixos:appAddress@", greeting: "@cdktf-nixos:greeting@" },
      system: "x86_64-linux",
      confirmTimeoutSeconds: 30,
      tags: { role: "web" },
    });
    for (const deployment of manifest.deployments) {
      const [type, name] = deployment.resource.split(".");
      expect(type).toBe("terraform_data");
      // the manifest's derivation is the trigger Terraform compares
      expect(stack.resource.terraform_data[name].triggers_replace.drv_path).toBe(deployment.drvPath);
    }
    expect(manifest.deployments.find((d) => d.id === "fleet/db/Deployment")).toMatchObject({ buildOnTarget: true, tags: { role: "db" } });
    // a stack without deployments has no manifest
    await expect(readFile(join(out, "stacks", "single-host", "cdktf-nixos.manifest.json"))).rejects.toThrow("ENOENT");
  });
});
