import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync, existsSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { removeStaleArgsDirs } from "../../src/cli/stale-args";

describe("removeStaleArgsDirs", () => {
  const dir = mkdtempSync(join(tmpdir(), "stale-args-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it("removes what killed runs of earlier versions left, an hour old or more, and nothing else", async () => {
    const make = (name: string, ageMs: number) => {
      mkdirSync(join(dir, name));
      writeFileSync(join(dir, name, "args.json"), '{"password":"hunter2"}');
      const when = new Date(Date.now() - ageMs);
      utimesSync(join(dir, name), when, when);
    };
    make("cdktf-nixos-args-old123", 2 * 3600_000);
    make("cdktf-nixos-args-new456", 60_000);
    make("unrelated-dir", 5 * 3600_000);
    expect(await removeStaleArgsDirs(dir)).toEqual([join(dir, "cdktf-nixos-args-old123")]);
    expect(existsSync(join(dir, "cdktf-nixos-args-new456"))).toBe(true);
    expect(existsSync(join(dir, "unrelated-dir"))).toBe(true);
  });
});
