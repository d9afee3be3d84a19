import { describe, expect, it } from "vitest";
import { describeChange, diffClosures, packageOf } from "../../src/nix/closure-diff";

const p = (name: string) => `/nix/store/${"a".repeat(32)}-${name}`;
const q = (name: string) => `/nix/store/${"b".repeat(32)}-${name}`;

describe("packageOf", () => {
  it("splits name and version at the first dash not followed by a letter, as Nix's DrvName does", () => {
    expect(packageOf(p("hello-2.12.1"))).toEqual({ name: "hello", version: "2.12.1" });
    expect(packageOf(p("nixos-system-web-25.05.20250101"))).toEqual({ name: "nixos-system-web", version: "25.05.20250101" });
    expect(packageOf(p("etc"))).toEqual({ name: "etc", version: "" });
    expect(packageOf(p("openssl-3.0.13-man"))).toEqual({ name: "openssl", version: "3.0.13" });
    expect(packageOf(p("glibc-2.39-52-bin"))).toEqual({ name: "glibc", version: "2.39-52" });
    expect(packageOf("/tmp/not-a-store-path")).toBeUndefined();
  });
});

describe("diffClosures", () => {
  it("lists added, removed and changed versions by name, and leaves out rebuilds of the same version", () => {
    const before = [p("hello-2.10"), p("tool-1.0"), p("etc"), p("old-thing-3"), p("openssl-3.0.13"), p("openssl-3.0.13-man")];
    const after = [q("hello-2.12"), q("tool-1.0"), q("etc"), q("new-thing-0.1"), q("openssl-3.0.14"), q("openssl-3.0.14-man")];
    const changes = diffClosures(before, after);
    expect(changes).toEqual([
      { name: "hello", before: ["2.10"], after: ["2.12"] },
      { name: "new-thing", before: [], after: ["0.1"] },
      { name: "old-thing", before: ["3"], after: [] },
      { name: "openssl", before: ["3.0.13"], after: ["3.0.14"] },
    ]);
    expect(changes.map(describeChange)).toEqual(["hello: 2.10 → 2.12", "new-thing: ∅ → 0.1", "old-thing: 3 → ∅", "openssl: 3.0.13 → 3.0.14"]);
  });

  it("shows a package without a version as ε, and a fresh host's whole closure as added", () => {
    expect(diffClosures([], [p("etc"), p("tool-1.0")]).map(describeChange)).toEqual(["etc: ∅ → ε", "tool: ∅ → 1.0"]);
  });
});
