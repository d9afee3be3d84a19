import { describe, expect, it } from "vitest";
import { NO_WAVES, byName, inWaves, parseBatchSize, parseHostCount, planWaves, waveCapacity, type WaveOptions } from "../../src/fleet/waves";

const hosts = ["web-10", "web-2", "db", "web-1", "cache", "app"];
const options = (o: Partial<WaveOptions>): WaveOptions => ({ ...NO_WAVES, ...o });

describe("wave planning", () => {
  it.each([
    ["no waves: all at once", options({}), [["app", "cache", "db", "web-1", "web-2", "web-10"]]],
    ["a canary, then the rest", options({ canary: 1 }), [["app"], ["cache", "db", "web-1", "web-2", "web-10"]]],
    ["--canary 1 --batch-size 2", options({ canary: 1, batchSize: { count: 2 } }), [["app"], ["cache", "db"], ["web-1", "web-2"], ["web-10"]]],
    ["--batch-size 50% of 6: 3 per wave", options({ batchSize: { percent: 50 } }), [["app", "cache", "db"], ["web-1", "web-2", "web-10"]]],
    ["--batch-size 10% rounds up to 1", options({ batchSize: { percent: 10 } }), hosts.map((h) => [h]).sort((a, b) => byName(a[0]!, b[0]!))],
    ["a canary larger than the fleet", options({ canary: 9, batchSize: { count: 2 } }), [["app", "cache", "db", "web-1", "web-2", "web-10"]]],
  ])("%s", (_name, o, expected) => {
    expect(planWaves(hosts, hosts.length, o)).toEqual(expected);
  });

  it("skips hosts up to date without giving their place away: percentages are of every host the push may change", () => {
    // 4 of 6 need a change; 50% of 6 is still 3 per wave
    expect(planWaves(["web-1", "web-2", "db", "app"], 6, options({ batchSize: { percent: 50 } }))).toEqual([["app", "db", "web-1"], ["web-2"]]);
    expect(planWaves([], 6, options({ canary: 1 }))).toEqual([]);
  });

  it("gives each wave its capacity; only a canary or a batch size makes a rollout in waves", () => {
    const o = options({ canary: 1, batchSize: { count: 2 } });
    expect([1, 2, 3].map((w) => waveCapacity(w, 6, o))).toEqual([1, 2, 2]);
    expect(waveCapacity(1, 6, NO_WAVES)).toBe(Number.POSITIVE_INFINITY);
    expect([inWaves(NO_WAVES), inWaves(options({ maxFailures: 3 })), inWaves(o), inWaves(options({ canary: 1 }))]).toEqual([false, false, true, true]);
  });

  it.each([
    ["2", { count: 2 }], ["25%", { percent: 25 }], ["100%", { percent: 100 }],
  ])("reads --batch-size %s", (text, expected) => expect(parseBatchSize(text)).toEqual(expected));

  it.each(["0", "0%", "101%", "-1", "two", "1.5", "50 %", ""])("refuses --batch-size '%s' with one message", (text) => {
    expect(() => parseBatchSize(text)).toThrow(`--batch-size '${text}' is not a number of hosts (at least 1) or a percentage from 1% to 100%`);
  });

  it("reads --canary and --max-failures as whole numbers from 0", () => {
    expect([parseHostCount("--canary", "0"), parseHostCount("--max-failures", "3")]).toEqual([0, 3]);
    expect(() => parseHostCount("--canary", "-1")).toThrow("--canary '-1' is not a whole number of hosts from 0");
  });
});
