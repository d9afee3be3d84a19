import { execFileSync } from "node:child_process";
import { createHash } from "node:crypto";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { afterEach, describe, expect, it, onTestFinished } from "vitest";
import { parseDeployArguments } from "../../src/cli/commands/deploy";
import { planPush, withKeys } from "../../src/fleet/push";
import { SETTING_FLAGS, deployArguments, flagAttribute, renderCommand, settingArguments, settingsGiven } from "../../src/spec/command-line";
import { DEPLOY_ENV, type DeploymentSpec } from "../../src/spec/manifest";
import { deployRequestOf } from "../../src/spec/request";
import { DEFAULT_SETTINGS, type ResolvedDeploymentSettings } from "../../src/spec/settings";
import { addDeployOptions } from "../../src/cli/commands/deploy";
import { Command } from "commander";
import { HealthCheckFrom } from "../../src/spec/health-check";

/** A deployment whose every setting differs from the command line's default: each one must travel to be seen. */
const spec: DeploymentSpec = {
  id: "fleet/web/Deployment",
  resource: "terraform_data.web_Deployment_Resource_1A2B3C4D",
  host: "${aws_instance.web_Instance_5E6F.public_ip}",
  source: { configuration: "/work/app/nixos/web.nix", nixPath: { nixpkgs: "/work/nixpkgs with space" } },
  nixosArgs: { appAddress: "${aws_instance.app_Instance_7788.private_ip}" },
  nixosArgsAtSynth: { appAddress: "@cdktf-nixos:appAddress@" },
  drvPath: "/nix/store/0000000000000000000000000000000c-nixos-system-web.drv",
  system: "x86_64-linux",
  instanceId: "${aws_instance.web_Instance_5E6F.id}",
  region: "${data.aws_region.web_Region_99.name}",
  tags: { role: "web" },
  user: "deploy",
  port: 2222,
  action: "boot",
  sshPrivateKeyFile: "/work/app/.cdktf-nixos/keys/fleet",
  knownHostsFile: "/work/app/.cdktf-nixos/known_hosts",
  acceptNewHostKey: true,
  jumpHost: "admin@bastion.example.com:2200",
  sshCompression: true,
  useSubstitutes: true,
  cache: "s3://fleet-cache?region=eu-central-1&endpoint=minio.example.com:9000",
  cacheSubstituter: "https://cache.example.com/fleet",
  cacheSigningKeyFile: "/work/app/.cdktf-nixos/cache.key",
  cachePublicKey: "cache-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
  cachePushCommand: "attic push fleet",
  buildHost: "builder@build.example.com:2222",
  compress: "zstd",
  maxChannels: 3,
  buildOnTarget: true,
  installBootloader: true,
  rollback: false,
  allowNonNixos: true,
  reactivate: true,
  acceptFailedUnits: true,
  healthChecks: [
    { name: "nginx's page", command: ["sh", "-c", "curl -s localhost | grep 'it works'"], timeoutSeconds: 5, retries: 1, intervalSeconds: 0.5 },
    { name: "GET http://localhost/health", http: { url: "http://localhost/health", expectStatus: 204, bodyContains: "ok $HOME", from: HealthCheckFrom.DEPLOYER }, timeoutSeconds: 10, retries: 2, intervalSeconds: 2 },
  ],
  systemdHealthCheck: false,
  connectTimeoutSeconds: 300,
  consoleTimeoutSeconds: 120,
  confirmTimeoutSeconds: 30,
  activationTimeoutSeconds: 900,
  lockTimeoutSeconds: 45,
  replyTimeoutSeconds: 20,
  keepGenerations: 5,
  ec2Endpoint: "http://127.0.0.1:4566",
  keys: [{ name: "db-password", command: ["printf", "%s", "s3cret"], user: "postgres", group: "postgres", permissions: "0440", uploadAt: "after-activation" }],
  sensitiveArgs: ["appAddress"],
};

const applied = { host: "203.0.113.10", instanceId: "i-0123456789abcdef0", region: "eu-central-1" };
/** The provisioner's environment, as NixosDeployment writes it (the target is `${user}@${host}`). */
const envOf = (deployment: DeploymentSpec) => ({
  [DEPLOY_ENV.targetHost]: `${deployment.user}@${applied.host}`,
  [DEPLOY_ENV.instanceId]: applied.instanceId,
  [DEPLOY_ENV.region]: applied.region,
  [DEPLOY_ENV.moduleArgsJson]: '{"appAddress":"10.0.1.5"}',
});

/** What Terraform's local-exec does: sh -c COMMAND with the provisioner's environment; the CLI then parses it. */
async function throughTheCommandLine(deployment: DeploymentSpec) {
  const env = envOf(deployment);
  const argv = execFileSync("sh", ["-c", `printf '%s\\0' ${renderCommand(deployArguments(deployment))}`], {
    env: { PATH: process.env.PATH, ...env },
  }).toString("utf8").split("\0").slice(0, -1);
  expect(argv[0]).toBe("deploy");
  Object.assign(process.env, env);
  return parseDeployArguments(argv.slice(1));
}

