import { execFileSync } from "node:child_process";
import type { TargetHost } from "../target-hosts";

/** A NixOS EC2 boot log around the host key fingerprint block nixos/modules/virtualisation/ec2-data.nix prints. */
export function bootLog(fingerprintLines: string[], hostName = "target1"): string {
  return ["<<< Welcome to NixOS 25.05 (x86_64) - ttyS0 >>>", "-----BEGIN SSH HOST KEY FINGERPRINTS-----",
    ...fingerprintLines, "-----END SSH HOST KEY FINGERPRINTS-----", `${hostName} login: `].join("\r\n");
}

/** The boot log a target host's instance would print: its real host key's fingerprint. */
export function hostBootLog(host: TargetHost): string {
  const fingerprint = execFileSync("ssh-keygen", ["-l", "-f", host.hostPrivateKeyFile], { encoding: "utf8" }).trim();
  return bootLog([`[   11.2] ${fingerprint}`], host.name);
}

/** The environment that points the AWS provider and SDK at an EC2 double, with fake credentials. */
export function ec2DoubleEnv(endpoint: string): Record<string, string> {
  return { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", AWS_REGION: "eu-central-1", AWS_ENDPOINT_URL_EC2: endpoint };
}
