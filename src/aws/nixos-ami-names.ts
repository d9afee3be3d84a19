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

/** Releases before the YY.05 / YY.11 scheme: they were releases, but no official AMI of theirs is published any more. */
const EARLY_RELEASES = ["13.10", "14.04", "14.12", "15.09", "16.03", "16.09", "17.03", "17.09", "18.03", "18.09", "19.03", "19.09", "20.03", "20.09"];

/** Throws unless `release` names a NixOS release the way AMI names do ("25.05", "24.11") and can have an official AMI. */
export function validateRelease(release: string): void {
  if (EARLY_RELEASES.includes(release)) {
    throw new Error(`NixOS ${release} was a release, but it has no official AMI any more (they are deleted 90 days after upload); ` +
      `use a supported release such as "${DEFAULT_NIXOS_RELEASE}"`);
  }
  if (!/^\d{2}\.(05|11)$/.test(release) || Number(release.slice(0, 2)) < 21) {
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
