/** The NixOS project's AWS account, which publishes the official NixOS AMIs (nixos.org/download, "Amazon EC2"). */
export const NIXOS_AMI_OWNER = "427812963091";

/** The newest stable NixOS release this library knows; the default everywhere a release is not given. */
export const DEFAULT_NIXOS_RELEASE = "25.05";

/** CPU architecture of an image, in Nix's words. */
export enum NixosArchitecture {
  X86_64 = "x86_64",
  AARCH64 = "aarch64",
}

/** Official AMIs are named `nixos/25.05.<revision>-x86_64-linux` (the Nix system double at the end). */
export function nixosAmiNamePattern(release: string, architecture: NixosArchitecture): string {
  return `nixos/${release}.*-${architecture}-linux`;
}

/** EC2 calls aarch64 "arm64". */
export function ec2Architecture(architecture: NixosArchitecture): string {
  return architecture === NixosArchitecture.AARCH64 ? "arm64" : "x86_64";
}

/** Throws unless `release` names a NixOS release the way AMI names do ("25.05", "24.11"). */
export function validateRelease(release: string): void {
  if (!/^\d{2}\.(05|11)$/.test(release)) {
    throw new Error(`release must be a NixOS release such as "${DEFAULT_NIXOS_RELEASE}" (YY.05 or YY.11), got "${release}"`);
  }
}

export function parseArchitecture(value: string): NixosArchitecture {
  const known: Record<string, NixosArchitecture> = {
    x86_64: NixosArchitecture.X86_64, amd64: NixosArchitecture.X86_64,
    aarch64: NixosArchitecture.AARCH64, arm64: NixosArchitecture.AARCH64,
  };
  const architecture = known[value];
  if (architecture === undefined) throw new Error(`unknown architecture "${value}": use x86_64 or aarch64`);
  return architecture;
}
