import { describe, expect, it } from "vitest";
import { advanceBuildProgress, NO_BUILD_PROGRESS } from "../src/nix/build-log";
import { redactor } from "../src/redact";

describe("redactor", () => {
  it("replaces every string of a sensitive value, as it stands and as Nix or JSON quote it, longest first", () => {
    const redact = redactor({ "nixosArgs.db": { password: 'pa"ss${x}\\word', user: "app-user" }, "nixosArgs.token": "tok-123", "nixosArgs.port": 5432 });
    const nixError = `error: value is a string while a set was expected: "pa\\"ss\\\${x}\\\\word"\n  at app-user and tok-123 on 5432`;
    expect(redact(nixError)).toBe(
      "error: value is a string while a set was expected: \"«sensitive nixosArgs.db»\"\n  at «sensitive nixosArgs.db» and «sensitive nixosArgs.token» on «sensitive nixosArgs.port»",
    );
    expect(redact(JSON.stringify({ v: 'pa"ss${x}\\word' }))).toBe('{"v":"«sensitive nixosArgs.db»"}');
  });

  it("leaves short values alone and text without secrets unchanged", () => {
    expect(redactor({ a: "on", b: 1 })("on 1 of them")).toBe("on 1 of them");
    expect(redactor({})("anything")).toBe("anything");
  });
});

describe("Nix's build log as progress", () => {
  it("counts announced and started derivations and names the current one", () => {
    const lines = [
      "these 2 derivations will be built:",
      "  /nix/store/0000000000000000000000000000000a-etc.drv",
      "building '/nix/store/0000000000000000000000000000000a-etc.drv'...",
      "some builder output",
      "building '/nix/store/0000000000000000000000000000000b-nixos-system-web-25.05.drv'...",
    ];
    const seen = [];
    let progress = NO_BUILD_PROGRESS;
    for (const line of lines) {
      const next = advanceBuildProgress(progress, line);
      if (next !== undefined) seen.push((progress = next));
    }
    expect(seen).toEqual([
      { total: 2, started: 0 },
      { total: 2, started: 1, current: "etc" },
      { total: 2, started: 2, current: "nixos-system-web-25.05" },
    ]);
    expect(advanceBuildProgress(NO_BUILD_PROGRESS, "this derivation will be built:")).toEqual({ total: 1, started: 0 });
  });
});
