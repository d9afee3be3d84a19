import { existsSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { NIXPKGS_LITE, NO_SUBSTITUTERS, buildSystem, writeFlake } from "./fixture";
import { missing } from "./requirements";
import { run } from "./target-hosts";

/** nixpkgs-lite's `system.build.vm` and `testers.runNixOSTest`, used as nixpkgs' are, before cdktf-nixos uses them. */
describe.skipIf(missing("root", "nix", "netns", "python3"))("nixpkgs-lite VMs and NixOS tests", () => {
  const dir = mkdtempSync(join(tmpdir(), "nixpkgs-lite-vm-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const nixBuild = async (args: string[], cwd = dir) => {
    const result = await run("nix-build", [...args, "-I", `nixpkgs=${NIXPKGS_LITE}`, "--no-out-link", ...NO_SUBSTITUTERS], { cwd, check: false });
    return { ...result, out: result.stdout.trim() };
  };

  it("nix-build '<nixpkgs/nixos>' -A vm: bin/run-<hostName>-vm, system = the configuration's toplevel; a flake has it too", async () => {
    const config = '{ ... }: { networking.hostName = "web"; environment.etc."motd".text = "vm test\\n"; }\n';
    writeFileSync(join(dir, "configuration.nix"), config);
    const vm = await nixBuild(["<nixpkgs/nixos>", "-A", "vm", "-I", `nixos-config=${join(dir, "configuration.nix")}`]);
    expect(vm.exitCode, vm.stderr).toBe(0);
    expect(readdirSync(join(vm.out, "bin"))).toEqual(["run-web-vm"]);
    const { toplevel } = await buildSystem({ config });
    expect(readlinkSync(join(vm.out, "system"))).toBe(toplevel);

    const flakeDir = join(dir, "flake");
    await writeFlake(flakeDir, { config: '{ ... }: { networking.hostName = ""; }\n' });
    const flake = await run("nix", ["--extra-experimental-features", "nix-command flakes", "build", "--no-link", "--json", ...NO_SUBSTITUTERS,
      `path:${flakeDir}#nixosConfigurations.web.config.system.build.vm`], { check: false });
    expect(flake.exitCode, flake.stderr).toBe(0);
    // nixpkgs' system.name for an empty host name
    const [built] = JSON.parse(flake.stdout) as { outputs: { out: string } }[];
    expect(readdirSync(join(built.outputs.out, "bin"))).toEqual(["run-unnamed-vm"]);
  });

  it("run-<host>-vm boots the system in namespaces: its /etc, its services, a read-only store, state on its disk only", async () => {
    writeFileSync(join(dir, "boot.nix"), `{ ... }: {
  networking.hostName = "booted";
  environment.etc."motd".text = "hello from the vm\\n";
  services.lite.ticker.script = "while true; do date > /tmp/tick; sleep 1; done";
}
`);
    const vm = await nixBuild(["<nixpkgs/nixos>", "-A", "vm", "-I", `nixos-config=${join(dir, "boot.nix")}`]);
    const console = "hostname; cat /etc/motd; kill -0 $(cat /run/nixos-lite/services/ticker.pid) && echo ticking\n" +
      "touch /nix/store/x 2>/dev/null || echo store read-only\nip -o link | cut -d: -f2 | tr -d ' '\necho disk > /root/on-disk\n";
    const booted = await run("sh", ["-c", `printf '%s' "$0" | ${join(vm.out, "bin", "run-booted-vm")} -m 1024`, console], { cwd: dir, check: false });
    expect(booted.exitCode, booted.stderr).toBe(0);
    expect(booted.stdout).toContain("Disk image do not exist, creating the virtualisation disk image...");
    expect(booted.stdout).toContain("booted login: root (automatic login)");
    // only loopback: like QEMU's user network, nothing of this machine's network is reachable
    expect(booted.stdout).toContain("booted\nhello from the vm\nticking\nstore read-only\nlo\n");
    expect(booted.stderr).toMatch(/nixos-lite vm: qemu-kvm -name booted -append "init=\/nix\/store\/\S+-nixos-system-booted-24.05.lite\/init " +-m 1024/);
    expect(readFileSync(join(dir, "booted.qcow2", "root", "on-disk"), "utf8")).toBe("disk\n");
    expect(existsSync(join(dir, "booted.qcow2", "nix-var", "nixos-lite", "etc", "motd"))).toBe(true);
  });

  it("runNixOSTest: node names as host names, defaults, the nodes argument, a testScript function; the driver runs it", async () => {
    writeFileSync(join(dir, "test.nix"), `{ pkgs ? import <nixpkgs> { } }:
pkgs.testers.runNixOSTest {
  name = "pair";
  defaults = { environment.etc."fleet".text = "yes\\n"; };
  nodes.server = { services.lite.http.script = "exec /usr/bin/python3 -m http.server 8000"; };
  nodes.client = { nodes, ... }: {
    networking.hostName = "renamed";
    environment.etc."peer".text = nodes.server.networking.hostName;
  };
  testScript = { nodes, ... }: ''
    start_all()
    server.wait_for_unit("http.service")
    server.wait_for_open_port(8000)
    assert client.succeed("cat /etc/peer") == "server"
    assert client.succeed("hostname").strip() == "${"$"}{nodes.client.networking.hostName}"
    client.succeed("cat /etc/fleet", "bash -c 'exec 3<>/dev/tcp/server/8000'")
    client.fail("bash -c 'exec 3<>/dev/tcp/server/8001'")
  '';
}
`);
    const driver = await nixBuild([join(dir, "test.nix"), "-A", "driver"]);
    expect(driver.exitCode, driver.stderr).toBe(0);
    const ran = await run(join(driver.out, "bin", "nixos-test-driver"), [], { check: false });
    expect(ran.exitCode, ran.stderr).toBe(0);
    expect(ran.stderr).toMatch(/client: must fail: bash -c 'exec 3<>\/dev\/tcp\/server\/8001'\n[\s\S]*test script finished in/);
    // the test itself builds (the driver, checked); its machines ran in namespaces that are gone
    expect((await nixBuild([join(dir, "test.nix")])).exitCode).toBe(0);
    expect((await run("sh", ["-c", "pgrep -f '[b]ooted-system-ready|[v]lan1-peer' || true"])).stdout.trim()).toBe("");
  });

  it("a script that names no machine fails the driver build with the name, as pyflakes does in nixpkgs", async () => {
    writeFileSync(join(dir, "typo.nix"), `{ pkgs ? import <nixpkgs> { } }:
pkgs.testers.runNixOSTest { name = "typo"; nodes.machine = { }; testScript = "start_all()\\nmachnie.succeed('true')\\n"; }
`);
    const driver = await nixBuild([join(dir, "typo.nix"), "-A", "driver"]);
    expect(driver.exitCode).not.toBe(0);
    expect(driver.stderr).toContain("testScript: undefined name 'machnie' (machines: machine)");
  });
});
