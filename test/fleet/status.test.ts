import { describe, expect, it } from "vitest";
import { activationOutcome, classifyHost, parseLastActivation, parseStatusOutput, statusExitCode, STATUS_EXIT_CODES } from "../../src/fleet/status";

const A = "/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-nixos-system-web-a";
const B = "/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-nixos-system-web-b";

describe("status classification", () => {
  it.each([
    ["switch", A, A, "up-to-date"],
    // the boot default is the declared system, not yet running: a reboot (or a switch) is pending
    ["switch", B, A, "pending"],
    ["switch", A, B, "drifted"],
    ["switch", B, B, "drifted"],
    // a boot deployment is up to date once the host boots the declared system
    ["boot", B, A, "up-to-date"],
    ["boot", A, B, "drifted"],
    ["test", A, B, "up-to-date"],
    ["test", B, A, "pending"],
    ["dry-activate", A, A, "up-to-date"],
    ["dry-activate", B, B, "drifted"],
  ] as const)("%s: running %s, booting %s", (action, running, boot, state) => {
    expect(classifyHost(action, A, { currentSystem: running, profileSystem: boot })).toBe(state);
  });

  it("says drifted for a host with no system at all", () => {
    expect(classifyHost("switch", A, { currentSystem: undefined, profileSystem: undefined })).toBe("drifted");
  });

  it.each([
    [["up-to-date", "up-to-date"], STATUS_EXIT_CODES.upToDate],
    [["up-to-date", "drifted"], STATUS_EXIT_CODES.notUpToDate],
    [["pending", "not-created"], STATUS_EXIT_CODES.notUpToDate],
    [["drifted", "unreachable"], STATUS_EXIT_CODES.unreachable],
  ] as const)("%j exits %d", (states, code) => {
    expect(statusExitCode(states.map((state) => ({ state })))).toBe(code);
  });

  it("reads the status command's output: inspection, failed units and the last activation", () => {
    const output = [
      "machine=x86_64", "boot=0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0-12", "nix=1", "nixos=1", "systemd=1", `current=${A}`,
      `profile=system-7-link profileSystem=${A}`, "--cdktf-nixos-status--", "failed web.service x;rm.service ",
      `last at=2026-12-06T12:00:00Z id=0a1b2c3d4e5f action=switch system=${A} status=0 rolledBack=no by=laptop pid 4242`,
    ].join("\n");
    expect(parseStatusOutput(output)).toEqual({
      target: expect.objectContaining({ currentSystem: A, profileSystem: A, profileGeneration: 7, systemd: true }),
      failedUnits: ["web.service"],
      lastActivation: { at: "2026-12-06T12:00:00Z", action: "switch", system: A, outcome: "activated", by: "laptop pid 4242" },
    });
    expect(parseStatusOutput(`current=${A}\n--cdktf-nixos-status--\nfailed \nlast \n`).lastActivation).toBeUndefined();
  });

  it.each([
    ["0", "no", "activated"],
    ["0", "0", "activated, then rolled back (not confirmed, or a health check failed)"],
    ["4", "0", "failed (exit 4), then rolled back"],
    ["1", "2", "failed (exit 1), and its rollback failed (exit 2)"],
    ["1", "nothing", "failed (exit 1), nothing to roll back to"],
    ["locked", "no", "gave up waiting for the lock"],
    ["up-to-date", "no", "up to date (nothing done)"],
    ["none", "no", "did not finish (killed, or the host stopped)"],
  ])("status %s, rolled back %s: %s", (status, rolledBack, words) => {
    expect(activationOutcome(status, rolledBack)).toBe(words);
  });

  it("ignores a record no activation wrote", () => {
    expect(parseLastActivation("at=now; rm -rf /")).toBeUndefined();
  });
});
