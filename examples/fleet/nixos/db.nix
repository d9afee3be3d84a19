{ config, pkgs, ... }:
{
  networking.hostName = "db";
  # A Graviton instance: the system is built for aarch64, on the host itself (buildOnTarget in the stack).
  nixpkgs.hostPlatform = "aarch64-linux";
  environment.etc."motd".text = "database\n";
  users.users.postgres = { uid = 71; description = "PostgreSQL"; };
  system.stateVersion = "25.05";
}
