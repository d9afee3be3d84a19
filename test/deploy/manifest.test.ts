import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { parseDeployArguments } from "../../src/cli/commands/deploy";
import { DEPLOY_ENV, deployArguments, renderCommand, type DeploymentSpec } from "../../src/deploy/manifest";

const spec: DeploymentSpec = {
  id: "fleet/web/Deployment",
  resource: "terraform_data.web_Deployment_Resource_1A2B3C4D",
  host: "${aws_instance.web_Instance_5E6F.public_ip}",
  user: "deploy",
  port: 2222,
  source: { configuration: "/work/app/nixos/web.nix", nixPath: { nixpkgs: "/work/nixpkgs with space" } },
  nixosArgs: { appAddress: "${aws_instance.app_Instance_7788.private_ip}" },
  sensitiveArgs: ["appAddress"],
  nixosArgsAtSynth: { appAddress: "@cdktf-nixos:appAddress@" },
  drvPath: "/nix/store/0000000000000000000000000000000c-nixos-system-web.drv",
  system: "x86_64-linux",
  action: "switch",
  sshPrivateKeyFile: "/work/app/.cdktf-nixos/keys/fleet",
  knownHostsFile: "/work/app/.cdktf-nixos/known_hosts",
  acceptNewHostKey: false,
  instanceId: "${aws_instance.web_Instance_5E6F.id}",
  region: "${data.aws_region.web_Region_99.name}",
  useSubstitutes: true,
  compress: "zstd",
  buildOnTarget: false,
  connectTimeoutSeconds: 300,
  confirmTimeoutSeconds: 30,
  keepGenerations: 5,
  tags: { role: "web" },
  keys: [{ name: "db-password", command: ["printf", "%s", "s3cret"], user: "postgres", group: "postgres", permissions: "0440", uploadAt: "after-activation" }],
};

describe("the deploy command of a deployment", () => {
  afterEach(() => {
    for (const name of Object.values(DEPLOY_ENV)) delete process.env[name];
  });

  it("is rendered from the spec, with apply-time values left to the environment", () => {
    expect(renderCommand(["/usr/bin/node", "/opt/cdktf-nixos/lib/cli/bin.js", ...deployArguments(spec)])).toBe(
      "/usr/bin/node /opt/cdktf-nixos/lib/cli/bin.js deploy --target-port 2222 --known-hosts /work/app/.cdktf-nixos/known_hosts " +
        "--action switch --connect-timeout 300 --json --ssh-key /work/app/.cdktf-nixos/keys/fleet --use-substitutes --compress zstd " +
        "--keep-generations 5 --confirm-timeout 30 --sensitive-arg appAddress " +
        `--key-spec '{"name":"db-password","command":["printf","%s","s3cret"],"user":"postgres","group":"postgres","permissions":"0440","uploadAt":"after-activation"}' ` +
        "--config /work/app/nixos/web.nix -I 'nixpkgs=/work/nixpkgs with space' " +
        '--host-key-from-ec2-console "$CDKTF_NIXOS_INSTANCE_ID" --region "$CDKTF_NIXOS_REGION"',
    );
  });

  it("round-trips through the shell and the CLI's own parser into the request the spec describes", async () => {
    const env = {
      [DEPLOY_ENV.targetHost]: "deploy@203.0.113.10",
      [DEPLOY_ENV.instanceId]: "i-0123456789abcdef0",
      [DEPLOY_ENV.region]: "eu-central-1",
      [DEPLOY_ENV.moduleArgsJson]: '{"appAddress":"10.0.1.5"}',
    };
    // What Terraform's local-exec does: sh -c COMMAND with the provisioner's environment.
    // the configuration must exist: the CLI checks it before anything else
    const configuration = join(mkdtempSync(join(tmpdir(), "manifest-")), "web.nix");
    writeFileSync(configuration, "{ ... }: { }\n");
    onTestFinished(() => rmSync(dirname(configuration), { recursive: true, force: true }));
    const source = { ...spec.source, configuration };
    const argv = execFileSync("sh", ["-c", `printf '%s\\0' ${renderCommand(deployArguments({ ...spec, source }))}`], {
      env: { PATH: process.env.PATH, ...env },
    }).toString("utf8").split("\0").slice(0, -1);
    expect(argv[0]).toBe("deploy");
    Object.assign(process.env, env);

    const invocation = await parseDeployArguments(argv.slice(1));
    expect(invocation.request).toEqual({
      source: { kind: "config", configuration, includes: ["nixpkgs=/work/nixpkgs with space"] },
      target: {
        host: "203.0.113.10",
        user: spec.user,
        port: spec.port,
        privateKeyFile: spec.sshPrivateKeyFile,
        knownHostsFile: spec.knownHostsFile,
        acceptNewHostKey: false,
        jumpHost: undefined,
        sshCompression: false,
        hostKeyFromEc2Console: { instanceId: "i-0123456789abcdef0", region: "eu-central-1", endpoint: undefined },
      },
      action: spec.action,
      useSubstitutes: true,
      compress: "zstd",
      maxChannels: 8,
      buildOnTarget: false,
      installBootloader: false,
      rollback: true,
      confirmTimeoutSeconds: 30,
      activationTimeoutSeconds: 600,
      replyTimeoutSeconds: 60,
      lockTimeoutSeconds: 300,
      allowNonNixos: false,
      keepGenerations: 5,
      reactivate: false,
      keys: [{
        name: "db-password", path: "/run/keys/db-password", user: "postgres", group: "postgres", permissions: "0440", uploadAt: "after-activation", replaceExisting: false,
        content: Buffer.from("s3cret"), sha256: `sha256:${createHash("sha256").update("s3cret").digest("hex")}`,
      }],
    });
    expect(invocation.dependencyOptions).toEqual({
      moduleArgsJson: '{"appAddress":"10.0.1.5"}',
      redact: expect.any(Function),
      extraArgs: undefined,
      connectRetryMs: 300_000,
      consoleTimeoutMs: 600_000,
    });
    expect(invocation.dependencyOptions.redact!("nix: value is '10.0.1.5'")).toBe("nix: value is '«sensitive nixosArgs.appAddress»'");
    // read once, then gone from the environment every child process inherits
    expect(process.env[DEPLOY_ENV.moduleArgsJson]).toBeUndefined();
    expect(invocation.json).toBe(true);
  });

  it("names a flake, and leaves out what is off", () => {
    const words = deployArguments({ ...spec, source: { flake: "path:/work/app#web" }, confirmTimeoutSeconds: 0, useSubstitutes: false, compress: "auto",
      sshPrivateKeyFile: undefined, instanceId: undefined, acceptNewHostKey: true, buildOnTarget: true, keepGenerations: undefined, sensitiveArgs: [], keys: [] });
    expect(renderCommand(words)).toBe(
      "deploy --target-port 2222 --known-hosts /work/app/.cdktf-nixos/known_hosts --action switch --connect-timeout 300 --json " +
        "--accept-new-host-key --build-on-target --flake 'path:/work/app#web'",
    );
  });
});
