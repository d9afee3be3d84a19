import { describe, expect, it } from "vitest";
import { explainAwsError } from "../../src/aws/ec2-client";
import { endpointProblem } from "../../src/aws/endpoint";
import { validateRelease } from "../../src/aws/nixos-ami-names";
import { buildHint } from "../../src/nix/build";

describe("what stops an EC2 call, in one sentence with the fix", () => {
  const location = { endpoint: "http://127.0.0.1:9" };
  it.each<[Error & { code?: string }, string]>([
    [new Error("Region is missing"), "DescribeImages needs an AWS region: pass --region (e.g. --region eu-central-1) or set AWS_REGION"],
    [Object.assign(new Error("Could not load credentials from any providers"), { name: "CredentialsProviderError" }),
      "DescribeImages needs AWS credentials and found none: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or AWS_PROFILE (after aws sso login for an SSO profile)"],
    [Object.assign(new Error("getaddrinfo ENOTFOUND ec2.example"), { code: "ENOTFOUND" }),
      "DescribeImages could not reach http://127.0.0.1:9 (ENOTFOUND): check the network and any proxy, and the endpoint URL"],
  ])("%s", (err, message) => {
    expect(explainAwsError(err, "DescribeImages", location).message).toBe(message);
  });

  it("passes EC2's own errors through", () => {
    const denied = Object.assign(new Error("You are not authorized to perform this operation."), { name: "UnauthorizedOperation" });
    expect(explainAwsError(denied, "DescribeImages", location)).toBe(denied);
  });

  it("refuses an endpoint that is no http(s) URL", () => {
    expect(endpointProblem("http://127.0.0.1:4566")).toBeUndefined();
    expect(endpointProblem("localhost:4566")).toBe("'localhost:4566' is not an http(s) URL; give one such as https://ec2.eu-central-1.amazonaws.com or http://127.0.0.1:4566");
    expect(endpointProblem("not a url")).toBe("'not a url' is not a URL; give one such as https://ec2.eu-central-1.amazonaws.com or http://127.0.0.1:4566");
  });
});

describe("NixOS releases", () => {
  it("knows early releases were releases without AMIs, and refuses what is no release", () => {
    expect(() => validateRelease("25.05")).not.toThrow();
    expect(() => validateRelease("19.03")).toThrow(`NixOS 19.03 was a release, but it has no official AMI any more (they are deleted 90 days after upload); use a supported release such as "25.05"`);
    expect(() => validateRelease("19.05")).toThrow(`release must be a NixOS release such as "25.05" (YY.05 or YY.11), got "19.05"`);
    expect(() => validateRelease("latest")).toThrow(`release must be a NixOS release such as "25.05" (YY.05 or YY.11), got "latest"`);
  });
});

describe("build hints", () => {
  it("points a system of another architecture at --build-on-target", () => {
    const stderr = "error: a 'aarch64-linux' with features {} is required to build '/nix/store/0000000000000000000000000000000a-x.drv', " +
      "but I am a 'x86_64-linux' with features {benchmark, big-parallel, nixos-test}\n";
    expect(buildHint(stderr)).toBe("the system is for aarch64-linux and this machine is x86_64-linux: build it on the host with --build-on-target " +
      "(buildOnTarget), or give Nix a remote builder or emulation for it");
    expect(buildHint("error: builder for '/nix/store/x.drv' failed with exit code 1")).toBeUndefined();
  });

  it("says that a number given where text is used was JSON", () => {
    expect(buildHint("error: cannot coerce an integer to a string\n\n       at /p/web.nix:2:40:\n")).toBe(
      "a value used as text is an integer: module argument values that are JSON stay JSON (--arg port=5 is the number 5); " +
      "give text as a JSON string (--arg name='\"5\"', or \"5\" in nixosArgs)");
  });

  it("points a module argument the configuration lacks at nixosArgs", () => {
    expect(buildHint("error: Module argument `dbAddress' is not available: pass it in specialArgs or set _module.args.dbAddress.\n")).toBe(
      "the configuration takes a module argument dbAddress: give it in the deployment's nixosArgs (vm and test: --arg dbAddress=VALUE)");
  });

  it("says what Nix's evaluation errors mean for a deployment: recursion, the search path", () => {
    expect(buildHint("error: infinite recursion encountered\n\n       at /p/nixos/web.nix:3:3:\n")).toBe(
      "a value of the configuration is defined from itself (often an option set from its own config value); " +
      "Nix's trace names the file and line: run again with --show-trace (cdktf synth: CDKTF_NIXOS_SHOW_TRACE=1)");
    expect(buildHint("warning: Nix search path entry '/nonexistent' does not exist, ignoring\n" +
      "error: file 'nixpkgs/nixos' was not found in the Nix search path (add it using $NIX_PATH or -I)\n"))
      .toBe("the Nix search path entry /nonexistent does not exist: fix the nixPath (or -I, NIX_PATH) that names it");
    expect(buildHint("error: file 'nixpkgs/nixos' was not found in the Nix search path (add it using $NIX_PATH or -I)\n")).toBe(
      'nothing named nixpkgs is on the Nix search path: give it with the deployment\'s nixPath ({ nixpkgs: "/path/to/nixpkgs" }), -I nixpkgs=PATH, or NIX_PATH');
  });
});
