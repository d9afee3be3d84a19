import type { DeploymentSpec } from "../../src/spec/manifest";
import { DEFAULT_SETTINGS } from "../../src/spec/settings";

/** A synthesized deployment of an EC2 host `name` in stack "fleet", as the manifest holds it. */
export const deploymentSpec = (name: string, overrides: Partial<DeploymentSpec> = {}): DeploymentSpec => ({
  ...DEFAULT_SETTINGS,
  id: `fleet/${name}/Deployment`,
  resource: `terraform_data.${name}_Deployment_Resource_AB12`,
  host: `\${aws_instance.${name}_Instance_CD34.public_ip}`,
  user: "root",
  port: 22,
  source: { configuration: `/work/app/nixos/${name}.nix`, nixPath: { nixpkgs: "/work/nixpkgs" } },
  nixosArgs: {},
  nixosArgsAtSynth: {},
  drvPath: `/nix/store/0000000000000000000000000000000c-nixos-system-${name}.drv`,
  system: "x86_64-linux",
  action: "switch",
  sshPrivateKeyFile: "/work/app/.cdktf-nixos/keys/fleet",
  knownHostsFile: "/work/app/.cdktf-nixos/known_hosts",
  acceptNewHostKey: false,
  instanceId: `\${aws_instance.${name}_Instance_CD34.id}`,
  region: `\${data.aws_region.${name}_Region_EF56.name}`,
  useSubstitutes: false,
  buildOnTarget: false,
  connectTimeoutSeconds: 300,
  confirmTimeoutSeconds: 30,
  tags: { role: name.replace(/\d+$/, "") },
  sensitiveArgs: [],
  keys: [],
  ...overrides,
});
