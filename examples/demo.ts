/**
 * npm run demo: the main job on an embedded default. Starts a throwaway NixOS-shaped target host on this machine
 * (its own network namespace, Nix store and sshd), then runs `cdktf-nixos deploy` with examples/nixos/configuration.nix
 * built against the project's nixpkgs-lite fixture, twice (the second run copies nothing), and shows the result.
 * Needs root and what test/run-all.sh installs (nix-bin, openssh-server, iproute2).
 */
import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { NIXPKGS_LITE } from "../test/harness/fixture";
import { cleanupStaleTargets, startTargets } from "../test/harness/target-hosts";

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    console.error("npm run demo starts a throwaway target host in its own namespaces: run it as root");
    return 2;
  }
  await cleanupStaleTargets();
  const world = await startTargets(1);
  try {
    const target = world.hosts[0];
    console.log(`target host ${target.name} at ${target.address}, host key ${target.hostKey.slice(0, 40)}...\n`);
    const deploy = [
      join(__dirname, "..", "lib", "cli", "bin.js"), "deploy",
      "--target-host", `root@${target.address}`,
      "--ssh-key", world.clientKeyFile,
      "--known-hosts", world.knownHostsFile,
      "--config", join(__dirname, "nixos", "configuration.nix"),
      "-I", `nixpkgs=${NIXPKGS_LITE}`,
    ];
    for (const run of ["first deploy", "second deploy (nothing to copy)"]) {
      console.log(`$ cdktf-nixos ${deploy.slice(1).join(" ")}   # ${run}`);
      const result = spawnSync(process.execPath, deploy, { stdio: "inherit", env: { ...process.env, NIX_CONFIG: "substituters =" } });
      if (result.status !== 0) return result.status ?? 1;
      console.log();
    }
    const motd = await target.exec("cat /nix/var/nixos-lite/etc/motd; readlink /run/current-system /nix/var/nix/profiles/system");
    console.log(`on ${target.name}:\n${motd.stdout}`);
    return 0;
  } finally {
    await world.stop();
  }
}

main().then((code) => (process.exitCode = code));
