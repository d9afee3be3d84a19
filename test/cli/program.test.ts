import { describe, expect, it } from "vitest";
import { isInteractive, main } from "../../src/cli/program";
import { capturedOutput } from "../harness/cli";

describe("help on a pipe", () => {
  it.each(["deploy", "push", "vm", "test", "ami", "forget-host-keys"])("cdktf-nixos %s --help fits in 100 columns and names its arguments as users write them", async (command) => {
    const io = capturedOutput();
    const code = await main(["node", "cdktf-nixos", command, "--help"], { output: io.output });
    expect(code).toBe(0);
    const lines = io.stdout().split("\n");
    expect(lines.filter((line) => line.length > 100)).toEqual([]);
    expect(io.stdout()).not.toMatch(/\bnames\.\.\./);
  });

  it("marks --script of test as required", async () => {
    const io = capturedOutput();
    await main(["node", "cdktf-nixos", "test", "--help"], { output: io.output });
    expect(io.stdout()).toMatch(/--script <file> +required: the test script/);
  });
});

describe("live lines", () => {
  it("only on a terminal that can move the cursor", () => {
    expect(isInteractive(true, { TERM: "xterm-256color" })).toBe(true);
    expect(isInteractive(true, { TERM: "dumb" })).toBe(false);
    expect(isInteractive(false, { TERM: "xterm-256color" })).toBe(false);
  });
});
