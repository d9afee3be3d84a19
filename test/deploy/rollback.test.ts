import { describe, expect, it } from "vitest";
import { chooseRollback, parseGenerations } from "../../src/deploy/rollback";

const sys = (c: string) => `/nix/store/${c.repeat(32)}-nixos-system-web`;

describe("choosing the generation a rollback goes to", () => {
  const generations = parseGenerations([`3 ${sys("c")}`, `5 ${sys("e")}`, `4 ${sys("d")}`, "junk", `6 /etc/passwd`].join("\n"));

  it("reads the profile's generations in order, and nothing that is not one", () => {
    expect(generations.map((g) => g.number)).toEqual([3, 4, 5]);
  });

  it.each([
    [5, {}, { ok: true, generation: { number: 4, system: sys("d") } }],
    [5, { to: 3 }, { ok: true, generation: { number: 3, system: sys("c") } }],
    [3, {}, { ok: false, reason: "there is no generation before the current one (3) of /nix/var/nix/profiles/system (it has 3, 4, 5)" }],
    [5, { to: 9 }, { ok: false, reason: "there is no generation 9 of /nix/var/nix/profiles/system (it has 3, 4, 5)" }],
    [undefined, {}, { ok: false, reason: "/nix/var/nix/profiles/system points at no generation" }],
    [5, { to: 4, system: sys("c") }, { ok: false, reason: `generation 4 holds ${sys("d")}, not ${sys("c")} (the profile changed since)` }],
  ] as const)("current %s, %j", (current, options, expected) => {
    expect(chooseRollback(generations, current, options)).toEqual(expected);
  });
});
