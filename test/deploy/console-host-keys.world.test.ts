import { execFileSync } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { cdktfNixos } from "../harness/cli";
import { startEc2Double, type Ec2Double } from "../harness/ec2-double/server";
import { buildSystem } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { startTargets, type TargetWorld } from "../harness/target-hosts";

/** A NixOS EC2 boot log around the block ec2-data.nix prints. */
function bootLog(fingerprintLines: string[]): string {
  return ["<<< Welcome to NixOS 25.05 (x86_64) - ttyS0 >>>", "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
    ...fingerprintLines, "-----END SSH HOST KEY FINGERPRINTS-----", "target1 login: "].join("\r\n");
}

describe.skipIf(missing("root", "nix", "sshd", "netns"))("host keys from the EC2 console instead of trust on first use", () => {
  let world: TargetWorld;
  let ec2: Ec2Double;
  let work: string;
  let toplevel: string;

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    world = await startTargets(1);
    const realLine = execFileSync("ssh-keygen", ["-l", "-f", world.hosts[0].hostPrivateKeyFile], { encoding: "utf8" }).trim();
    const otherKey = join(tmpdir(), `other-${process.pid}`);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
    const otherLine = execFileSync("ssh-keygen", ["-l", "-f", otherKey], { encoding: "utf8" }).trim();
    ec2 = await startEc2Double({
      consoleOutputs: {
        "i-0000000000000000a": bootLog([`[   9.1] ${realLine}`]),
        "i-0000000000000000b": bootLog([otherLine]),
        "i-0000000000000000c": "[    0.000000] Linux version 6.12\r\nStarting sshd...",
      },
    });
    work = await mkdtemp(join(tmpdir(), "console-keys-"));
    toplevel = (await buildSystem({ config: { networking: { hostName: "console" } } })).toplevel;
  });
  afterAll(async () => {
    await world?.stop();
    await ec2?.close();
    if (work) await rm(work, { recursive: true, force: true });
  });

  function deploy(instanceId: string, knownHosts: string, extra: string[] = [], system = toplevel) {
    return cdktfNixos(["deploy", "--target-host", `root@${world.hosts[0].address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", knownHosts, "--toplevel", system, "--action", "test", "--host-key-from-ec2-console", instanceId,
      "--region", "eu-central-1", "--endpoint", ec2.endpoint, ...extra], { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" });
  }

  it("accepts the key whose fingerprint the console shows, and records it", async () => {
    const knownHosts = join(work, "known_hosts_a");
    const result = await deploy("i-0000000000000000a", knownHosts);
    expect(result.code, result.stderr).toBe(0);
    expect(execFileSync("ssh-keygen", ["-F", world.hosts[0].address, "-f", knownHosts], { encoding: "utf8" })).toContain(world.hosts[0].hostKey);
    expect(ec2.model.calls).toContain("GetConsoleOutput");
  });

  it("refuses a host whose key is not the one the console shows", async () => {
    const other = (await buildSystem({ config: { networking: { hostName: "impostor" } } })).toplevel;
    const result = await deploy("i-0000000000000000b", join(work, "known_hosts_b"), [], other);
    expect(result.code).toBe(EXIT_CODES.connect);
    expect(result.stderr).toContain("is not one of the fingerprints the instance reported");
    expect((await world.hosts[0].exec(`nix-store --check-validity ${other}`)).exitCode).not.toBe(0);
  });

  it("gives up with a clear message when the console never shows the fingerprints", async () => {
    const result = await deploy("i-0000000000000000c", join(work, "known_hosts_c"), ["--console-timeout", "2"]);
    expect(result.code).toBe(EXIT_CODES.connect);
    expect(result.stderr).toContain("the EC2 console output of i-0000000000000000c in eu-central-1 has no SSH host key fingerprints yet");
  });
});
