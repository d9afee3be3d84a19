import { execFileSync, spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { appendFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, readlinkSync, readFileSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { imageUploadExpression } from "../../src/deploy/image-upload";
import { imageFileIn } from "../../src/nix/image";
import { cdktfNixos } from "../harness/cli";
import { hostBootLog } from "../harness/ec2-double/boot-log";
import { startEc2Double, type Ec2Double } from "../harness/ec2-double/server";
import { NIXPKGS_LITE } from "../harness/fixture";
import { bootFromImage } from "../harness/images";
import { missing } from "../harness/requirements";
import { startS3Server, type S3Server } from "../harness/s3-server";
import { run, startTargets, type TargetHost, type TargetWorld } from "../harness/target-hosts";
import { terraform, terraformEnv } from "../harness/terraform";

const ROOT = join(__dirname, "..", "..");
const BUCKET = "acme-images";

const configuration = (version: string) => `{ ... }: {
  networking.hostName = "web";
  environment.etc."motd".text = "baked ${version}\\n";
}
`;

/**
 * NixosImage.fromConfiguration through cdktf deploy: the image built and uploaded by the deploy engine (AWS SDK →
 * s3rver), imported and registered by the real AWS provider against the EC2 double, which reads the object from the
 * S3 server and boots instances launched from the AMI from its disk.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "terraform", "aws-provider-mirror", "image-tools"))("your own AMIs: NixosImage.fromConfiguration", () => {
  let work: string;
  let s3: S3Server;
  let ec2: Ec2Double;
  let snapshots: string;
  const worlds = new Map<string, TargetWorld>();
  const hosts = new Map<string, TargetHost>();
  const stackDir = () => join(work, "cdktf.out", "stacks", "images");
  const env = () => ({ NIX_CONFIG: "substituters =", CHECKPOINT_DISABLE: "1", ...s3.env });
  const cdktf = async (...args: string[]) => {
    const result = await run(join(ROOT, "node_modules", ".bin", "cdktf"), args, { cwd: work, env: { ...process.env, ...(await terraformEnv()), ...env() } as Record<string, string>, check: false });
    if (result.exitCode !== 0) throw new Error(`cdktf ${args.join(" ")} failed:\n${result.stdout}\n${result.stderr}`);
    return result;
  };
  const state = async () => JSON.parse((await terraform(stackDir(), ["show", "-json"], env())).stdout) as {
    values: { root_module: { resources: Array<{ address: string; type: string; values: Record<string, unknown> }> } };
  };
  const resource = async (type: string, prefix: string) => {
    const found = (await state()).values.root_module.resources.find((r) => r.type === type && r.address.startsWith(`${type}.${prefix}`));
    if (found === undefined) throw new Error(`no ${type}.${prefix}* in the state: ${(await state()).values.root_module.resources.map((r) => r.address).join(", ")}`);
    return found;
  };
  const instanceHost = async (name: string) => hosts.get(String((await resource("aws_instance", `${name}_`)).values.public_ip))!;
  const selfImages = () => ec2.model.images.filter((i) => i.ownerId === ec2.model.ownerId);

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    work = mkdtempSync(join(tmpdir(), "baked-"));
    snapshots = mkdtempSync(join(tmpdir(), "baked-snapshots-"));
    mkdirSync(join(work, "nixos"));
    writeFileSync(join(work, "nixos", "web.nix"), configuration("v1"));
    s3 = await startS3Server("127.0.0.1", [BUCKET]);
    ec2 = await startEc2Double({
      s3Endpoint: s3.endpoint,
      snapshotDir: snapshots,
      launch: async (publicKey, boot) => {
        const world = await startTargets(1, { authorizedKeys: publicKey ? [publicKey] : [] });
        const host = world.hosts[0]!;
        worlds.set(host.address, world);
        hosts.set(host.address, host);
        if (boot !== undefined) await bootFromImage(host, boot.rootDisk);
        return { privateIp: host.address, publicIp: host.address, consoleOutput: hostBootLog(host), stop: () => world.stop() };
      },
    });
    writeFileSync(join(work, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "baked-test", sendCrashReports: "false" }));
    writeFileSync(join(work, "main.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { BakedImageStack } from ${JSON.stringify(join(__dirname, "baked-image-stack"))};
const app = new App();
new BakedImageStack(app, "images", { configuration: ${JSON.stringify(join(work, "nixos", "web.nix"))}, nixpkgs: ${JSON.stringify(NIXPKGS_LITE)}, ec2Endpoint: ${JSON.stringify(ec2.endpoint)}, s3Endpoint: ${JSON.stringify(s3.endpoint)}, bucket: ${JSON.stringify(BUCKET)} });
app.synth();
`);
  });
  afterAll(async () => {
    await ec2?.close();
    for (const world of worlds.values()) await world.stop().catch(() => undefined);
    await s3?.stop();
    for (const dir of [work, snapshots]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  let firstAmi: { imageId: string; snapshotId: string };
  let firstObject: string;

  it("cdktf deploy: the image is built and uploaded, imported, registered; an instance from it runs the configuration with no deployment", async () => {
    const deployed = await cdktf("deploy", "images", "--auto-approve", "--skip-provider-lock");
    // IMAGE_TRANSCRIPT=FILE keeps what cdktf deploy and status printed (the README's transcript comes from there)
    const transcript = (text: string) => process.env.IMAGE_TRANSCRIPT && appendFileSync(process.env.IMAGE_TRANSCRIPT, text);
    transcript(`$ cdktf deploy images --auto-approve\n${deployed.stdout}\n`);
    const ami = await resource("aws_ami", "image_Ami");
    const system = (ami.values.tags as Record<string, string>)["nixos:system"]!;
    const imageOut = (ami.values.tags as Record<string, string>)["nixos:image"]!;
    expect(ami.values).toMatchObject({ architecture: "x86_64", boot_mode: "legacy-bios", ena_support: true, root_device_name: "/dev/xvda", imds_support: "v2.0" });
    expect(ami.values.name).toBe(`cdktf-nixos/${system.slice("/nix/store/".length)}`);
    expect(ami.values.tags).toMatchObject({ team: "infra" });
    // the object is the built image, byte for byte in size, uploaded once
    const file = (await imageFileIn(imageOut, "amazon")).path;
    const snapshot = ec2.model.snapshots[0]!;
    expect(ec2.model.snapshots).toHaveLength(1);
    expect(snapshot.userBucket).toEqual({ bucket: BUCKET, key: `nixos-images/${imageOut.slice("/nix/store/".length)}.vhd` });
    expect(snapshot.objectBytes).toBe(statSync(file).size);
    expect(s3.requests.filter((r) => r.method === "PUT" && r.path.endsWith(".vhd")).length).toBeGreaterThanOrEqual(1);
    expect(deployed.stdout).toContain(`uploaded ${statSync(file).size} bytes to s3://${BUCKET}/${snapshot.userBucket.key}`);
    // the image was held by a root of the upload's own while it went up (no "did not specify '--add-root'"), and let go
    expect(deployed.stdout).not.toContain("--add-root");
    // (read, not `nix-store --query --roots`, which deletes every stale root it meets)
    const autoRoots = readdirSync("/nix/var/nix/gcroots/auto").map((name) => readlinkSync(join("/nix/var/nix/gcroots/auto", name)));
    const ours = autoRoots.filter((target) => target.includes("/cdktf-nixos-image-"));
    expect(ours.length).toBeGreaterThan(0);
    for (const root of ours) expect(existsSync(root), root).toBe(false);
    firstAmi = { imageId: String(ami.values.id), snapshotId: snapshot.snapshotId };
    firstObject = snapshot.userBucket.key;

    // web has no deployment: what runs is what the image booted
    const web = await instanceHost("web");
    expect((await web.exec("readlink /run/current-system")).stdout.trim()).toBe(system);
    expect((await web.exec("cat /run/current-system/etc/motd")).stdout).toBe("baked v1\n");
    expect((await web.exec("nix-store --check-validity " + system + " && echo valid")).stdout.trim()).toBe("valid");
    // app's deployment found the system there: nothing to copy, and status says it is up to date
    const app = await instanceHost("app");
    expect((await app.exec("readlink /run/current-system")).stdout.trim()).toBe(system);
    transcript(`$ cdktf-nixos status\n${(await cdktfNixos(["status", "--project", work], env())).stdout}\n`);
    const status = await cdktfNixos(["status", "--project", work, "--json"], env());
    expect(status.code, status.stderr).toBe(0);
    expect(status.json?.hosts).toEqual([expect.objectContaining({ name: "app", state: "up-to-date" })]);
  });

  it("a changed configuration replaces the image and the instances launched from it, and nothing else; the old AMI and snapshot go", async () => {
    writeFileSync(join(work, "nixos", "web.nix"), configuration("v2"));
    await cdktf("synth");
    await terraform(stackDir(), ["plan", "-out=tfplan", "-input=false", "-no-color"], env());
    const plan = JSON.parse((await terraform(stackDir(), ["show", "-json", "tfplan"], env())).stdout) as { resource_changes: Array<{ address: string; change: { actions: string[] } }> };
    const changed = plan.resource_changes.filter((c) => !c.change.actions.includes("no-op") && !c.change.actions.includes("read"));
    const replaced = (address: string) => changed.some((c) => c.address.includes(address) && c.change.actions.includes("delete") && c.change.actions.includes("create"));
    for (const address of ["image_Upload", "image_Snapshot", "image_Ami", "aws_instance.web_", "aws_instance.app_"]) expect(replaced(address), address).toBe(true);
    const others = changed.filter((c) => !/\.image_|^aws_instance\.(web|app)_|app_.*Deployment|HostKeyRecord/.test(c.address)).map((c) => c.address);
    expect(others).toEqual([]);
    await terraform(stackDir(), ["apply", "-input=false", "-no-color", "tfplan"], env());
    const ami = await resource("aws_ami", "image_Ami");
    expect(ami.values.id).not.toBe(firstAmi.imageId);
    expect(selfImages().map((i) => i.imageId)).toEqual([ami.values.id]);
    expect(ec2.model.snapshots.map((s) => s.snapshotId)).not.toContain(firstAmi.snapshotId);
    expect(ec2.model.snapshots).toHaveLength(1);
    expect((await (await instanceHost("web")).exec("cat /run/current-system/etc/motd")).stdout).toBe("baked v2\n");
    // the old image's object went with its upload resource; the new one is there
    expect((await fetch(`${s3.endpoint}/${BUCKET}/${firstObject}`, { method: "HEAD" })).status).toBe(404);
    expect((await fetch(`${s3.endpoint}/${BUCKET}/${ec2.model.snapshots[0]!.userBucket.key}`, { method: "HEAD" })).status).toBe(200);
  });

  it("cdktf destroy deregisters the AMI and deletes its snapshot; an object someone else put under the image's key stays", async () => {
    // someone replaced the object under the key with their own: it is not the upload cdktf-nixos made, so it stays
    const key = ec2.model.snapshots[0]!.userBucket.key;
    const put = await fetch(`${s3.endpoint}/${BUCKET}/${key}`, { method: "PUT", body: "the user's own object\n" });
    expect(put.status).toBe(200);
    const destroyed = await cdktf("destroy", "images", "--auto-approve", "--skip-provider-lock");
    expect(destroyed.stdout).toContain(`s3://${BUCKET}/${key} was not uploaded by cdktf-nixos for`);
    expect(await (await fetch(`${s3.endpoint}/${BUCKET}/${key}`)).text()).toBe("the user's own object\n");
    expect(selfImages()).toEqual([]);
    expect(ec2.model.snapshots).toEqual([]);
    expect(ec2.model.calls).toEqual(expect.arrayContaining(["DeregisterImage", "DeleteSnapshot"]));
    expect(readFileSync(join(work, "terraform.images.tfstate"), "utf8")).not.toContain("aws_ami");
  });

  it("upload-image --build-host: the image is built there and streamed from its store to S3; it never enters this machine's store", async () => {
    const builders = await startTargets(1);
    try {
      const builder = builders.hosts[0]!;
      const configuration = join(work, "nixos", "built-elsewhere.nix");
      writeFileSync(configuration, `{ ... }: { networking.hostName = "elsewhere"; environment.etc."motd".text = "${randomBytes(8).toString("hex")}\n"; }\n`);
      const { expression, args } = imageUploadExpression({ source: { configuration, nixPath: { nixpkgs: NIXPKGS_LITE } }, moduleArgs: {}, format: "amazon", drvPath: "", key: "" });
      const drvPath = execFileSync("nix-instantiate", [...args, "-"], { input: expression, encoding: "utf8", env: { ...process.env, ...env() } }).trim();
      const outPath = execFileSync("nix-store", ["--query", "--outputs", drvPath], { encoding: "utf8" }).trim();
      const key = "nixos-images/built-elsewhere.vhd";
      const result = await cdktfNixos(["upload-image", "--format", "amazon", "--config", configuration, "-I", `nixpkgs=${NIXPKGS_LITE}`, "--drv-path", drvPath,
        "--bucket", BUCKET, "--key", key, "--region", "us-east-1", "--s3-endpoint", s3.endpoint,
        "--build-host", `root@${builder.address}:${builder.port}`, "--ssh-key", builders.clientKeyFile, "--known-hosts", builders.knownHostsFile, "--json"], env());
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain(`building on the build host ${builder.address}`);
      // built there, not here
      expect(spawnSync("nix-store", ["--check-validity", outPath]).status).not.toBe(0);
      const file = JSON.parse((await builder.exec(`cat ${outPath}/nix-support/image-info.json`)).stdout).disks.root.file as string;
      const there = (await builder.exec(`sha256sum ${file}`)).stdout.split(" ")[0];
      const stored = Buffer.from(await (await fetch(`${s3.endpoint}/${BUCKET}/${key}`)).arrayBuffer());
      expect(createHash("sha256").update(stored).digest("hex")).toBe(there);
      expect(result.json).toMatchObject({ file, bytes: stored.length, key, uploaded: true });
    } finally {
      await builders.stop();
    }
  });
});
