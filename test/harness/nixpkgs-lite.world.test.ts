import { stat } from "node:fs/promises";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSystem, closureOf, evalSystem, nix, type ModuleSource, type NixValue } from "./fixture";
import { missing } from "./requirements";
import { run, startTargets, type TargetHost, type TargetWorld } from "./target-hosts";

describe.skipIf(missing("nix"))("nixpkgs-lite evaluation", () => {
  it("builds the same toplevel from configuration.nix (with _module.args) and a flake (with specialArgs)", async () => {
    const config = (imports: string) => `{ greeting, pkgs, ... }: {
      imports = [ ${imports} ];
      networking.hostName = "same";
      environment.etc."greeting".text = greeting;
      environment.systemPackages = [ pkgs.hello-lite ];
      lite.payload.paths = 2;
    }`;
    const classic = await buildSystem({
      config: config("./args.nix"),
      files: { "args.nix": `{ _module.args.greeting = "hi"; }` },
    });
    const flake = await buildSystem({ flake: true, config: config(""), specialArgs: `{ greeting = "hi"; }` });
    expect(flake).toEqual(classic);
    expect(classic.toplevel).toMatch(/^\/nix\/store\/[a-z0-9]{32}-nixos-system-same-24\.05\.lite$/);
  });

  it("merges modules: imports once, lists concatenate, priorities, mkIf, lines, submodule defaults", async () => {
    const source = {
      config: `{ config, lib, pkgs, ... }: {
        imports = [ ./a.nix ./b.nix ];
        networking.hostName = lib.mkDefault "default-loses";
        environment.etc."motd".text = "plain";
        environment.etc."forced".text = "plain";
        environment.etc."skipped" = lib.mkIf (config.networking.hostName == "nope") { text = "x"; };
        users.users.alice = { isNormalUser = true; uid = 1001; };
        services.lite.tick.script = "sleep 100";
      }`,
      files: {
        "a.nix": `{ pkgs, ... }: { imports = [ ./b.nix ]; environment.systemPackages = [ pkgs.hello-lite ];
          networking.hostName = "web"; environment.etc."motd".text = "from a"; }`,
        "b.nix": `{ pkgs, lib, ... }: { environment.systemPackages = [ pkgs.cowsay-lite ];
          environment.etc."forced".text = lib.mkForce "forced"; }`,
      },
    };
    const [networking, environment, users, services] = await Promise.all(
      ["networking", "environment", "users", "services"].map((a) => evalSystem(source, `config.${a}`)),
    );
    const value = { networking, environment, users, services } as {
      networking: { hostName: string };
      environment: { etc: Record<string, { text: string }>; systemPackages: string[] };
      users: { users: Record<string, { home: string; uid: number; name: string }> };
      services: { lite: Record<string, { enable: boolean }> };
    };
    expect(value.networking.hostName).toBe("web");
    expect(value.environment.systemPackages.map((p) => p.replace(/^\/nix\/store\/[a-z0-9]+-/, "")).sort()).toEqual([
      "cowsay-lite-1.0",
      "hello-lite-1.0",
    ]);
    expect(value.environment.etc.motd!.text.split("\n").sort()).toEqual(["from a", "plain"]);
    expect(value.environment.etc.forced!.text).toBe("forced");
    expect(value.environment.etc).not.toHaveProperty("skipped");
    expect(value.environment.etc.hostname!.text).toBe("web\n");
    expect(value.users.users.alice).toMatchObject({ name: "alice", home: "/home/alice", uid: 1001 });
    expect(value.users.users.root).toMatchObject({ uid: 0, home: "/root" });
    expect(value.services.lite.tick!.enable).toBe(true);
  });

  it.each([
    [`{ networking.hostname = "x"; }`, "The option `networking.hostname' does not exist"],
    [`{ networking.hostName = 42; }`, "The option `networking.hostName' is not of type `string'"],
    [`{ imports = [ { networking.hostName = "a"; } ]; networking.hostName = "b"; }`, "conflicting definition values"],
    [`{ environment.etc.x = { }; }`, "The option `environment.etc.x.source' is used but not defined"],
    [`{ nope, ... }: { networking.hostName = nope; }`, "Module argument `nope' is not available"],
  ])("rejects %s with a clear error", async (config, message) => {
    await expect(buildSystem({ config })).rejects.toThrow(message);
  });

  it("makes payload closures of the requested shape; seed replaces all, touch exactly one", async () => {
    const payloads = async (payload: Record<string, string | number>) => {
      const { toplevel } = await buildSystem({ config: { lite: { payload } } });
      return (await closureOf(toplevel)).filter((p) => p.includes("-lite-payload-"));
    };
    const base = await payloads({ paths: 5, sizeKiB: 8 });
    expect(base).toHaveLength(5);
    for (const p of base) expect((await stat(`${p}/payload`)).size).toBe(8 * 1024);
    const reseeded = await payloads({ paths: 5, sizeKiB: 8, seed: "b" });
    expect(reseeded.filter((p) => base.includes(p))).toEqual([]);
    const touched = await payloads({ paths: 5, sizeKiB: 8, touch: "1" });
    expect(touched.filter((p) => !base.includes(p))).toHaveLength(1);
  });
});

