import { describe, expect, it } from "vitest";
import { backoffDelayMs } from "../../../src/deploy/ssh/connection";

describe("backoffDelayMs", () => {
  it("doubles from half a second up to eight", () => {
    expect([0, 1, 2, 3, 4, 5, 10].map(backoffDelayMs)).toEqual([500, 1000, 2000, 4000, 8000, 8000, 8000]);
  });
});
