import { SAFE_DIR_FUNCTION } from "../../src/deploy/safe-dir";
import { describe, expect, it } from "vitest";
import { activationScript, planActivation, setProfileCommand, startActivationCommand, switchCommand } from "../../src/deploy/activation";
import { renderActivationState, type ActivationState, parseActivationState, readStateCommand } from "../../src/deploy/activation-state";
import { parseGeneration, parseInspection } from "../../src/deploy/inspection";
import { shellQuote } from "../../src/shell";

const top = "/nix/store/abc-nixos-system-web-25.05";
const env = "env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin";

describe("activation commands", () => {
  it("sets the profile and switches like nixos-rebuild, with a clean environment", () => {
    expect(setProfileCommand(top)).toBe(`nix-env -p /nix/var/nix/profiles/system --set ${top}`);
    expect(switchCommand(top, "boot", { installBootloader: true })).toBe(
      `${env} NIXOS_INSTALL_BOOTLOADER=1 ${top}/bin/switch-to-configuration boot`,
    );
  });

  it("quotes what the shell would split", () => {
    expect(shellQuote("/nix/store/x y")).toBe("'/nix/store/x y'");
    expect(shellQuote("it's")).toBe(`'it'\\''s'`);
    expect(switchCommand("/nix/store/a b", "test", {})).toContain("'/nix/store/a b/bin/switch-to-configuration'");
  });
});

