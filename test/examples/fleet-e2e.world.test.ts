import { execFileSync } from "node:child_process";
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { ec2DoubleEnv, hostBootLog } from "../harness/ec2-double/boot-log";
import { NIXOS_IMAGES } from "../harness/ec2-double/nixos-images";
import { startEc2Double, type Ec2Double, type Instance } from "../harness/ec2-double/server";
import { NIXPKGS_LITE } from "../harness/fixture";
import { missing } from "../harness/requirements";
import { run, startTargets, type TargetHost } from "../harness/target-hosts";
import { terraform, useEc2Endpoint } from "../harness/terraform";

const ROOT = join(__dirname, "..", "..");

/**
 * `terraform apply` of examples/fleet against the EC2 double, whose instances are namespaced target hosts: real
 * terraform, the real AWS provider, the real deploy step run by local-exec. `terraform` rather than `cdktf deploy`
 * because the provider must be pointed at the double through an override file in the synthesized stack directory,
 * which `cdktf deploy` would synthesize away.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "terraform", "aws-provider-mirror"))("cdktf-nixos fleet end to end", () => {
  let work: string;
  let ec2: Ec2Double;
  const hosts = new Map<string, TargetHost>();
  const stackDir = () => join(work, "cdktf.out", "stacks", "fleet");

  const env = () => ({
    ...ec2DoubleEnv(ec2.endpoint),
    NIX_CONFIG: "substituters =",
    NIXPKGS: NIXPKGS_LITE,
  });

  async function synth(): Promise<void> {
    const result = await run(join(ROOT, "node_modules", ".bin", "tsx"), [join(work, "app.ts")], { cwd: work, env: { ...process.env, ...env() } as Record<string, string>, check: false });
    if (result.exitCode !== 0) throw new Error(`synth failed:\n${result.stdout}\n${result.stderr}`);
    await useEc2Endpoint(stackDir(), ec2.endpoint);
  }

  const apply = (...args: string[]) => terraform(stackDir(), ["apply", "-auto-approve", "-input=false", "-no-color", ...args], env());

  /** Addresses terraform plans to replace or create. */
  async function planned(...args: string[]): Promise<string[]> {
    await terraform(stackDir(), ["plan", "-input=false", "-no-color", "-out", "plan.bin", ...args], env());
    const plan = JSON.parse((await terraform(stackDir(), ["show", "-json", "plan.bin"], env())).stdout) as {
      resource_changes: { address: string; change: { actions: string[] } }[];
    };
    return plan.resource_changes.filter((r) => !r.change.actions.includes("no-op") && !r.change.actions.includes("read"))
      .map((r) => `${r.address} ${r.change.actions.join("+")}`).sort();
  }

  const instance = (role: string): Instance =>
    ec2.model.instances.find((i) => i.state !== "terminated" && ec2.model.tags[i.instanceId]?.some((t) => t.key === "role" && t.value === role))!;
  const target = (role: string) => hosts.get(instance(role).publicIp)!;
  const generation = async (role: string) => (await target(role).exec("readlink /nix/var/nix/profiles/system")).stdout.trim();

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    work = mkdtempSync(join(tmpdir(), "fleet-e2e-"));
    cpSync(join(ROOT, "examples", "fleet", "nixos"), join(work, "nixos"), { recursive: true });
    // The test world's hosts are x86_64: the db host builds and runs x86_64 here.
    writeFileSync(join(work, "nixos", "db.nix"), readFileSync(join(work, "nixos", "db.nix"), "utf8").replace("aarch64-linux", "x86_64-linux"));
    writeFileSync(join(work, "app.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { FleetStack } from ${JSON.stringify(join(ROOT, "examples", "fleet", "main"))};
const app = new App({ outdir: "cdktf.out" });
new FleetStack(app, "fleet", { nixosDir: ${JSON.stringify(join(work, "nixos"))}, dbInstanceType: "t3.large" });
app.synth();
`);
    ec2 = await startEc2Double({
      images: NIXOS_IMAGES,
      launch: async (publicKey) => {
        const world = await startTargets(1, { authorizedKeys: publicKey ? [publicKey] : [] });
        const host = world.hosts[0];
        hosts.set(host.address, host);
        return { privateIp: host.address, publicIp: host.address, consoleOutput: hostBootLog(host), stop: () => world.stop() };
      },
    });
    await synth();
    await terraform(stackDir(), ["init", "-input=false", "-no-color"], env());
  });
  afterAll(async () => {
    await ec2?.close();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("creates three instances and switches each to its own configuration, host keys verified from the console", async () => {
    await apply();
    expect(ec2.model.instances.filter((i) => i.state === "running")).toHaveLength(3);
    for (const role of ["web", "app", "db"]) {
      const host = target(role);
      expect((await host.exec("cat /proc/sys/kernel/hostname; cat /nix/var/nixos-lite/etc/motd")).stdout).toBe(
        `${role}\n${role === "db" ? "database" : `hello from ${role}`}\n`,
      );
      expect((await host.exec("readlink /run/current-system")).stdout).toContain(`nixos-system-${role}-`);
      expect(await generation(role)).toBe("system-1-link");
    }
    expect((await target("web").exec("cat /nix/var/nixos-lite/etc/upstream")).stdout).toBe(`http://${instance("app").privateIp}:8080\n`);
    expect(ec2.model.calls.filter((c) => c === "GetConsoleOutput").length).toBeGreaterThanOrEqual(3);
    const knownHosts = readFileSync(join(work, ".cdktf-nixos", "known_hosts"), "utf8").trim().split("\n");
    expect(knownHosts).toHaveLength(3);
    expect(await planned()).toEqual([]);
  });

  it("redeploys only the host whose configuration changed", async () => {
    writeFileSync(join(work, "nixos", "db.nix"), readFileSync(join(work, "nixos", "db.nix"), "utf8").replace(`"database\\n"`, `"database v2\\n"`));
    await synth();
    expect(await planned()).toEqual([expect.stringMatching(/^terraform_data\.db_Deployment_[0-9A-F]+ delete\+create$/)]);
    const consoleReads = ec2.model.calls.filter((c) => c === "GetConsoleOutput").length;
    await apply();
    // the host is pinned in known_hosts now: its console is not read again, and its entry outlives the redeploy
    expect(ec2.model.calls.filter((c) => c === "GetConsoleOutput").length).toBe(consoleReads);
    expect(readFileSync(join(work, ".cdktf-nixos", "known_hosts"), "utf8").trim().split("\n")).toHaveLength(3);
    expect((await target("db").exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("database v2\n");
    expect([await generation("db"), await generation("web"), await generation("app")]).toEqual(["system-2-link", "system-1-link", "system-1-link"]);
  });

  it("redeploys exactly the hosts that use a changed injected value", async () => {
    const changes = await planned("-var", "greeting=bye");
    expect(changes).toEqual([
      expect.stringMatching(/^terraform_data\.app_Deployment_[0-9A-F]+ delete\+create$/),
      expect.stringMatching(/^terraform_data\.web_Deployment_[0-9A-F]+ delete\+create$/),
    ]);
    await apply("-var", "greeting=bye");
    expect((await target("web").exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("bye from web\n");
    expect((await target("app").exec("cat /nix/var/nixos-lite/etc/motd")).stdout).toBe("bye from app\n");
    expect([await generation("web"), await generation("app"), await generation("db")]).toEqual(["system-2-link", "system-2-link", "system-2-link"]);
  });

  it("destroys everything: instances terminated, their hosts stopped", async () => {
    await terraform(stackDir(), ["destroy", "-auto-approve", "-input=false", "-no-color", "-var", "greeting=bye"], env());
    expect(ec2.model.instances.every((i) => i.state === "terminated" && i.machine === undefined)).toBe(true);
    expect(ec2.model.securityGroups).toEqual([]);
    expect(ec2.model.keyPairs).toEqual([]);
    // the destroyed instances' host keys went with them (their addresses may come back with other keys)
    expect(readFileSync(join(work, ".cdktf-nixos", "known_hosts"), "utf8")).toBe("");
  });
});
