import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { buildSystem } from "./harness/fixture";
import { missing } from "./harness/requirements";
import { run, startTargets, type TargetWorld } from "./harness/target-hosts";

// Proves the test world is real, with stock tools only: a nixpkgs-lite system built by nix-build, copied by
// nix-copy-closure over OpenSSH into a target's own store, set as the system profile and switched.
describe.skipIf(missing("root", "nix", "sshd", "netns"))("world smoke test", () => {
  let world: TargetWorld;

  beforeAll(async () => {
    world = await startTargets(1);
  });
  afterAll(async () => {
    await world?.stop();
  });

  it("copies and switches a nixpkgs-lite system on a namespaced target", async () => {
    const target = world.hosts[0]!;
    const { toplevel } = await buildSystem({
      config: `{ config, pkgs, ... }: {
        networking.hostName = "smoke";
        environment.etc."motd".text = "built for \${config.networking.hostName}";
        environment.systemPackages = [ pkgs.hello-lite ];
      }`,
    });

    const before = await target.exec(`nix-store --check-validity ${toplevel}`);
    expect(before.exitCode).not.toBe(0);
    expect(before.stderr).toContain("is not valid");

    const ssh = (command: string) => run("ssh", ["-F", world.sshConfigFile, target.name, command]);
    await run("nix-copy-closure", ["--to", `root@${target.name}`, toplevel], {
      env: { NIX_SSHOPTS: `-F ${world.sshConfigFile}` },
    });
    expect((await target.exec(`nix-store --check-validity ${toplevel}`)).exitCode).toBe(0);

    await ssh(`nix-env -p /nix/var/nix/profiles/system --set ${toplevel}`);
    const switched = await ssh(`${toplevel}/bin/switch-to-configuration switch`);
    expect(switched.stdout).toContain("activating the configuration");

    const state = await target.exec(
      "cat /nix/var/nixos-lite/etc/motd; echo; readlink /run/current-system; hostname; " +
        "readlink /nix/var/nix/profiles/system; cat /nix/var/nixos-lite/boot-default; tail -n1 /nix/var/nixos-lite/actions.log",
    );
    const [motd, current, hostname, profile, bootDefault, logLine] = state.stdout.trim().split("\n");
    expect(motd).toBe("built for smoke");
    expect(current).toBe(toplevel);
    expect(hostname).toBe("smoke");
    expect(profile).toBe("system-1-link");
    expect(bootDefault).toBe(toplevel);
    expect(logLine).toMatch(new RegExp(`switch ${toplevel} generation=1 exit=0$`));
    expect((await ssh("/run/current-system/sw/bin/hello-lite")).stdout).toContain("Hello, world!");
  });
});
