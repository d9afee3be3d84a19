import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing, TerraformStack, TerraformVariable } from "cdktf";
import { afterAll, describe, expect, it } from "vitest";
import { CopyCompression, KeyUploadAt, NixosAction, NixosDeployment, type NixosDeploymentProps } from "../../src";
import { DEFAULT_SETTINGS } from "../../src/spec/settings";

/** Props that pass synth but would fail once the instance exists: refused in the constructor, naming the construct. */
describe("NixosDeployment validation at synth", () => {
  const dir = mkdtempSync(join(tmpdir(), "deployment-props-"));
  const configuration = join(dir, "web.nix");
  writeFileSync(configuration, "{ ... }: { }\n");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const base: NixosDeploymentProps = { host: "10.0.0.5", configuration };

  it.each<[Partial<NixosDeploymentProps> & Record<string, unknown>, string]>([
    [{ host: "" }, "fleet/web (NixosDeployment): host is empty; give the instance's address (e.g. instance.publicIp)"],
    [{ host: "h:22" }, 'fleet/web (NixosDeployment): host "h:22" includes a port; give the address alone and the port as `port`'],
    [{ host: "root@h" }, 'fleet/web (NixosDeployment): host "root@h" is not a host name or IP address (the user goes in `user`)'],
    [{ connectTimeoutSeconds: -5 }, "fleet/web (NixosDeployment): connectTimeoutSeconds -5 is not a number of seconds (0 or more)"],
    [{ action: "reboot" as NixosAction }, 'fleet/web (NixosDeployment): action "reboot" is not one of switch, boot, test, dry-activate'],
    [{ sshPrivateKeyFile: "/nonexistent/id_ed25519" }, 'fleet/web (NixosDeployment): sshPrivateKeyFile "/nonexistent/id_ed25519" does not exist; leave it out to log in through ssh-agent'],
    [{ nixosArgs: { config: {}, pkgs: 1 } }, 'fleet/web (NixosDeployment): nixosArgs "config", "pkgs" would replace the module system\'s own arguments; rename them (e.g. appConfig)'],
    [{ nixosArgs: { a: 1 }, sensitiveArgs: ["b"] }, 'fleet/web (NixosDeployment): sensitiveArgs "b" are not nixosArgs'],
    [{ keys: [{ name: "db", file: "x", uploadAt: "never" as KeyUploadAt }] }, 'fleet/web (NixosDeployment): key "db": uploadAt "never" is not one of before-activation, after-activation'],
    [{ keys: [{ name: "db" }] }, 'fleet/web (NixosDeployment): key "db": give exactly one of file and command'],
    [{ port: 0 }, "fleet/web (NixosDeployment): port 0 is not a port number (1-65535)"],
    [{ keepGenerations: 0 }, "fleet/web (NixosDeployment): keepGenerations 0 is not a whole number of at least 1 (the new generation always stays)"],
    [{ healthChecks: [{ command: ["true"], http: { url: "http://localhost/" } }] }, "fleet/web (NixosDeployment): healthChecks[0]: a health check has exactly one of 'command' and 'http'"],
    [{ healthChecks: [{ http: { url: "localhost/health" } }] }, "fleet/web (NixosDeployment): healthChecks[0]: 'http.url' \"localhost/health\" is not a URL, e.g. http://localhost/health"],
    [{ healthChecks: [{ command: "systemctl is-active nginx" as unknown as string[] }] },
      "fleet/web (NixosDeployment): healthChecks[0]: 'command' must be a non-empty list of words (argv, no shell), e.g. [\"systemctl\", \"is-active\", \"nginx\"]; got \"systemctl is-active nginx\""],
  ])("%j", (props, message) => {
    const stack = new TerraformStack(Testing.app(), "fleet");
    expect(() => new NixosDeployment(stack, "web", { ...base, ...props })).toThrow(message);
  });

  it("lets values Terraform knows only at apply through (host, port, timeouts)", () => {
    const stack = new TerraformStack(Testing.app(), "fleet");
    const address = new TerraformVariable(stack, "address", { type: "string" });
    const port = new TerraformVariable(stack, "port", { type: "number" });
    expect(() => new NixosDeployment(stack, "web", { ...base, host: address.stringValue, port: port.numberValue, connectTimeoutSeconds: port.numberValue })).not.toThrow();
  });
});

describe("NixosDeployment.settings", () => {
  const dir = mkdtempSync(join(tmpdir(), "deployment-settings-"));
  const configuration = join(dir, "web.nix");
  writeFileSync(configuration, "{ ... }: { }\n");
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("exposes every setting resolved once, read-only: the construct's defaults where a prop is not given", () => {
    const stack = new TerraformStack(Testing.app(), "fleet");
    const deployment = new NixosDeployment(stack, "web", { host: "10.0.0.5", configuration, port: 2222, compress: CopyCompression.ZSTD });
    expect(deployment.settings).toMatchObject({
      port: 2222, compress: "zstd", user: "root", action: "switch", connectTimeoutSeconds: 300, confirmTimeoutSeconds: 30,
      lockTimeoutSeconds: 300, replyTimeoutSeconds: 60, maxChannels: 8, rollback: true, keys: [], sensitiveArgs: [],
    });
    expect(Object.keys(deployment.settings).sort()).toEqual(Object.keys(DEFAULT_SETTINGS).sort());
    expect(Object.isFrozen(deployment.settings)).toBe(true);
  });
});
