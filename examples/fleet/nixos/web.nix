# The web host. `appAddress` and `greeting` are injected by the stack (nixosArgs): the app host's private IP and a
# Terraform variable, known only at apply time.
{ config, pkgs, appAddress, greeting, ... }:
{
  networking.hostName = "web";
  environment.etc."upstream".text = "http://${appAddress}:8080\n";
  environment.etc."motd".text = "${greeting} from ${config.networking.hostName}\n";
  users.users.www = { uid = 1001; description = "web server"; };
  system.stateVersion = "25.05";
}
