import { execFileSync } from "node:child_process";
import { mkdtemp, readFile, rm, writeFile } from "node:fs/promises";
import { createServer, type Server } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { cdktfNixos } from "../harness/cli";
import { parseKnownHosts } from "../../src/deploy/ssh/known-hosts";
import { bootLog } from "../harness/ec2-double/boot-log";
import { startEc2Double, type Ec2Double } from "../harness/ec2-double/server";
import { buildSystem } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { startTargets, type TargetWorld } from "../harness/target-hosts";

describe.skipIf(missing("root", "nix", "sshd", "netns"))("host keys from the EC2 console instead of trust on first use", () => {
  let world: TargetWorld;
  let ec2: Ec2Double;
  let work: string;
  let toplevel: string;
  let otherPublicKey: string;
  let hungEndpoint: Server;

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    world = await startTargets(1);
    const realLine = execFileSync("ssh-keygen", ["-l", "-f", world.hosts[0].hostPrivateKeyFile], { encoding: "utf8" }).trim();
    const otherKey = join(tmpdir(), `other-${process.pid}`);
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", otherKey]);
    const otherLine = execFileSync("ssh-keygen", ["-l", "-f", otherKey], { encoding: "utf8" }).trim();
    otherPublicKey = (await readFile(`${otherKey}.pub`, "utf8")).split(" ").slice(0, 2).join(" ");
    ec2 = await startEc2Double({
      consoleOutputs: {
        "i-0000000000000000a": bootLog([`[   9.1] ${realLine}`]),
        "i-0000000000000000b": bootLog([otherLine]),
        "i-0000000000000000c": "[    0.000000] Linux version 6.12\r\nStarting sshd...",
      },
    });
    work = await mkdtemp(join(tmpdir(), "console-keys-"));
    // an endpoint that accepts connections and never answers
    hungEndpoint = createServer(() => undefined);
    await new Promise<void>((resolve) => hungEndpoint.listen(0, "127.0.0.1", resolve));
    toplevel = (await buildSystem({ config: { networking: { hostName: "console" } } })).toplevel;
  });
  afterAll(async () => {
    await world?.stop();
    await ec2?.close();
    hungEndpoint?.close();
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
    // the known_hosts file changed: the deploy says so
    expect(result.stderr).toContain(`${world.hosts[0].address} was not in ${knownHosts}: recorded the host key it offered, which the console of i-0000000000000000a vouches for`);
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

  const AWS_ENV = { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test" };
  const entryFor = (address: string, key: string, comment = "") => `${address} ${key}${comment === "" ? "" : ` ${comment}`}\n`;

  it("records the instance with the key, and does not read the console again for a host it has pinned", async () => {
    const knownHosts = join(work, "known_hosts_pinned");
    expect((await deploy("i-0000000000000000a", knownHosts)).code).toBe(0);
    const [entry] = parseKnownHosts(await readFile(knownHosts, "utf8"));
    expect(entry.comment).toBe("cdktf-nixos-instance=i-0000000000000000a");
    ec2.model.calls.length = 0;
    const again = await deploy("i-0000000000000000a", knownHosts);
    expect(again.code, again.stderr).toBe(0);
    expect(ec2.model.calls).not.toContain("GetConsoleOutput");
  });

  it("replaces the key recorded for another (destroyed) instance at the same address once this instance's console vouches for the new one, and says so", async () => {
    const knownHosts = join(work, "known_hosts_reused");
    await writeFile(knownHosts, entryFor(world.hosts[0].address, otherPublicKey, "cdktf-nixos-instance=i-00000000000000009"));
    const result = await deploy("i-0000000000000000a", knownHosts);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("vouches for; replaced the key recorded for i-00000000000000009");
    const entries = parseKnownHosts(await readFile(knownHosts, "utf8"));
    expect(entries.map((e) => [e.keyType, e.key.toString("base64"), e.comment])).toEqual([
      [...world.hosts[0].hostKey.split(" ").slice(0, 2), "cdktf-nixos-instance=i-0000000000000000a"],
    ]);
  });

  it("never replaces a mismatching key otherwise: not recorded for an instance, recorded for this one, or not vouched for", async () => {
    const cases: Array<[string, string, string]> = [
      ["", "i-0000000000000000a", "HOST KEY MISMATCH"],
      ["cdktf-nixos-instance=i-0000000000000000a", "i-0000000000000000a", "HOST KEY MISMATCH"],
      ["cdktf-nixos-instance=i-00000000000000009", "i-0000000000000000b", "does not vouch for it either"],
    ];
    for (const [comment, instance, message] of cases) {
      const knownHosts = join(work, "known_hosts_mismatch");
      const text = entryFor(world.hosts[0].address, otherPublicKey, comment);
      await writeFile(knownHosts, text);
      const result = await deploy(instance, knownHosts);
      expect(result.code, `${comment} ${instance}`).toBe(EXIT_CODES.connect);
      expect(result.stderr).toContain(message);
      expect(await readFile(knownHosts, "utf8")).toBe(text);
    }
  });

  it("forget-host-keys removes the entries of one instance and keeps the rest", async () => {
    const knownHosts = join(work, "known_hosts_forget");
    const keep = entryFor("10.0.0.1", otherPublicKey) + entryFor("10.0.0.2", otherPublicKey, "cdktf-nixos-instance=i-0000000000000000b");
    await writeFile(knownHosts, entryFor("10.0.0.3", otherPublicKey, "cdktf-nixos-instance=i-0000000000000000a") + keep);
    const result = await cdktfNixos(["forget-host-keys", "--instance-id", "i-0000000000000000a", "--known-hosts", knownHosts]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("removed 1 known_hosts entry of i-0000000000000000a");
    expect(await readFile(knownHosts, "utf8")).toBe(keep);
  });

  it("gives up on an EC2 endpoint that accepts connections but never answers, within the stated time", async () => {
    const { port } = hungEndpoint.address() as { port: number };
    const endpoint = `http://127.0.0.1:${port}`;
    let started = Date.now();
    const console = await cdktfNixos(["deploy", "--target-host", `root@${world.hosts[0].address}`, "--ssh-key", world.clientKeyFile,
      "--known-hosts", join(work, "known_hosts_hung"), "--toplevel", toplevel, "--host-key-from-ec2-console", "i-0000000000000000a",
      "--region", "eu-central-1", "--endpoint", endpoint, "--console-timeout", "2"], AWS_ENV);
    // 2 s of waiting plus process start-up; a loose bound (it hung for > 90 s before)
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(console.code).toBe(EXIT_CODES.connect);
    expect(console.stderr).toContain(`${endpoint} did not answer GetConsoleOutput within 2 s`);

    started = Date.now();
    const ami = await cdktfNixos(["ami", "--region", "eu-central-1", "--endpoint", endpoint, "--timeout", "2"], AWS_ENV);
    expect(Date.now() - started).toBeLessThan(20_000);
    expect(ami.code).toBe(EXIT_CODES.failure);
    expect(ami.stderr).toContain(`${endpoint} did not answer DescribeImages within 2 s`);
  });
});
