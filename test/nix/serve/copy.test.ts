import { describe, expect, it } from "vitest";
import { planCopy } from "../../../src/nix/serve/copy";
import { dependencyOrder } from "../../../src/nix/local-store";
import type { PathInfo } from "../../../src/nix/store-source";

const info = (path: string, references: string[], narSize = 10): PathInfo => ({
  path, references, narSize, narHash: "sha256:x", registrationTime: 0, ultimate: false, sigs: [],
});

describe("dependencyOrder", () => {
  it("puts every path after the paths it references, ignoring self-references", () => {
    const top = info("/nix/store/3-top", ["/nix/store/2-lib", "/nix/store/1-libc", "/nix/store/3-top"]);
    const lib = info("/nix/store/2-lib", ["/nix/store/1-libc"]);
    const libc = info("/nix/store/1-libc", ["/nix/store/1-libc"]);
    expect(dependencyOrder([top, lib, libc]).map((i) => i.path)).toEqual(["/nix/store/1-libc", "/nix/store/2-lib", "/nix/store/3-top"]);
  });

  it("refuses a reference cycle", () => {
    expect(() => dependencyOrder([info("/nix/store/a", ["/nix/store/b"]), info("/nix/store/b", ["/nix/store/a"])])).toThrow(
      "reference cycle through /nix/store/a",
    );
  });
});

describe("planCopy", () => {
  it("sends only what the target lacks, in closure order, and counts the bytes", () => {
    const closure = [info("/nix/store/a", [], 5), info("/nix/store/b", ["/nix/store/a"], 7), info("/nix/store/c", ["/nix/store/b"], 11)];
    const plan = planCopy(closure, new Set(["/nix/store/b"]));
    expect(plan.send.map((i) => i.path)).toEqual(["/nix/store/a", "/nix/store/c"]);
    expect(plan).toMatchObject({ pathsInClosure: 3, pathsAlreadyValid: 1, bytesToSend: 16 });
  });
});