describe("the activation script", () => {
  const base = { id: "abc", toplevel: top, lockTimeoutSeconds: 300, holder: "laptop pid 42", rollback: true } as const;
  const lockAndState = [
    "set -u",
    `export PATH="$PATH:/run/current-system/sw/bin"`,
    "mkdir -p /run/cdktf-nixos",
    `echo "$$ $(cut -d' ' -f22 /proc/$$/stat)" >/run/cdktf-nixos/abc.pid`,
    "exec >/run/cdktf-nixos/abc.log 2>&1 </dev/null",
    `command -v flock >/dev/null 2>&1 || { echo "flock (util-linux) is missing"; echo missing-tool:flock >/run/cdktf-nixos/abc.status; touch /run/cdktf-nixos/abc.done; exit 0; }`,
    "exec 9>>/run/cdktf-nixos/lock",
    "if ! flock -n 9; then",
    `  { cat /run/cdktf-nixos/lock.holder 2>/dev/null || echo "another deployment"; } | head -n 1 >/run/cdktf-nixos/abc.lock-wait`,
    `  echo "waiting up to 300 s for the deployment lock, held by $(cat /run/cdktf-nixos/abc.lock-wait)"`,
    "  if ! flock -w 300 9; then echo locked >/run/cdktf-nixos/abc.status; touch /run/cdktf-nixos/abc.done; exit 0; fi",
    "fi",
    // what the activation before started lives on after its script: the lock is free only once that has ended too
    "prev_holder=$(head -c 4096 /run/cdktf-nixos/lock.holder 2>/dev/null | head -n 1)",
    `prev_id=$(printf %s "$prev_holder" | sed -n 's/.*, activation \\([0-9a-f]*\\) since .*/\\1/p')`,
    `prev_pgid=$(printf %s "$prev_holder" | sed -n 's/.* pgid=\\([0-9]*\\)$/\\1/p')`,
    `if [ -n "$prev_id" ] && [ -n "$prev_pgid" ] && [ ! -e /run/cdktf-nixos/$prev_id.done ] && kill -0 "-$prev_pgid" 2>/dev/null; then`,
    `  printf '%s\\n' "$(printf %s "$prev_holder" | cut -c1-200): its activation script is gone, what it started still runs" >/run/cdktf-nixos/abc.lock-wait`,
    `  echo "waiting up to 300 s for what the activation before started to end ($prev_holder)"`,
    `  i=0; while kill -0 "-$prev_pgid" 2>/dev/null; do if [ $i -ge 300 ]; then echo locked >/run/cdktf-nixos/abc.status; touch /run/cdktf-nixos/abc.done; exit 0; fi; sleep 1; i=$((i+1)); done`,
    "fi",
    "[ -z \"$prev_id\" ] || [ -e /run/cdktf-nixos/$prev_id.done ] || touch /run/cdktf-nixos/$prev_id.done",
    `echo 'laptop pid 42, activation abc'" since $(date -u +%Y-%m-%dT%H:%M:%SZ) pgid=$$" >/run/cdktf-nixos/lock.holder`,
    // however it ends from here on, what it did is recorded for `status`, through a directory only root can change
    SAFE_DIR_FUNCTION,
    "last() {",
    "  st=$(head -c 64 /run/cdktf-nixos/abc.status 2>/dev/null | head -n 1); rb=$(head -c 64 /run/cdktf-nixos/abc.rolled-back 2>/dev/null | head -n 1)",
    `  safe_dir /var/lib/cdktf-nixos 0755 2>/dev/null && printf '%s\\n' "at=$(date -u +%Y-%m-%dT%H:%M:%SZ) id=abc action=ACTION system=${top} ` +
      `status=\${st:-none} rolledBack=\${rb:-no} by="'laptop pid 42' >/var/lib/cdktf-nixos/last-activation.new && ` +
      "mv -f /var/lib/cdktf-nixos/last-activation.new /var/lib/cdktf-nixos/last-activation",
    "}",
    "trap last EXIT",
    "find /run/cdktf-nixos -mindepth 1 -maxdepth 1 -name '*.*' ! -name 'lock*' -mtime +7 -exec rm -rf {} + 2>/dev/null",
    "record() {",
    "  gen=$(readlink /nix/var/nix/profiles/system 2>/dev/null | sed -n 's/^system-\\([0-9]*\\)-link$/\\1/p')",
    "  current=; [ -e /run/current-system ] && current=$(readlink -f /run/current-system)",
    "  profile_system=; [ -e /nix/var/nix/profiles/system ] && profile_system=$(readlink -f /nix/var/nix/profiles/system)",
    `  echo "profile=system-$gen-link current=$current profileSystem=$profile_system" >"$1"`,
    "}",
    "record /run/cdktf-nixos/abc.started",
  ];

  it("locks, records the state it starts from, activates, rolls back on failure, and waits for the confirmation", () => {
    expect(activationScript({ ...base, action: "switch", confirmTimeoutSeconds: 30 })).toBe([
      ...lockAndState.map((line) => line.replace("action=ACTION", "action=switch")),
      `if [ "$current" = ${top} ] && [ "$profile_system" = ${top} ]; then echo "already up to date: nothing to do"; ` +
        "echo up-to-date >/run/cdktf-nixos/abc.status; touch /run/cdktf-nixos/abc.done; exit 0; fi",
      `prev="\${current:-$profile_system}"`,
      "rollback() {",
      `  if [ -z "$gen$prev" ]; then echo nothing >/run/cdktf-nixos/abc.rolled-back; return; fi`,
      `  echo "rolling back to \${prev:-generation $gen}"`,
      // the profile goes back to the newest generation of the system that runs again, or a new one for it
      '  { { if [ -z "$prev" ]; then nix-env -p /nix/var/nix/profiles/system --switch-generation "$gen"; else rgen=; ' +
        'for l in /nix/var/nix/profiles/system-*-link; do n=${l#/nix/var/nix/profiles/system-}; n=${n%-link}; ' +
        '[ "$(readlink -f "$l")" = "$prev" ] && { [ -z "$rgen" ] || [ "$n" -gt "$rgen" ]; } && rgen=$n; done; ' +
        'if [ -n "$rgen" ]; then nix-env -p /nix/var/nix/profiles/system --switch-generation "$rgen"; else nix-env -p /nix/var/nix/profiles/system --set "$prev"; fi; fi; } && ' +
        `{ [ -z "$prev" ] || ${env} NIXOS_INSTALL_BOOTLOADER=0 "$prev/bin/switch-to-configuration" switch; }; } 9>&-`,
      "  echo $? >/run/cdktf-nixos/abc.rolled-back",
      "}",
      `echo 'switch of ${top}'`,
      `{ nix-env -p /nix/var/nix/profiles/system --set ${top} && ${env} NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration switch; } 9>&-`,
      "rc=$?",
      "(record /run/cdktf-nixos/abc.after)",
      "case $rc in 0) kept=0 ;; *) kept=$rc ;; esac",
      // the window on the host's clock, recorded before the status says 0: a confirmation after it is refused
      `[ $kept != 0 ] || { deadline=$(( $(date +%s) + 30 )); echo "$deadline ${top}" >/run/cdktf-nixos/abc.deadline; }`,
      "echo $rc >/run/cdktf-nixos/abc.status",
      "if [ $kept != 0 ]; then rollback; touch /run/cdktf-nixos/abc.done; exit 0; fi",
      // confirmed, or rejected by a failed health check (a rollback at once), or the window closed
      `while [ "$(date +%s)" -lt "$deadline" ] && [ ! -d /run/cdktf-nixos/abc.decided ] && [ ! -e /run/cdktf-nixos/abc.reject ]; do sleep 1; done`,
      "if mkdir /run/cdktf-nixos/abc.decided 2>/dev/null; then if [ -e /run/cdktf-nixos/abc.reject ]; then echo \"a health check failed: rolling back\"; " +
        `else echo "no confirmation within 30 s: rolling back"; fi; rollback; fi`,
      "touch /run/cdktf-nixos/abc.done",
    ].join("\n"));
  });

  it("rolls boot back to the boot default, and test without touching the profile", () => {
    const boot = activationScript({ ...base, action: "boot" });
    expect(boot).toContain(`prev="$profile_system"`);
    expect(boot).toContain(`"$prev/bin/switch-to-configuration" boot`);
    expect(boot).not.toContain("decided");
    const test = activationScript({ ...base, action: "test" }).split("\n");
    expect(test).toContain(`{ ${env} NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration test; } 9>&-`);
    expect(test).toContain(`  { { [ -z "$prev" ] || ${env} NIXOS_INSTALL_BOOTLOADER=0 "$prev/bin/switch-to-configuration" test; }; } 9>&-`);
  });

  it("under the lock, changes nothing on a host another deployment already made what this one would, unless reactivating", () => {
    const check = (action: "boot" | "test" | "dry-activate", reactivate = false) =>
      activationScript({ ...base, action, reactivate }).split("\n").find((l) => l.includes("already up to date"));
    expect(check("boot")).toMatch(new RegExp(`^if \\[ "\\$profile_system" = ${top} \\]; then`));
    expect(check("test")).toMatch(new RegExp(`^if \\[ "\\$current" = ${top} \\]; then`));
    expect(check("dry-activate")).toBeUndefined();
    expect(check("boot", true)).toBeUndefined();
  });

  it("prunes old generations after a switch or boot that stays, under the lock; never after test or a rollback", () => {
    const lines = activationScript({ ...base, action: "switch", confirmTimeoutSeconds: 30, keepGenerations: 3 }).split("\n");
    expect(lines.slice(-3)).toEqual([
      "if mkdir /run/cdktf-nixos/abc.decided 2>/dev/null; then if [ -e /run/cdktf-nixos/abc.reject ]; then echo \"a health check failed: rolling back\"; " +
        `else echo "no confirmation within 30 s: rolling back"; fi; rollback; fi`,
      "[ -e /run/cdktf-nixos/abc.rolled-back ] || { nix-env -p /nix/var/nix/profiles/system --delete-generations +3; } 9>&-",
      "touch /run/cdktf-nixos/abc.done",
    ]);
    expect(activationScript({ ...base, action: "boot", keepGenerations: 1 })).toContain("--delete-generations +1");
    expect(activationScript({ ...base, action: "test", keepGenerations: 1 })).not.toContain("delete-generations");
  });

  it("leaves a failed host as it is without rollback, and never rolls back a dry-activate", () => {
    expect(activationScript({ ...base, action: "switch", rollback: false })).toContain(
      `if [ $kept != 0 ]; then echo "left as it is (no rollback)"; touch /run/cdktf-nixos/abc.done; exit 0; fi`,
    );
    const dry = activationScript({ ...base, action: "dry-activate" }).split("\n");
    expect(dry.slice(-6)).toEqual([
      `{ ${env} NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration dry-activate; } 9>&-`,
      "rc=$?",
      "(record /run/cdktf-nixos/abc.after)",
      "case $rc in 0) kept=0 ;; *) kept=$rc ;; esac",
      "echo $rc >/run/cdktf-nixos/abc.status",
      "touch /run/cdktf-nixos/abc.done",
    ]);
  });

  it("on a systemd host records the failed units and their journal lines before any rollback; keeps exit 4 only when accepted", () => {
    const lines = activationScript({ ...base, action: "switch", systemd: true }).split("\n");
    const after = lines.indexOf("(record /run/cdktf-nixos/abc.after)");
    expect(lines.slice(after + 1, after + 4)).toEqual([
      "failed=$(systemctl list-units --failed --plain --no-legend --type=service 2>/dev/null | awk '{ print $1 }' | " +
        "grep -v '^cdktf-nixos-activation-' | grep -E '^[A-Za-z0-9@._:-]{1,256}$' | head -n 20 | tr '\\n' ' ' | sed 's/ $//')",
      'if [ -n "$failed" ]; then echo "$failed" >/run/cdktf-nixos/abc.failed-units; for u in $failed; do echo "== $u"; ' +
        'journalctl -u "$u" -n 10 --no-pager -o cat 2>/dev/null | cut -c1-300 | tail -n 10; done >/run/cdktf-nixos/abc.journal; fi',
      "case $rc in 0) kept=0 ;; *) kept=$rc ;; esac",
    ]);
    expect(lines.indexOf("rollback() {")).toBeLessThan(after);
    expect(activationScript({ ...base, action: "switch", systemd: true, acceptFailedUnits: true })).toContain("case $rc in 0|4) kept=0 ;; *) kept=$rc ;; esac");
    expect(activationScript({ ...base, action: "switch" })).not.toContain("failed-units");
  });

  it("is started detached: in its own session, or in a transient unit where systemd runs; through sudo for other users", () => {
    // first, as root: the state directory is root's own (or nothing starts, exit 70)
    const guard = (runner: string) => shellQuote(`${SAFE_DIR_FUNCTION}\nsafe_dir /run/cdktf-nixos 0755 || exit 70\nexec ${runner}`);
    expect(startActivationCommand("abc", "echo hi", { sudo: false, systemd: false })).toBe(`sh -c ${guard("setsid -f sh -c 'echo hi'")} </dev/null >/dev/null`);
    // systemd expands ${NAME} in a unit's command line: the script's every $ reaches it doubled ($$ is a literal $)
    expect(startActivationCommand("abc", 'echo "${x#a} $$"', { sudo: true, systemd: true })).toBe(
      `sudo -n -- sh -c ${guard("systemd-run --unit=cdktf-nixos-activation-abc '--description=cdktf-nixos activation' --collect " +
        `--no-ask-password --quiet --service-type=exec -E LOCALE_ARCHIVE -- sh -c 'echo "$\${x#a} $$$$"'`)} </dev/null >/dev/null`,
    );
  });
});

