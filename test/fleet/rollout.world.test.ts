import { execFileSync } from "node:child_process";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { appendFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/errors";
import { STATUS_EXIT_CODES } from "../../src/fleet/status";
import { EXEC_EXIT_CODES } from "../../src/fleet/exec";
import { cdktfNixos, type CliResult } from "../harness/cli";
import { NIXPKGS_LITE } from "../harness/fixture";
import { hostSideAddress } from "../harness/host-util";
import { missing } from "../harness/requirements";
import { run, startTargets, type TargetHost, type TargetWorld } from "../harness/target-hosts";
import { terraform } from "../harness/terraform";

const ROOT = join(__dirname, "..", "..");
const NAMES = ["h1", "h2", "h3", "h4", "h5", "h6"] as const;
type Name = (typeof NAMES)[number];

/** A host's configuration: a service that writes its version to /run/web; `broken`: its new version cannot start. */
function configuration(name: Name, version: string, broken = false): string {
  const preStart = broken ? `preStart = "echo 'web: /etc/web/web.conf: no such file or directory' >&2; exit 78";` : "";
  return `{ config, pkgs, ... }: {
  networking.hostName = "${name}";
  environment.etc."motd".text = "${name} ${version}\\n";
  services.lite.web = { script = "while true; do echo ${version} > /run/web; sleep 0.2; done"; ${preStart} };
  system.stateVersion = "25.05";
}
`;
}

type JsonHost = {
  name: string; status: string; wave?: number; exitCode: number; reason?: string; newSystem?: string; previousSystem?: string;
  healthChecks?: Array<{ name: string; outcome: string; saw: string }>;
  error?: { phase: string; message: string; exitCode: number; failedUnits?: Array<{ name: string }> };
};
type StatusHost = { name: string; state: string; declaredSystem: string | null; runningSystem: string | null; generation: number | null; reason?: string; lastActivation: { action: string; outcome: string; by: string } | null };

/**
 * Rollouts in waves behind health checks, `status`, `rollback` and `exec`, against six real systemd hosts deployed by
 * real terraform (NixosDeployment) and then by `push`.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets", "terraform"))("operating a fleet: waves, health checks, status, rollback, exec", () => {
  let work: string;
  let world: TargetWorld;
  let health: Server;
  /** Addresses whose health endpoint answers 503. */
  const unhealthy = new Set<string>();
  const stackDir = () => join(work, "cdktf.out", "stacks", "rollout");
  const env = () => ({ NIX_CONFIG: "substituters =", CHECKPOINT_DISABLE: "1", PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}` });
  const cli = async (command: string, ...args: string[]): Promise<CliResult> => {
    const result = await cdktfNixos([command, "--project", work, ...args], env());
    // ROLLOUT_TRANSCRIPT=FILE keeps what each command printed (the README's transcript comes from there)
    if (process.env.ROLLOUT_TRANSCRIPT) appendFileSync(process.env.ROLLOUT_TRANSCRIPT, `$ cdktf-nixos ${[command, ...args].join(" ")}\n${result.stderr}${result.stdout}[exit ${result.code}]\n`);
    return result;
  };
  const host = (name: Name): TargetHost => world.hosts[NAMES.indexOf(name)]!;
  const running = async (name: Name) => (await host(name).exec("readlink -f /run/current-system")).stdout.trim();
  const web = async (name: Name) => (await host(name).exec("sleep 0.5; systemctl is-active web.service; cat /run/web")).stdout;
  const writeAll = (version: string, broken: readonly Name[] = []) => {
    for (const name of NAMES) writeFileSync(join(work, "nixos", `${name}.nix`), configuration(name, version, broken.includes(name)));
  };
  const hosts = (result: CliResult) => new Map(((result.json?.hosts ?? []) as JsonHost[]).map((h) => [h.name, h]));
  const statusOf = async (...args: string[]) => {
    const result = await cli("status", "--json", ...args);
    return { result, hosts: new Map(((result.json?.hosts ?? []) as StatusHost[]).map((h) => [h.name, h])) };
  };
  const systems = async () => Object.fromEntries(await Promise.all(NAMES.map(async (n) => [n, await running(n)] as const)));
  /** Every host's activations ended (the scripts roll back on their own). */
  const settled = async () => {
    for (const name of NAMES) {
      await host(name).exec("for i in $(seq 100); do busy=; for f in /run/cdktf-nixos/*.log; do [ -e \"$f\" ] && [ ! -e \"${f%.log}.done\" ] && busy=1; done; [ -z \"$busy\" ] && break; sleep 0.2; done");
    }
  };

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    world = await startTargets(NAMES.length, { kind: "systemd" });
    health = createServer((req, res) => {
      const from = (req.socket.remoteAddress ?? "").replace(/^::ffff:/, "");
      if (unhealthy.has(from)) res.writeHead(503).end("down\n");
      else res.writeHead(200).end("ok\n");
    });
    await new Promise<void>((resolve) => health.listen(0, "0.0.0.0", resolve));
    const port = (health.address() as AddressInfo).port;
    work = mkdtempSync(join(tmpdir(), "rollout-"));
    mkdirSync(join(work, "nixos"));
    writeAll("v1");
    writeFileSync(join(work, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "rollout-test", sendCrashReports: "false" }));
    // each host reaches the test's HTTP server at the machine's side of its own link
    const rolloutHosts = NAMES.map((name, i) => {
      const address = world.hosts[i]!.address;
      const slot = (Number(address.split(".")[3]) - 2) / 4;
      return { name, address, healthUrl: `http://${hostSideAddress(slot)}:${port}/health` };
    });
    writeFileSync(join(work, "main.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { SixHostsStack } from ${JSON.stringify(join(__dirname, "six-hosts-stack"))};
const app = new App();
new SixHostsStack(app, "rollout", { nixosDir: ${JSON.stringify(join(work, "nixos"))}, nixpkgs: ${JSON.stringify(NIXPKGS_LITE)}, hosts: ${JSON.stringify(rolloutHosts)},
  sshPrivateKeyFile: ${JSON.stringify(world.clientKeyFile)}, knownHostsFile: ${JSON.stringify(world.knownHostsFile)} });
app.synth();
`);
    const synth = await run(join(ROOT, "node_modules", ".bin", "cdktf"), ["synth"], { cwd: work, env: { ...process.env, ...env() } as Record<string, string>, check: false });
    if (synth.exitCode !== 0) throw new Error(`synth failed:\n${synth.stdout}\n${synth.stderr}`);
    await terraform(stackDir(), ["init", "-input=false", "-no-color"], env());
    await terraform(stackDir(), ["apply", "-auto-approve", "-input=false", "-no-color"], env());
    for (const name of NAMES) expect(await web(name)).toBe("active\nv1\n");
  });
  afterAll(async () => {
    health?.close();
    await world?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("push --canary 1 --batch-size 2: a service failing on a host of wave 2 rolls that host back and stops the rollout; wave 1 keeps the new system, wave 3 is untouched", async () => {
    const before = await systems();
    writeAll("v2", ["h3"]);
    const dry = await cli("push", "--canary", "1", "--batch-size", "2", "--dry-run", "--json");
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.json?.waves).toEqual([["h1"], ["h2", "h3"], ["h4", "h5"], ["h6"]]);

    const result = await cli("push", "--canary", "1", "--batch-size", "2", "--json");
    expect(result.code, result.stderr).toBe(EXIT_CODES.activate);
    const report = hosts(result);
    expect(NAMES.map((n) => [n, report.get(n)?.status, report.get(n)?.wave])).toEqual([
      ["h1", "deployed", 1], ["h2", "deployed", 2], ["h3", "failed", 2], ["h4", "skipped", undefined], ["h5", "skipped", undefined], ["h6", "skipped", undefined],
    ]);
    expect(result.json?.halted).toBe("wave 2 failed: h3 (1 failed, --max-failures 0)");
    expect(report.get("h3")?.error).toMatchObject({ phase: "activate", exitCode: EXIT_CODES.activate, failedUnits: [{ name: "web.service" }] });
    expect(report.get("h1")?.healthChecks?.map((c) => [c.name, c.outcome])).toEqual([["systemd", "passed"], ["health endpoint", "passed"]]);
    await settled();
    // what the report says is what the hosts run
    expect([await web("h1"), await web("h2")]).toEqual(["active\nv2\n", "active\nv2\n"]);
    expect(await running("h1")).toBe(report.get("h1")?.newSystem);
    expect([await running("h3"), await web("h3")]).toEqual([before.h3, "active\nv1\n"]);
    for (const name of ["h4", "h5", "h6"] as const) expect([await running(name), await web(name)]).toEqual([before[name], "active\nv1\n"]);
    expect(result.stdout).not.toBe("");
  });

  it("status: every host's state against the stack, exactly the drifted ones, and a clean fleet after a push", async () => {
    writeAll("v2");
    const before = await statusOf();
    // h1 and h2 run v2 already; h3–h6 still run v1
    expect(before.result.code).toBe(STATUS_EXIT_CODES.notUpToDate);
    expect(NAMES.map((n) => before.hosts.get(n)?.state)).toEqual(["up-to-date", "up-to-date", "drifted", "drifted", "drifted", "drifted"]);
    expect(before.hosts.get("h1")?.lastActivation).toMatchObject({ action: "switch", outcome: "activated" });
    expect(before.hosts.get("h3")?.lastActivation?.outcome).toBe("failed (exit 4), then rolled back");

    const pushed = await cli("push", "--json");
    expect(pushed.code, pushed.stderr).toBe(0);
    const clean = await statusOf();
    expect(clean.result.code, clean.result.stderr).toBe(0);
    expect(NAMES.map((n) => clean.hosts.get(n)?.state)).toEqual(NAMES.map(() => "up-to-date"));

    // a manual change on h4 (the profile set by hand, as an admin would): exactly h4 drifted
    const v1 = (await host("h4").exec("readlink -f /nix/var/nix/profiles/system-1-link")).stdout.trim();
    await host("h4").exec(`nix-env -p /nix/var/nix/profiles/system --set ${v1} && ${v1}/bin/switch-to-configuration switch`);
    const drifted = await statusOf();
    expect(drifted.result.code).toBe(STATUS_EXIT_CODES.notUpToDate);
    expect(NAMES.filter((n) => drifted.hosts.get(n)?.state !== "up-to-date")).toEqual(["h4"]);
    expect(drifted.hosts.get("h4")).toMatchObject({ runningSystem: v1, declaredSystem: clean.hosts.get("h4")?.runningSystem });
    const table = await cli("status");
    expect(table.code).toBe(STATUS_EXIT_CODES.notUpToDate);
    expect(table.stdout).toMatch(/h4\s*│\s*drifted/);
    expect((await cli("push", "--on", "h4")).code).toBe(0);
    expect((await statusOf()).result.code).toBe(0);
  });

  it("rollback --on HOST: that host goes back a generation through the checked activation; status shows it drifted; the next push restores it", async () => {
    const declared = await running("h5");
    const rolled = await cli("rollback", "--on", "h5", "--json");
    expect(rolled.code, rolled.stderr).toBe(0);
    expect(hosts(rolled).get("h5")).toMatchObject({ status: "rolled-back", healthChecks: [{ name: "systemd", outcome: "passed" }, { name: "health endpoint", outcome: "passed" }] });
    expect(await web("h5")).toBe("active\nv1\n");
    const after = await statusOf();
    expect(NAMES.filter((n) => after.hosts.get(n)?.state !== "up-to-date")).toEqual(["h5"]);
    expect(await running("h5")).not.toBe(declared);

    const refused = await cli("rollback", "--on", "h6", "--to-generation", "999");
    expect(refused.code).toBe(EXIT_CODES.inspect);
    expect(refused.stderr).toMatch(/cannot roll .* back: there is no generation 999 of \/nix\/var\/nix\/profiles\/system \(it has 1, 2\); nothing was changed/);

    expect((await cli("push")).code).toBe(0);
    expect([await running("h5"), await web("h5")]).toEqual([declared, "active\nv2\n"]);
    expect((await statusOf()).result.code).toBe(0);
  });

  it("status reports an unreachable host within --connect-timeout, the others as they are", async () => {
    const restore = await host("h6").refuseSsh();
    try {
      const started = Date.now();
      const { result, hosts: status } = await statusOf("--connect-timeout", "2");
      expect(result.code).toBe(STATUS_EXIT_CODES.unreachable);
      expect(status.get("h6")?.state).toBe("unreachable");
      expect(NAMES.filter((n) => status.get(n)?.state !== "up-to-date")).toEqual(["h6"]);
      // bounded by the timeout given, not the deployment's own 300 s (a loose bound: this machine is shared)
      expect(Date.now() - started).toBeLessThan(60_000);
    } finally {
      await restore();
    }
  });

  it("--rollback-completed-on-failure: when wave 2 fails, every host is left on the system it ran before the push", async () => {
    const before = await systems();
    writeAll("v3", ["h3"]);
    const result = await cli("push", "--canary", "1", "--batch-size", "2", "--rollback-completed-on-failure", "--json");
    expect(result.code, result.stderr).toBe(EXIT_CODES.activate);
    const report = hosts(result);
    expect(NAMES.map((n) => report.get(n)?.status)).toEqual(["rolled-back", "rolled-back", "failed", "skipped", "skipped", "skipped"]);
    await settled();
    expect(await systems()).toEqual(before);
    for (const name of NAMES) expect(await web(name)).toBe("active\nv2\n");
  });

  it("a failing HTTP health check (asked from the host) rolls that host back at once and stops the rollout", async () => {
    const before = await systems();
    const serving = await web("h3");
    writeAll("v4");
    unhealthy.add(host("h3").address);
    try {
      const result = await cli("push", "--canary", "1", "--batch-size", "2", "--json");
      expect(result.code, result.stderr).toBe(EXIT_CODES.health);
      const report = hosts(result);
      expect(NAMES.map((n) => report.get(n)?.status)).toEqual(["deployed", "deployed", "failed", "skipped", "skipped", "skipped"]);
      expect(report.get("h3")?.error).toMatchObject({ phase: "health", exitCode: EXIT_CODES.health });
      expect(report.get("h3")?.error?.message).toContain(`health check 'health endpoint' failed (status 503 (expected 200), body "down\\n"); ${report.get("h3")?.error?.message.match(/on (\S+):/)?.[1]}`);
      expect(report.get("h3")?.error?.message).toMatch(/was rolled back to \/nix\/store\//);
      await settled();
      expect([await running("h3"), await web("h3")]).toEqual([before.h3, serving]);
      expect(await web("h1")).toBe("active\nv4\n");
    } finally {
      unhealthy.clear();
    }
    expect((await cli("push")).code).toBe(0);
  });

  it("exec on six hosts with one failing command: output per host, the summary, exit 14", async () => {
    await host("h4").exec("touch /run/exec-fails-here");
    try {
      const result = await cli("exec", "--", "sh", "-c", "cat /nix/var/nixos-lite/etc/motd; test ! -e /run/exec-fails-here");
      expect(result.code).toBe(EXEC_EXIT_CODES.failed);
      for (const name of NAMES) expect(result.stdout).toContain(`[${name}] ${name} v4`);
      expect(result.stdout).toContain("[h4] exit 1");
      expect(result.stdout).toContain("exit 0 on 5 of 6 hosts (h1, h2, h3, h5, h6)\nh4: exit 1");
      const grouped = await cli("exec", "--group", "--json", "--", "cat", "/nix/var/nixos-lite/etc/motd");
      expect(grouped.code).toBe(0);
      expect((grouped.json?.hosts as Array<{ name: string; exitCode: number; stdout: string }>).map((h) => [h.name, h.exitCode, h.stdout]))
        .toEqual(NAMES.map((n) => [n, 0, `${n} v4\n`]));
    } finally {
      await host("h4").exec("rm -f /run/exec-fails-here");
    }
  });
});
