import { describe, expect, it } from "vitest";
import { isNixErrorLine, nixError, stripAnsi } from "../../src/nix/nix-errors";

describe("Nix's errors, read in one place", () => {
  const evaluation = [
    "building '/nix/store/x.drv'...",
    "\x1b[31;1merror:\x1b[0m undefined variable 'pkgs'",
    "",
    "       at /work/app/nixos/web.nix:3:5:",
    "error: while evaluating the attribute 'config'",
  ].join("\n");

  it("takes the first error with where it points, or the last one", () => {
    expect(nixError(evaluation)).toEqual({ reason: "undefined variable 'pkgs'", location: "/work/app/nixos/web.nix:3:5" });
    expect(nixError(evaluation, "last")).toEqual({ reason: "while evaluating the attribute 'config'", location: undefined });
    expect(nixError("copying path...\nconnection closed\n", "last")).toEqual({ reason: "connection closed" });
    expect(nixError("copying path...\n")).toEqual({});
  });

  it("knows an error line in colour, and strips colours and cursor movement", () => {
    expect(isNixErrorLine("\x1b[31;1merror:\x1b[0m path is not valid")).toBe(true);
    expect(isNixErrorLine("warning: error: in a warning")).toBe(false);
    expect(stripAnsi("\x1b[2K\x1b[1G⠋ synth\x1b[0m")).toBe("⠋ synth");
  });
});