describe("activation state", () => {
  it("is read from the state files, and parsed whatever has been written so far", () => {
    expect(readStateCommand("abc")).toBe(
      // done first: the script touches it after writing every file, so the files read after seeing it are final
      "d=; [ -e /run/cdktf-nixos/abc.done ] && d=1; " +
      `for f in lock-wait started after status failed-units rolled-back; do [ -s /run/cdktf-nixos/abc.$f ] && echo "$f $(head -c 4096 /run/cdktf-nixos/abc.$f | head -n 1)"; done; ` +
        // running before alive: the pid file is written before the log, so a script seen running can be told alive
        "[ -e /run/cdktf-nixos/abc.log ] && echo running; " +
        `{ read p t < /run/cdktf-nixos/abc.pid && [ "$(cut -d' ' -f22 /proc/$p/stat)" = "$t" ]; } 2>/dev/null && echo alive; ` +
        // which boot of the host this is: a restart mid-activation is told by it, whenever the state was last seen
        `echo boot $(cat /proc/sys/kernel/random/boot_id 2>/dev/null)-$(cut -d' ' -f22 /proc/1/stat 2>/dev/null); ` +
        "[ -d /run/cdktf-nixos/abc.decided ] && echo decided; " +
        '[ -n "$d" ] && echo done; true',
    );
    expect(parseActivationState("")).toEqual({ running: false, decided: false, done: false, alive: false, before: undefined, after: undefined, bootId: undefined, garbled: [] });
    expect(parseActivationState("boot 0b1c2d3e-aaaa-bbbb-cccc-0123456789ab-4242\n").bootId).toBe("0b1c2d3e-aaaa-bbbb-cccc-0123456789ab-4242");
    expect(parseActivationState("lock-wait laptop pid 42, activation f00 since 2026-11-25T16:00:00Z\nrunning\n")).toMatchObject({
      running: true, waitingFor: "laptop pid 42, activation f00 since 2026-11-25T16:00:00Z", before: undefined,
    });
    expect(parseActivationState(
      "lock-wait x\nstarted profile=system-4-link current=/nix/store/old profileSystem=/nix/store/old\n" +
        "after profile=system-5-link current=/nix/store/new profileSystem=/nix/store/new\nstatus 2\nrolled-back 0\nrunning\ndone\n",
    )).toEqual({
      running: true, waitingFor: "x", status: { kind: "exited", code: 2 }, rolledBack: { kind: "exited", code: 0 }, decided: false, done: true, alive: false, bootId: undefined, garbled: [],
      before: { currentSystem: "/nix/store/old", profileGeneration: 4, profileSystem: "/nix/store/old" },
      after: { currentSystem: "/nix/store/new", profileGeneration: 5, profileSystem: "/nix/store/new" },
    });
    expect(parseActivationState("started profile=system--link current= profileSystem=\n").before).toEqual({
      currentSystem: undefined, profileGeneration: undefined, profileSystem: undefined,
    });
    // what no activation writes (a status file pointed at /etc/shadow) is left out and named, never read as a number
    expect(parseActivationState("status root:$6$x:19000::::::\nrolled-back -1\nlock-wait \x1b[2Jcleared\nrunning\n")).toMatchObject({
      status: undefined, rolledBack: undefined, waitingFor: undefined, running: true, garbled: ["status", "rolled-back", "lock-wait"],
    });
    expect(parseActivationState("failed-units web.service $(reboot)\n")).toMatchObject({ failedUnits: undefined, garbled: ["failed-units"] });
    expect(parseActivationState("status missing-tool:flock\nrolled-back nothing\n")).toMatchObject({
      garbled: [], status: { kind: "missing-tool", tool: "flock" }, rolledBack: { kind: "nothing" },
    });
  });

  it("is written for the test fake by the same definition it is read by (renderActivationState round-trips)", () => {
    const record = { currentSystem: "/nix/store/old", profileGeneration: 4, profileSystem: "/nix/store/old" };
    const states: Array<Omit<ActivationState, "garbled">> = [
      { running: false, decided: false, done: false, alive: false },
      { running: true, waitingFor: "laptop pid 42, activation f00", decided: false, done: false, alive: true, bootId: "0b1c-42" },
      { running: true, before: record, after: { ...record, profileGeneration: 5 }, status: { kind: "exited", code: 0 }, decided: true, done: false, alive: true },
      { running: true, before: record, status: { kind: "exited", code: 3 }, rolledBack: { kind: "exited", code: 0 }, decided: false, done: true, alive: false },
      { running: true, before: record, status: { kind: "exited", code: 4 }, failedUnits: ["web.service", "getty@tty1.service"], rolledBack: { kind: "exited", code: 0 }, decided: false, done: true, alive: false },
      { running: true, status: { kind: "locked" }, decided: false, done: true, alive: false },
      { running: true, before: record, status: { kind: "up-to-date" }, decided: false, done: true, alive: false },
      { running: true, status: { kind: "missing-tool", tool: "flock" }, rolledBack: { kind: "nothing" }, decided: false, done: true, alive: false },
    ];
    for (const state of states) {
      expect(parseActivationState(renderActivationState(state))).toEqual({ after: undefined, before: undefined, bootId: undefined, ...state, garbled: [] });
    }
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

describe("planActivation", () => {
  const before = {
    system: "x86_64-linux", nix: true, nixos: true, systemd: false,
    currentSystem: "/nix/store/old", profileGeneration: 4, profileSystem: "/nix/store/old-boot",
  };
  const input = { before, toplevel: top, user: "root", id: "abc", lockTimeoutSeconds: 300, holder: "laptop pid 42" };

  it("plans the detached script, the reads and the rollback target as inspected", () => {
    const plan = planActivation({ ...input, action: "switch" });
    expect(plan).toEqual({
      id: "abc",
      action: "switch",
      toplevel: top,
      rollbackTo: "/nix/store/old",
      rollback: true,
      lockTimeoutSeconds: 300,
      start: startActivationCommand("abc", activationScript({ ...input, action: "switch", rollback: true }), { sudo: false, systemd: false }),
      readState: readStateCommand("abc"),
      readLog: "tail -c 65536 /run/cdktf-nixos/abc.log",
      readJournal: "tail -c 16384 /run/cdktf-nixos/abc.journal",
      keptExitCodes: [0],
      logFile: "/run/cdktf-nixos/abc.log",
    });
    expect(planActivation({ ...input, action: "boot" }).rollbackTo).toBe("/nix/store/old-boot");
    expect(planActivation({ ...input, action: "dry-activate" })).toMatchObject({ rollback: false, rollbackTo: undefined });
    expect(planActivation({ ...input, action: "switch", rollback: false }).rollback).toBe(false);
  });

  it("confirms switch and test only, through sudo for other users", () => {
    const plan = planActivation({ ...input, action: "test", user: "deploy", confirmTimeoutSeconds: 30 });
    // within the recorded window, and while the script runs (else nothing would roll back an unconfirmed system)
    expect(plan.confirm).toEqual({
      timeoutSeconds: 30,
      command: "sudo -n -- sh -c " + shellQuote("d=$(cut -d' ' -f1 /run/cdktf-nixos/abc.deadline 2>/dev/null); [ -n \"$d\" ] && [ \"$(date +%s)\" -lt \"$d\" ] || exit 4; " +
        "{ read p t < /run/cdktf-nixos/abc.pid && [ \"$(cut -d' ' -f22 /proc/$p/stat)\" = \"$t\" ]; } 2>/dev/null || exit 5; mkdir /run/cdktf-nixos/abc.decided"),
      // a failed health check ends the wait for the confirmation: the host rolls back at once
      reject: "sudo -n -- touch /run/cdktf-nixos/abc.reject",
      checkSeconds: 0,
    });
    expect(plan.start).toMatch(/^sudo -n -- sh -c '[\s\S]*\nexec setsid -f sh -c /);
    expect(plan.start).toContain("abc.decided");
    expect(planActivation({ ...input, action: "boot", confirmTimeoutSeconds: 30 }).confirm).toBeUndefined();
    expect(planActivation({ ...input, action: "switch", confirmTimeoutSeconds: 0 }).confirm).toBeUndefined();
  });

  it("opens a window for health checks: their time, then the confirmation timeout (30 s when there is none)", () => {
    expect(planActivation({ ...input, action: "switch", confirmTimeoutSeconds: 0, healthCheckSeconds: 64 }).confirm?.timeoutSeconds).toBe(94);
    expect(planActivation({ ...input, action: "test", confirmTimeoutSeconds: 10, healthCheckSeconds: 64 }).confirm?.timeoutSeconds).toBe(74);
    expect(planActivation({ ...input, action: "boot", confirmTimeoutSeconds: 10, healthCheckSeconds: 64 }).confirm).toBeUndefined();
    expect(planActivation({ ...input, action: "switch", healthCheckSeconds: 64 }).start).toContain("+ 94 ))");
  });

  it("goes back to an existing generation by switching to it, checked to still hold the system", () => {
    const script = activationScript({ id: "abc", toplevel: top, action: "switch", lockTimeoutSeconds: 300, holder: "h", rollback: true, switchGeneration: 7 });
    expect(script).toContain(`{ [ "$(readlink -f /nix/var/nix/profiles/system-7-link)" = ${top} ] && nix-env -p /nix/var/nix/profiles/system --switch-generation 7 && ` +
      `${env} NIXOS_INSTALL_BOOTLOADER=0 ${top}/bin/switch-to-configuration switch; } 9>&-`);
    expect(script).not.toContain(`--set ${top}`);
  });

  it("runs the activation in a transient systemd unit where systemd is PID 1", () => {
    const plan = planActivation({ ...input, before: { ...before, systemd: true }, action: "switch", installBootloader: true });
    expect(plan.start).toMatch(/\nexec systemd-run --unit=cdktf-nixos-activation-abc /);
    expect(plan.start).toContain("NIXOS_INSTALL_BOOTLOADER=1");
  });
});
