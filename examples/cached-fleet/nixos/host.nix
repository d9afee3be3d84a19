# A host of the cached fleet: its Nix trusts the fleet's binary cache (the NixosInstance passes `binaryCache` in), so it
# substitutes from there itself too, not only when a deployment tells it to.
{ config, pkgs, binaryCache, hostName, ... }:
{
  networking.hostName = hostName;
  nix.settings.substituters = [ "https://cache.nixos.org" binaryCache.substituter ];
  nix.settings.trusted-public-keys = [ "cache.nixos.org-1:6NCHdD59X431o0gWypbMrAURkbJ16ZPMQFGspcDShjY=" binaryCache.publicKey ];
  environment.systemPackages = [ pkgs.hello-lite ];
  system.stateVersion = "25.05";
}