/** A configuration file that exists: the CLI checks it before anything else. */
function withConfiguration(): DeploymentSpec {
  const configuration = join(mkdtempSync(join(tmpdir(), "manifest-")), "web.nix");
  writeFileSync(configuration, "{ ... }: { }\n");
  onTestFinished(() => rmSync(dirname(configuration), { recursive: true, force: true }));
  return { ...spec, source: { ...spec.source, configuration } };
}

describe("the deploy command of a deployment", () => {
  afterEach(() => {
    for (const name of Object.values(DEPLOY_ENV)) delete process.env[name];
  });

  it("covers every setting: the deployment above differs from the defaults in each one", () => {
    const same = (Object.keys(DEFAULT_SETTINGS) as Array<keyof ResolvedDeploymentSettings>)
      .filter((name) => JSON.stringify(spec[name]) === JSON.stringify(DEFAULT_SETTINGS[name]));
    expect(same).toEqual([]);
    expect(Object.keys(SETTING_FLAGS).sort()).toEqual(Object.keys(DEFAULT_SETTINGS).sort());
  });

  it("is rendered from the spec, with apply-time values left to the environment", () => {
    expect(renderCommand(["/usr/bin/node", "/opt/cdktf-nixos/lib/cli/bin.js", ...deployArguments(spec)])).toBe(
      "/usr/bin/node /opt/cdktf-nixos/lib/cli/bin.js deploy --target-port 2222 --action boot --ssh-key /work/app/.cdktf-nixos/keys/fleet " +
        "--known-hosts /work/app/.cdktf-nixos/known_hosts --accept-new-host-key --jump-host admin@bastion.example.com:2200 --ssh-compression " +
        "--use-substitutes --cache 's3://fleet-cache?region=eu-central-1&endpoint=minio.example.com:9000' " +
        "--cache-substituter https://cache.example.com/fleet --cache-signing-key /work/app/.cdktf-nixos/cache.key " +
        "--cache-public-key cache-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8= --cache-push-command 'attic push fleet' --build-host builder@build.example.com:2222 " +
        "--compress zstd --max-channels 3 --build-on-target --install-bootloader --no-rollback --allow-non-nixos --reactivate --accept-failed-units " +
        // whole checks as JSON, quoted for the shell: the command line's own words and $ reach deploy as written
        `--health-check '{"name":"nginx'\\''s page","command":["sh","-c","curl -s localhost | grep '\\''it works'\\''"],"timeoutSeconds":5,"retries":1,"intervalSeconds":0.5}' ` +
        `--health-check '{"name":"GET http://localhost/health","http":{"url":"http://localhost/health","expectStatus":204,"bodyContains":"ok $HOME","from":"deployer"},"timeoutSeconds":10,"retries":2,"intervalSeconds":2}' ` +
        "--no-systemd-health-check --connect-timeout 300 --console-timeout 120 --confirm-timeout 30 --activation-timeout 900 --lock-timeout 45 --reply-timeout 20 " +
        "--keep-generations 5 --endpoint http://127.0.0.1:4566 " +
        `--key-spec '{"name":"db-password","command":["printf","%s","s3cret"],"user":"postgres","group":"postgres","permissions":"0440","uploadAt":"after-activation"}' ` +
        "--sensitive-arg appAddress --json --config /work/app/nixos/web.nix -I 'nixpkgs=/work/nixpkgs with space' " +
        '--host-key-from-ec2-console "$CDKTF_NIXOS_INSTANCE_ID" --region "$CDKTF_NIXOS_REGION"',
    );
  });

  it("gives cdktf deploy (local-exec → CLI) and push the same request for every manifest field", async () => {
    // a build host and building on the target exclude each other: the mapper refuses both at once (the rendering above shows both)
    const deployment = { ...withConfiguration(), buildOnTarget: false };
    const invocation = await throughTheCommandLine(deployment);
    const [planned] = await withKeys(planPush([{
      name: "web", tags: deployment.tags, spec: deployment,
      applied: { created: true, ...applied, moduleArgs: { appAddress: "10.0.1.5" } },
    }], { overrides: {} }), { dryRun: false });
    if (!planned.ready) throw new Error("web is not ready");
    const { source, ...viaCli } = invocation.request;
    expect(viaCli).toEqual(planned.request);
    expect(source).toEqual({ kind: "config", configuration: deployment.source.configuration, includes: ["nixpkgs=/work/nixpkgs with space"] });
    // and both are the mapper's, with the keys read on this machine
    expect(viaCli).toEqual({
      ...deployRequestOf(deployment, applied).request,
      keys: [{
        name: "db-password", path: "/run/keys/db-password", user: "postgres", group: "postgres", permissions: "0440", uploadAt: "after-activation",
        replaceExisting: false, content: Buffer.from("s3cret"), sha256: `sha256:${createHash("sha256").update("s3cret").digest("hex")}`,
      }],
    });
    expect(viaCli.target).toEqual({
      host: "203.0.113.10", user: "deploy", port: 2222, privateKeyFile: spec.sshPrivateKeyFile, knownHostsFile: spec.knownHostsFile,
      acceptNewHostKey: true, jumpHost: { user: "admin", host: "bastion.example.com", port: 2200 }, sshCompression: true,
      connectTimeoutSeconds: 300,
      hostKeyFromEc2Console: { instanceId: "i-0123456789abcdef0", region: "eu-central-1", endpoint: "http://127.0.0.1:4566", timeoutSeconds: 120 },
    });
    expect(invocation.dependencyOptions.redact!("nix: value is '10.0.1.5'")).toBe("nix: value is '«sensitive nixosArgs.appAddress»'");
    // read once, then gone from the environment every child process inherits
    expect(process.env[DEPLOY_ENV.moduleArgsJson]).toBeUndefined();
    expect(invocation.json).toBe(true);
  });

  it("refuses a build host together with building on the target", () => {
    expect(() => deployRequestOf({ ...spec, buildOnTarget: true }, applied)).toThrow("--build-host builder@build.example.com:2222 and --build-on-target say different machines build: give one of them");
  });

  it("gives the same request for a deployment with every default", async () => {
    const deployment = { ...withConfiguration(), ...DEFAULT_SETTINGS, knownHostsFile: spec.knownHostsFile };
    const invocation = await throughTheCommandLine(deployment);
    const { source, keys, ...viaCli } = invocation.request;
    const [planned] = planPush([{ name: "web", tags: {}, spec: deployment, applied: { created: true, ...applied, moduleArgs: {} } }], { overrides: {} });
    expect(keys).toEqual([]);
    expect(source.kind).toBe("config");
    expect(planned.ready && viaCli).toEqual(planned.ready && planned.request);
  });

  it("names a flake, and leaves out what is off or the command line's default", () => {
    const words = deployArguments({ ...spec, ...DEFAULT_SETTINGS, knownHostsFile: spec.knownHostsFile, source: { flake: "path:/work/app#web" }, instanceId: undefined });
    expect(renderCommand(words)).toBe(
      "deploy --target-port 22 --action switch --known-hosts /work/app/.cdktf-nixos/known_hosts --compress auto --max-channels 8 " +
        "--connect-timeout 10 --console-timeout 600 --confirm-timeout 0 --activation-timeout 600 --lock-timeout 300 --reply-timeout 60 " +
        "--json --flake 'path:/work/app#web'",
    );
  });
});

