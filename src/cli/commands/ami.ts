import { secondsFlag } from "../../spec/flags";
import { Command } from "commander";
import { endpointProblem } from "../../aws/endpoint";
import { DEFAULT_NIXOS_RELEASE, parseArchitecture, validateRelease } from "../../aws/nixos-ami-names";
import type { Output } from "../progress";
import { UsageError } from "../usage-error";

export function registerAmiCommand(program: Command, output: Output): void {
  program
    .command("ami")
    .description("print the newest official NixOS AMI of a release (DescribeImages, default AWS credentials)")
    .option("--release <release>", "NixOS release", DEFAULT_NIXOS_RELEASE)
    .option("--arch <architecture>", "x86_64 or aarch64", "x86_64")
    .option("--region <region>", "AWS region (default: AWS_REGION / the profile's)")
    .option("--endpoint <url>", "EC2 endpoint (default: AWS, or AWS_ENDPOINT_URL_EC2)")
    .option("--timeout <seconds>", "give up when EC2 has not answered within this time", "60")
    .option("--json", "print the image as JSON")
    .action(async (flags: { release: string; arch: string; region?: string; endpoint?: string; timeout: string; json?: boolean }) => {
      let architecture;
      try {
        validateRelease(flags.release);
        architecture = parseArchitecture(flags.arch);
      } catch (err) {
        throw new UsageError((err as Error).message);
      }
      const badEndpoint = flags.endpoint === undefined ? undefined : endpointProblem(flags.endpoint);
      if (badEndpoint !== undefined) throw new UsageError(`--endpoint ${badEndpoint}`);
      const timeout = secondsFlag("--timeout", flags.timeout, { above0: true });
      // loaded here: the AWS SDK takes a fifth of a second, which no other command should pay
      const { findLatestNixosAmi } = await import("../../aws/ami-lookup.js");
      const ami = await findLatestNixosAmi({
        release: flags.release, architecture, region: flags.region, endpoint: flags.endpoint, timeoutMs: timeout * 1000,
      });
      output.stdout.write(flags.json ? `${JSON.stringify(ami)}\n` : `${ami.imageId}\t${ami.name}\t${ami.creationDate}\n`);
    });
}