describe.skipIf(missing("root", "nix", "sshd", "netns"))("nixpkgs-lite activation on a target", () => {
  let world: TargetWorld;
  let target: TargetHost;
  const ssh = (command: string) => run("ssh", ["-F", world.sshConfigFile, "target1", command], { check: false });

  /** What a user does with stock tools: copy, set the profile (switch/boot), run switch-to-configuration. */
  async function deploy(config: ModuleSource, action: string) {
    const { toplevel } = await buildSystem({ config });
    await run("nix-copy-closure", ["--to", "root@target1", toplevel], { env: { NIX_SSHOPTS: `-F ${world.sshConfigFile}` } });
    if (action === "switch" || action === "boot") await ssh(`nix-env -p /nix/var/nix/profiles/system --set ${toplevel}`);
    return { toplevel, ...(await ssh(`${toplevel}/bin/switch-to-configuration ${action}`)) };
  }
  const observe = async (command: string) => (await target.exec(command)).stdout.trim();
  const stateFingerprint = () =>
    observe("find /nix/var/nixos-lite /run/nixos-lite /run/current-system -printf '%p %s %T@ %l\\n' 2>/dev/null | sort | md5sum");

  const service = (message: string) => ({
    networking: { hostName: "act" },
    environment: { etc: { motd: { text: message }, "old.conf": { text: "old" } } },
    users: { users: { alice: { isNormalUser: true, uid: 1001 } } },
    services: { lite: { ticker: { script: `while true; do echo ${message} > /run/ticker; sleep 0.2; done` } } },
  });

  beforeAll(async () => {
    world = await startTargets(1);
    target = world.hosts[0]!;
  });
  afterAll(async () => {
    await world?.stop();
  });

  it("switch writes /etc-like state, users, boot default, /run/current-system, log, and starts services", async () => {
    const { toplevel, exitCode, stdout } = await deploy(service("one"), "switch");
    expect(exitCode).toBe(0);
    expect(stdout).toContain("starting service ticker");
    expect(await observe("cat /nix/var/nixos-lite/etc/motd")).toBe("one");
    expect(await observe("readlink /run/current-system")).toBe(toplevel);
    expect(await observe("cat /nix/var/nixos-lite/boot-default")).toBe(toplevel);
    expect(await observe("grep ^alice: /nix/var/nixos-lite/passwd")).toBe("alice:x:1001:users::/home/alice:/bin/sh:");
    expect(await observe("tail -n1 /nix/var/nixos-lite/actions.log")).toMatch(/ switch \S+ generation=1 exit=0$/);
    // the service outlived the ssh session that started it
    expect(await observe("sleep 0.5; cat /run/ticker")).toBe("one");
  });

  it("dry-activate reports changes and changes nothing", async () => {
    const pid = await observe("cat /run/nixos-lite/services/ticker.pid");
    const before = await stateFingerprint();
    const changed = service("two");
    delete (changed.environment.etc as Record<string, unknown>)["old.conf"];
    const { exitCode, stdout } = await deploy(changed, "dry-activate");
    expect(exitCode).toBe(0);
    expect(stdout).toContain("would update /etc/motd");
    expect(stdout).toContain("would remove /etc/old.conf");
    expect(stdout).toContain("would restart service ticker");
    expect(await stateFingerprint()).toBe(before);
    expect(await observe("cat /run/nixos-lite/services/ticker.pid")).toBe(pid);
  });

  it("test activates without touching the boot default; boot only sets the boot default", async () => {
    const bootBefore = await observe("cat /nix/var/nixos-lite/boot-default");
    const pid = await observe("cat /run/nixos-lite/services/ticker.pid");
    const tested = await deploy(service("three"), "test");
    expect(tested.exitCode).toBe(0);
    expect(tested.stdout).toContain("restarting service ticker");
    expect(await observe("readlink /run/current-system")).toBe(tested.toplevel);
    expect(await observe("cat /nix/var/nixos-lite/boot-default")).toBe(bootBefore);
    expect(await observe("cat /run/nixos-lite/services/ticker.pid")).not.toBe(pid);
    expect(await observe(`kill -0 ${pid} 2>/dev/null || echo stopped`)).toBe("stopped");

    const booted = await deploy(service("four"), "boot");
    expect(booted.exitCode).toBe(0);
    expect(await observe("cat /nix/var/nixos-lite/boot-default")).toBe(booted.toplevel);
    expect(await observe("readlink /run/current-system")).toBe(tested.toplevel);
  });

  it("rejects an unknown action with NixOS's usage message", async () => {
    const { exitCode, stderr } = await deploy(service("three"), "reboot");
    expect(exitCode).toBe(1);
    expect(stderr).toContain("Usage:");
  });

  it("failActivation: boot default and profile already point at the failed system, exit 2 with a message", async () => {
    const { toplevel, exitCode, stderr } = await deploy({ lite: { failActivation: true } }, "switch");
    expect(exitCode).toBe(2);
    expect(stderr).toContain("lite.failActivation = true");
    expect(await observe("cat /nix/var/nixos-lite/boot-default")).toBe(toplevel);
    expect(await observe("readlink -f /nix/var/nix/profiles/system")).toBe(toplevel);
    expect(await observe("tail -n1 /nix/var/nixos-lite/actions.log")).toMatch(/ switch \S+ generation=\d+ exit=2$/);
  });

  it("switchSleep delays switch-to-configuration", async () => {
    const started = Date.now();
    const { exitCode } = await deploy({ lite: { switchSleep: 1 } }, "test");
    expect(exitCode).toBe(0);
    expect(Date.now() - started).toBeGreaterThanOrEqual(1_000);
  });

  it("breakNetwork takes eth0 down in the background and brings it back", async () => {
    const { toplevel } = await buildSystem({ config: { lite: { breakNetwork: { seconds: 2 } } } });
    await run("nix-copy-closure", ["--to", "root@target1", toplevel], { env: { NIX_SSHOPTS: `-F ${world.sshConfigFile}` } });
    const switched = await target.exec(`${toplevel}/bin/switch-to-configuration test`);
    expect(switched.exitCode).toBe(0);
    expect(await observe("ip -o link show eth0")).not.toMatch(/[<,]UP[,>]/);
    for (let i = 0; i < 100 && !/[<,]UP[,>]/.test(await observe("ip -o link show eth0")); i++) {
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await observe("ip -o link show eth0")).toMatch(/[<,]UP[,>]/);
    expect((await ssh("true")).exitCode).toBe(0);
  });

  it("restart forgets /run (current system, services) and keeps the boot default", async () => {
    const bootDefault = await observe("cat /nix/var/nixos-lite/boot-default");
    await target.restart();
    expect(await observe("test -e /run/current-system || echo gone")).toBe("gone");
    expect(await observe("pgrep -f lite-servic[e]- || echo none")).toBe("none");
    expect(await observe("cat /nix/var/nixos-lite/boot-default")).toBe(bootDefault);
  });

  it("systemPackages land in sw/bin", async () => {
    const { exitCode } = await deploy({ environment: { systemPackages: nix("[ pkgs.hello-lite pkgs.cowsay-lite ]") } }, "switch");
    expect(exitCode).toBe(0);
    expect((await ssh("/run/current-system/sw/bin/cowsay-lite moo")).stdout).toContain("< moo >");
  });
});

describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets"))("nixpkgs-lite activation on a systemd host", () => {
  let world: TargetWorld;
  let target: TargetHost;
  const ssh = (command: string) => run("ssh", ["-F", world.sshConfigFile, "target1", command], { check: false });
  const observe = async (command: string) => (await target.exec(command)).stdout.trim();
  const mainPid = (unit: string) => observe(`systemctl show -p MainPID --value ${unit}`);

  async function deploy(config: ModuleSource, action: string) {
    const { toplevel } = await buildSystem({ config });
    await run("nix-copy-closure", ["--to", "root@target1", toplevel], { env: { NIX_SSHOPTS: `-F ${world.sshConfigFile}` } });
    if (action === "switch" || action === "boot") await ssh(`nix-env -p /nix/var/nix/profiles/system --set ${toplevel}`);
    return { toplevel, ...(await ssh(`${toplevel}/bin/switch-to-configuration ${action}`)) };
  }
  const system = (services: Record<string, Record<string, NixValue>>, motd = "m") => ({
    networking: { hostName: "units" },
    environment: { etc: { motd: { text: motd } } },
    services: { lite: services },
  });
  const ticker = (message: string) => ({ script: `while true; do echo ${message} > /run/ticker; sleep 0.2; done` });

  beforeAll(async () => {
    world = await startTargets(1, { kind: "systemd", users: [{ name: "svc" }] });
    target = world.hosts[0]!;
  });
  afterAll(async () => {
    await world?.stop();
  });

  it("switch starts services as their own units, which outlive the session; an unchanged unit is left running", async () => {
    const first = await deploy(system({ ticker: ticker("one") }), "switch");
    expect(first.exitCode, first.stderr).toBe(0);
    expect(first.stdout).toContain("starting service ticker");
    expect(await observe("systemctl is-active ticker.service")).toBe("active");
    expect(await observe(`readlink -f /etc/systemd/system/ticker.service /run/systemd/generator/ticker.service`)).toMatch(
      new RegExp(`^/etc/systemd/system/ticker.service\n/nix/store/[a-z0-9]{32}-etc-ticker.service$`),
    );
    const pid = await mainPid("ticker.service");
    // its own unit, not the session's scope (read from outside the container's cgroup namespace: the full path)
    expect(await observe(`grep ^0:: /proc/${pid}/cgroup`)).toMatch(/\/payload\/system\.slice\/ticker\.service$/);
    const unchanged = await deploy(system({ ticker: ticker("one") }, "changed motd"), "switch");
    expect(unchanged.exitCode).toBe(0);
    expect(unchanged.stdout).not.toMatch(/(starting|restarting|stopping) service ticker/);
    expect(await mainPid("ticker.service")).toBe(pid);
  });

  it("dry-activate says what would start, stop and restart, and changes nothing", async () => {
    const pid = await mainPid("ticker.service");
    const dry = await deploy(system({ ticker: ticker("two"), other: ticker("other") }), "dry-activate");
    expect(dry.exitCode).toBe(0);
    expect(dry.stdout).toContain("would restart service ticker");
    expect(dry.stdout).toContain("would start service other");
    expect(await observe("systemctl is-active other.service")).not.toBe("active");
    expect(await mainPid("ticker.service")).toBe(pid);
    const dryRemove = await deploy(system({}), "dry-activate");
    expect(dryRemove.stdout).toContain("would stop service ticker");
  });

  it("test restarts a changed unit and starts a new one; boot changes nothing that runs", async () => {
    const pid = await mainPid("ticker.service");
    const tested = await deploy(system({ ticker: ticker("two"), other: { ...ticker("other"), user: "svc" } }), "test");
    expect(tested.exitCode, tested.stderr).toBe(0);
    expect(tested.stdout).toContain("restarting service ticker");
    expect(tested.stdout).toContain("starting service other");
    expect(await mainPid("ticker.service")).not.toBe(pid);
    expect(await observe("ps -o user= -p $(systemctl show -p MainPID --value other.service)")).toBe("svc");
    const running = await mainPid("ticker.service");
    const booted = await deploy(system({}), "boot");
    expect(booted.exitCode).toBe(0);
    expect(await mainPid("ticker.service")).toBe(running);
    expect(await observe("cat /nix/var/nixos-lite/boot-default")).toBe(booted.toplevel);
  });

  it("a reboot brings up the boot default: its units run, the others do not", async () => {
    const next = await deploy(system({ ticker: ticker("after reboot") }), "boot");
    expect(next.exitCode).toBe(0);
    await target.restart();
    expect(await observe("readlink /run/current-system")).toBe(next.toplevel);
    expect(await observe("systemctl is-active ticker.service; systemctl is-active other.service")).toBe("active\ninactive");
    expect(await observe("sleep 0.5; cat /run/ticker")).toBe("after reboot");
  });

  it("a unit that fails to start: exit 4, NixOS's warning naming it, its status and journal lines; removing it clears it", async () => {
    const bad = { script: "sleep 100", preStart: "echo 'config check: /etc/bad.conf is missing' >&2; exit 3" };
    const failed = await deploy(system({ ticker: ticker("one"), bad }), "switch");
    expect(failed.exitCode).toBe(4);
    expect(failed.stderr).toContain("warning: the following units failed: bad.service");
    expect(failed.stderr).toContain("config check: /etc/bad.conf is missing");
    expect(await observe("systemctl is-failed bad.service")).toBe("failed");
    expect(await observe("systemctl is-active ticker.service")).toBe("active");
    const fixed = await deploy(system({ ticker: ticker("one") }), "switch");
    expect(fixed.exitCode, fixed.stderr).toBe(0);
    expect(fixed.stdout).toContain("stopping service bad");
    expect(await observe("systemctl list-units --failed --plain --no-legend | wc -l")).toBe("0");
  });
});
