{ config, pkgs, greeting, ... }:
{
  networking.hostName = "app";
  environment.etc."motd".text = "${greeting} from ${config.networking.hostName}\n";
  users.users.app = { uid = 1002; description = "application"; };
  system.stateVersion = "25.05";
}
