import { NixosArchitecture } from "../aws/nixos-ami-names";

/** Families with AWS Graviton (arm64) processors: a1, and any family with a "g" after its generation (t4g, c7gn…). */
export function architectureOfInstanceType(instanceType: string): NixosArchitecture {
  const family = instanceType.split(".")[0];
  return family === "a1" || /^[a-z]+\d+g[a-z]*$/.test(family) ? NixosArchitecture.AARCH64 : NixosArchitecture.X86_64;
}
