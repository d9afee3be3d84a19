# An example NixOS configuration. With real nixpkgs it is an ordinary configuration.nix; the demo and the tests
# build it against test/fixtures/nixpkgs-lite, which understands the same options without a network.
{ config, pkgs, ... }:
{
  networking.hostName = "web";
  environment.etc."motd".text = ''
    Deployed by cdktf-nixos to ${config.networking.hostName}.
  '';
  environment.systemPackages = [ pkgs.hello-lite ];
  users.users.ops = { uid = 1000; description = "Operations"; };
  system.stateVersion = "25.05";
}
