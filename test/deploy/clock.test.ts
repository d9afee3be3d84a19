import { execFileSync } from "node:child_process";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const CLOCK = join(__dirname, "..", "..", "src", "deploy", "clock.ts");

/** Runs a script in a fresh Node process (tsx) and returns what it printed before the process ended by itself. */
function runAlone(script: string): string {
  return execFileSync(process.execPath, ["--import", "tsx", "-e", `const { SYSTEM_CLOCK, sleep, withDeadline } = require(${JSON.stringify(CLOCK)});\n${script}`], { encoding: "utf8" });
}

describe("the system clock", () => {
  it("keeps the process alive through a wait (a poll between two reads of a host, with nothing else running)", () => {
    // before: the wait's timer did not hold the process, which ended with exit code 0 and no report in the middle of an activation
    expect(runAlone(`sleep(SYSTEM_CLOCK, 200).then(() => console.log("woke"));`)).toBe("woke\n");
  });

  it("does not keep the process alive for a deadline whose work is done", () => {
    const started = Date.now();
    expect(runAlone(`withDeadline(SYSTEM_CLOCK, Promise.resolve("done"), 60000).then((v) => console.log(v));`)).toBe("done\n");
    // the 60 s deadline did not hold the process (a bound, not a measurement: this is no benchmark)
    expect(Date.now() - started).toBeLessThan(30_000);
  });
});