describe("SETTING_FLAGS", () => {
  it("names only options the deploy command has", () => {
    const options = new Set(addDeployOptions(new Command("deploy")).options.map((o) => o.long));
    const flags = Object.values(SETTING_FLAGS).flatMap((flag) => ("flag" in flag ? [flag.flag] : []));
    expect(flags.filter((flag) => !options.has(flag))).toEqual([]);
    expect(flags.map(flagAttribute)).toContain("rollback");
  });

  it("reads only the flags that were given: a default never overrides a deployment's setting", () => {
    const values = { connectTimeout: "10", lockTimeout: "7", rollback: true, reactivate: true };
    expect(settingsGiven(values, (attribute) => attribute === "lockTimeout")).toEqual({ lockTimeoutSeconds: 7 });
    expect(settingsGiven({ rollback: false }, (attribute) => attribute === "rollback")).toEqual({ rollback: false });
    expect(settingsGiven(values, () => true, ["connectTimeoutSeconds"])).toEqual({ connectTimeoutSeconds: 10 });
  });

  it("refuses a malformed value with the flag's own message", () => {
    expect(() => settingsGiven({ connectTimeout: "" }, () => true, ["connectTimeoutSeconds"]))
      .toThrow("--connect-timeout '' is not a number of seconds from 0 to 604800 (a week)");
    expect(() => settingsGiven({ jumpHost: "a@b@c" }, () => true, ["jumpHost"])).toThrow("--jump-host 'a@b@c' is not [user@]host[:port]");
  });

  it("writes every setting so that reading it back gives it again", () => {
    const words = settingArguments(spec);
    const program = addDeployOptions(new Command("deploy")).exitOverride();
    program.parse(words, { from: "user" });
    const given = settingsGiven(program.opts(), (attribute) => program.getOptionValueSource(attribute) === "cli");
    expect({ ...DEFAULT_SETTINGS, ...given, user: spec.user }).toEqual(Object.fromEntries(Object.keys(DEFAULT_SETTINGS).map((k) => [k, spec[k as keyof ResolvedDeploymentSettings]])));
  });
});
