# The web hosts' configuration, baked into their AMI. It imports the module the image is built with, so a deployment
# of this same file (a later `cdktf-nixos push`) is exactly the system the image boots.
{ modulesPath, greeting, ... }:
{
  imports = [ "${modulesPath}/../maintainers/scripts/ec2/amazon-image.nix" ];
  networking.hostName = "";  # EC2 gives each instance its name
  environment.etc."motd".text = "${greeting}\n";
  system.stateVersion = "25.05";
}
