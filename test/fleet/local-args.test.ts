import { describe, expect, it } from "vitest";
import { LocalArgsError, localRedactor, parseArgAssignments, resolveLocalArgs, unknownOverrides, type LocalHost } from "../../src/fleet/local-args";
import { deploymentSpec } from "./deployment-spec";

const web = (input?: LocalHost["input"], nixosArgs: Record<string, unknown> = {
  appAddress: "${aws_instance.app_Instance_CD34.private_ip}",
  greeting: "${var.greeting}",
  port: 8080,
}): LocalHost => ({ name: "web", spec: deploymentSpec("web", { nixosArgs, sensitiveArgs: ["greeting"] }), tags: {}, input });

describe("parseArgAssignments (--arg name=value)", () => {
  it("takes JSON where the value is JSON, the text itself otherwise", () => {
    expect(parseArgAssignments(["port=5432", "debug=true", 'peers=["a","b"]', "appAddress=10.0.0.5", "motd=a=b", "empty="]))
      .toEqual({ port: 5432, debug: true, peers: ["a", "b"], appAddress: "10.0.0.5", motd: "a=b", empty: "" });
  });

  it.each([
    ["appAddress", "--arg 'appAddress' is not NAME=VALUE (e.g. --arg appAddress=10.0.0.5)"],
    ["=5", "--arg '=5' is not NAME=VALUE (e.g. --arg appAddress=10.0.0.5)"],
    ["1port=5", "--arg '1port=5' is not NAME=VALUE (e.g. --arg appAddress=10.0.0.5)"],
  ])("refuses %s", (assignment, message) => {
    expect(() => parseArgAssignments([assignment])).toThrow(new LocalArgsError(message));
  });

  it("refuses the same name twice", () => {
    expect(() => parseArgAssignments(["a=1", "a=2"])).toThrow("--arg a is given twice");
  });

  it("refuses what looks like JSON but is not (a typo is no string), and values nested too deeply", () => {
    // Node's own JSON message in the parentheses differs between Node versions
    expect(() => parseArgAssignments(["dbAddress={bad json"])).toThrow(
      /^--arg dbAddress: "\{bad json" looks like JSON but is not \(Expected property name .*\); to give it as text, quote it as a JSON string: --arg dbAddress='"\{bad json"'$/);
    expect(parseArgAssignments(['dbAddress="{bad json"'])).toEqual({ dbAddress: "{bad json" });
    expect(() => parseArgAssignments([`deep=${"[".repeat(100)}${"]".repeat(100)}`])).toThrow(new LocalArgsError("--arg deep: a value is nested more than 64 levels deep"));
  });
});

describe("resolveLocalArgs", () => {
  it("literal values from the stack, Terraform values from the state, --arg over both", () => {
    const host = web({ nixos_args: { appAddress: "10.0.1.7", greeting: "hi", port: 8080 } });
    expect(resolveLocalArgs(host, {})).toEqual({
      args: { appAddress: "10.0.1.7", greeting: "hi", port: 8080 },
      origins: { appAddress: "state", greeting: "state", port: "stack" },
    });
    expect(resolveLocalArgs(host, { port: 9090, appAddress: "127.0.0.1" })).toEqual({
      args: { appAddress: "127.0.0.1", greeting: "hi", port: 9090 },
      origins: { appAddress: "--arg", greeting: "state", port: "--arg" },
    });
  });

  it("a value the replacement makes literal is the test network's", () => {
    const replaceAddresses = (v: unknown) => (v === "${aws_instance.app_Instance_CD34.private_ip}" ? "app" : v);
    expect(resolveLocalArgs(web({ nixos_args: { greeting: "hi" } }), {}, { replaceAddresses }).origins)
      .toEqual({ appAddress: "test network", greeting: "state", port: "stack" });
  });

  it("names every missing Terraform value in one error, with why and the --arg for each", () => {
    expect(() => resolveLocalArgs(web(), {})).toThrow(new LocalArgsError(
      'web: module arguments appAddress ("${aws_instance.app_Instance_CD34.private_ip}"), greeting ("${var.greeting}") are ' +
      "Terraform values and Terraform has not applied this host yet; give them with --arg appAddress=VALUE --arg greeting=VALUE"));
    expect(() => resolveLocalArgs(web({ nixos_args: { appAddress: "10.0.1.7" } }), {})).toThrow(new LocalArgsError(
      'web: module argument greeting ("${var.greeting}") is a Terraform value and the state has no value for it; give it with --arg greeting=VALUE'));
    expect(() => resolveLocalArgs(web(), { appAddress: "x" }, { stateProblem: "terraform show -json failed: Error: boom" })).toThrow(
      "is a Terraform value and the state could not be read: terraform show -json failed: Error: boom; give it with --arg greeting=VALUE");
  });

  it("refuses --arg names no host has, listing those there are", () => {
    expect(unknownOverrides([web()], { port: 1, prot: 2 })).toBe("--arg prot: no module argument of web has that name (they have: appAddress, greeting, port)");
    expect(unknownOverrides([web()], { port: 1 })).toBeUndefined();
  });

  it("takes the sensitive arguments' resolved values out of messages", () => {
    const host = web();
    const redact = localRedactor([{ host, args: resolveLocalArgs(host, { appAddress: "10.0.0.9", greeting: "s3cret-greeting" }) }]);
    expect(redact('error: "s3cret-greeting" at 10.0.0.9')).toBe('error: "«sensitive nixosArgs.greeting»" at 10.0.0.9');
  });
});
