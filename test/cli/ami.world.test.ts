import { spawnSync } from "node:child_process";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/cli/program";
import { cdktfNixos } from "../harness/cli";
import { NEWEST_2505_AARCH64, NEWEST_2505_X86_64, NIXOS_IMAGES } from "../harness/ec2-double/nixos-images";
import { startEc2Double, type Ec2Double } from "../harness/ec2-double/server";

/** `cdktf-nixos ami` through @aws-sdk/client-ec2 against the EC2 double. */
describe("cdktf-nixos ami", () => {
  let ec2: Ec2Double;
  beforeAll(async () => {
    spawnSync("npm", ["run", "--silent", "build"], { cwd: join(__dirname, "..", ".."), stdio: "inherit" });
    ec2 = await startEc2Double({ images: NIXOS_IMAGES });
  });
  afterAll(() => ec2?.close());

  const ami = (args: string[], env: Record<string, string> = {}) =>
    cdktfNixos(["ami", ...args], { AWS_ACCESS_KEY_ID: "test", AWS_SECRET_ACCESS_KEY: "test", ...env });

  it("prints the newest image of the release and architecture", async () => {
    const x86 = await ami(["--release", "25.05", "--region", "eu-central-1", "--endpoint", ec2.endpoint, "--json"]);
    expect(x86.code, x86.stderr).toBe(0);
    expect(JSON.parse(x86.stdout)).toEqual({
      imageId: NEWEST_2505_X86_64,
      name: "nixos/25.05.999.cccccccccccc-x86_64-linux",
      creationDate: "2025-09-30T10:00:00.000Z",
      architecture: "x86_64",
      region: "eu-central-1",
    });
    const arm = await ami(["--arch", "aarch64", "--region", "eu-central-1"], { AWS_ENDPOINT_URL_EC2: ec2.endpoint });
    expect(arm.stdout.split("\t")[0]).toBe(NEWEST_2505_AARCH64);
  });

  it("says which release, architecture and region had no image", async () => {
    const none = await ami(["--release", "23.05", "--region", "us-west-2", "--endpoint", ec2.endpoint]);
    expect(none.code).toBe(EXIT_CODES.failure);
    expect(none.stderr).toContain("no NixOS 23.05 AMI for x86_64 in us-west-2 (owner 427812963091, name nixos/23.05.*-x86_64-linux)");
  });

  it("rejects a malformed release or architecture before calling AWS", async () => {
    const calls = ec2.model.calls.length;
    const bad = await ami(["--release", "latest", "--endpoint", ec2.endpoint]);
    expect(bad.code).toBe(EXIT_CODES.usage);
    expect(bad.stderr).toContain(`release must be a NixOS release such as "25.05" (YY.05 or YY.11), got "latest"`);
    expect((await ami(["--arch", "sparc", "--endpoint", ec2.endpoint])).stderr).toContain(`unknown architecture "sparc": use x86_64 or aarch64`);
    expect(ec2.model.calls.length).toBe(calls);
  });
});
