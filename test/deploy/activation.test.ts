import { describe, expect, it } from "vitest";
import {
  activationCommands,
  confirmedActivationScript,
  planActivation,
  startConfirmedActivationCommand,
  rollbackCommands,
  switchCommand,
} from "../../src/deploy/activation";
import { parseGeneration, parseInspection } from "../../src/deploy/inspection";
import { shellQuote } from "../../src/shell";

const top = "/nix/store/abc-nixos-system-web-25.05";
const root = { sudo: false, systemd: false };

describe("activation commands", () => {
  it("sets the profile then switches, for switch and boot", () => {
    expect(activationCommands(top, "switch", root)).toEqual([
      `nix-env -p /nix/var/nix/profiles/system --set ${top}`,
      `env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration switch`,
    ]);
    expect(activationCommands(top, "boot", root)[0]).toBe(`nix-env -p /nix/var/nix/profiles/system --set ${top}`);
  });

  it("leaves the profile alone for test and dry-activate", () => {
    expect(activationCommands(top, "test", root)).toEqual([
      `env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration test`,
    ]);
    expect(activationCommands(top, "dry-activate", root)).toHaveLength(1);
  });

  it("runs in a transient unit like nixos-rebuild where systemd runs, through sudo for other users", () => {
    expect(switchCommand(top, "switch", { sudo: true, systemd: true, installBootloader: true })).toBe(
      "sudo -n -- systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER=1 --collect --no-ask-password --pipe " +
        "--quiet --same-dir --service-type=exec --unit=nixos-rebuild-switch-to-configuration --wait " +
        `${top}/bin/switch-to-configuration switch`,
    );
  });

  it("quotes what the shell would split", () => {
    expect(shellQuote("/nix/store/x y")).toBe("'/nix/store/x y'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(switchCommand("/nix/store/a b", "test", root)).toContain("'/nix/store/a b/bin/switch-to-configuration'");
  });
});

describe("rollback commands", () => {
  const before = {
    system: "x86_64-linux", nix: true, nixos: true, systemd: false,
    currentSystem: "/nix/store/old", profileGeneration: 4, profileSystem: "/nix/store/old",
  };

  it("puts the profile back on the previous generation and reactivates the running system", () => {
    expect(rollbackCommands("switch", before, root)).toEqual([
      "nix-env -p /nix/var/nix/profiles/system --switch-generation 4",
      "env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 /nix/store/old/bin/switch-to-configuration switch",
    ]);
  });

  it("reactivates the running system for test, and has nothing to do on a fresh host", () => {
    expect(rollbackCommands("test", before, root)).toEqual([
      "env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 /nix/store/old/bin/switch-to-configuration test",
    ]);
    expect(rollbackCommands("switch", { system: "x86_64-linux", nix: true, nixos: true, systemd: false }, root)).toEqual([]);
    expect(rollbackCommands("dry-activate", before, root)).toEqual([]);
  });
});

describe("target inspection", () => {
  it("reads generations from profile links", () => {
    expect(parseGeneration("system-12-link")).toBe(12);
    expect(parseGeneration("/nix/var/nix/profiles/system-3-link")).toBe(3);
    expect(parseGeneration("")).toBeUndefined();
  });

  it("parses what the inspect command prints", () => {
    expect(parseInspection(
      "machine=aarch64\nnix=1\nnixos=1\nsystemd=1\ncurrent=/nix/store/cur\nprofile=system-7-link profileSystem=/nix/store/prof\n",
    )).toEqual({
      system: "aarch64-linux", nix: true, nixos: true, systemd: true,
      currentSystem: "/nix/store/cur", profileGeneration: 7, profileSystem: "/nix/store/prof",
    });
    expect(parseInspection("machine=x86_64\nnix=1\nnixos=0\nsystemd=0\n")).toEqual({
      system: "x86_64-linux", nix: true, nixos: false, systemd: false,
      currentSystem: undefined, profileGeneration: undefined, profileSystem: undefined,
    });
  });
});

describe("confirmed activation", () => {
  const before = {
    system: "x86_64-linux", nix: true, nixos: true, systemd: false,
    currentSystem: "/nix/store/old", profileGeneration: 4, profileSystem: "/nix/store/old",
  };

  it("activates, waits for the confirmation, and rolls back without it", () => {
    expect(confirmedActivationScript("abc", top, "switch", before, { sudo: true, systemd: false }, 30)).toBe([
      "mkdir -p /run/cdktf-nixos",
      "exec >/run/cdktf-nixos/abc.log 2>&1 </dev/null",
      `{ nix-env -p /nix/var/nix/profiles/system --set ${top} && env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration switch; }; echo $? >/run/cdktf-nixos/abc.status`,
      `[ "$(cat /run/cdktf-nixos/abc.status)" = 0 ] || exit 0`,
      "i=0; while [ $i -lt 30 ] && [ ! -e /run/cdktf-nixos/abc.confirmed ]; do sleep 1; i=$((i+1)); done",
      "[ -e /run/cdktf-nixos/abc.confirmed ] && exit 0",
      `echo "no confirmation within 30 s: rolling back"`,
      "{ nix-env -p /nix/var/nix/profiles/system --switch-generation 4 && env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 /nix/store/old/bin/switch-to-configuration switch; }; echo $? >/run/cdktf-nixos/abc.rolled-back",
    ].join("\n"));
  });

  it("is started detached, through sudo for other users", () => {
    expect(startConfirmedActivationCommand("echo hi", { sudo: true, systemd: false })).toBe(
      "sudo -n -- setsid sh -c 'echo hi' </dev/null >/dev/null 2>&1 &",
    );
  });
});

describe("planActivation", () => {
  const before = {
    system: "x86_64-linux", nix: true, nixos: true, systemd: false,
    currentSystem: "/nix/store/old", profileGeneration: 4, profileSystem: "/nix/store/old-boot",
  };
  const plain = (action: "switch" | "boot" | "test" | "dry-activate", user = "root") =>
    planActivation({ before, toplevel: top, action, user, id: "abc" });

  it("plans switch as profile then switch-to-configuration, and a rollback to the running system", () => {
    expect(plain("switch")).toEqual({
      action: "switch",
      toplevel: top,
      steps: [
        `nix-env -p /nix/var/nix/profiles/system --set ${top}`,
        `env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration switch`,
      ],
      rollbackTo: "/nix/store/old",
      rollback: [
        "nix-env -p /nix/var/nix/profiles/system --switch-generation 4",
        "env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 /nix/store/old/bin/switch-to-configuration switch",
      ],
    });
  });

  it("rolls boot back to the boot default, not the running system", () => {
    expect(plain("boot").rollbackTo).toBe("/nix/store/old-boot");
    expect(plain("boot").rollback.at(-1)).toBe(
      "env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 /nix/store/old-boot/bin/switch-to-configuration boot",
    );
  });

  it("has nothing to roll back for dry-activate", () => {
    expect(plain("dry-activate")).toMatchObject({ rollback: [], rollbackTo: undefined });
  });

  it("uses sudo for any user but root, in steps and rollback alike", () => {
    const plan = plain("test", "deploy");
    expect(plan.steps).toEqual([
      `sudo -n -- env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration test`,
    ]);
    expect(plan.rollback.every((c) => c.startsWith("sudo -n -- "))).toBe(true);
  });

  it("plans the confirm protocol for switch and test only", () => {
    const plan = planActivation({ before, toplevel: top, action: "switch", user: "deploy", confirmTimeoutSeconds: 30, id: "abc" });
    expect(plan.steps).toEqual([]);
    expect(plan.confirm).toEqual({
      timeoutSeconds: 30,
      start: startConfirmedActivationCommand(
        confirmedActivationScript("abc", top, "switch", before, { sudo: true, systemd: false }, 30),
        { sudo: true, systemd: false },
      ),
      readStatus: "cat /run/cdktf-nixos/abc.status 2>/dev/null || true",
      readLog: "cat /run/cdktf-nixos/abc.log",
      confirm: "sudo -n -- touch /run/cdktf-nixos/abc.confirmed && ! test -e /run/cdktf-nixos/abc.rolled-back && cat /run/cdktf-nixos/abc.status",
    });
    expect(planActivation({ before, toplevel: top, action: "boot", user: "root", confirmTimeoutSeconds: 30, id: "abc" }).confirm)
      .toBeUndefined();
    expect(planActivation({ before, toplevel: top, action: "switch", user: "root", confirmTimeoutSeconds: 0, id: "abc" }).confirm)
      .toBeUndefined();
  });

  it("runs switch-to-configuration in systemd's transient unit where systemd is PID 1", () => {
    const plan = planActivation({ before: { ...before, systemd: true }, toplevel: top, action: "switch", user: "root", installBootloader: true, id: "abc" });
    expect(plan.steps[1]).toBe(
      "systemd-run -E LOCALE_ARCHIVE -E NIXOS_INSTALL_BOOTLOADER=1 --collect --no-ask-password --pipe --quiet --same-dir " +
        `--service-type=exec --unit=nixos-rebuild-switch-to-configuration --wait ${top}/bin/switch-to-configuration switch`,
    );
  });
});
