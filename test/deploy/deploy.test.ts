import { VirtualClock } from "./virtual-clock";
import { CompressionUnavailableError } from "../../src/nix/serve/copy-policy";
import { describe, expect, it } from "vitest";
import { confirmCommand } from "../../src/deploy/activation";
import { SUDO_CHECK_COMMAND, deploy, type DeployRequest } from "../../src/deploy/deploy";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import { ActivateError, BuildError, ConnectError, DeployError, EXIT_CODES, exitCodeOf, TransportError } from "../../src/errors";
import { ServeError } from "../../src/nix/serve/session";
import {
  ARRIVED, CONFIRM, FakeHost, NEW, OLD, READ_LOG, READ_STATE, START, activationState, fakeDependencies, healthyHost, inspection, states,
} from "./fake-host";

const request: DeployRequest = {
  source: { kind: "toplevel", path: NEW },
  target: { host: "198.51.100.7", user: "root", knownHostsFile: "/dev/null" },
};

const SET_PROFILE = `nix-env -p /nix/var/nix/profiles/system --set ${NEW}`;
const SWITCH = `env -i PATH=/run/current-system/sw/bin:/usr/bin:/bin NIXOS_INSTALL_BOOTLOADER=0 ${NEW}/bin/switch-to-configuration switch`;

/** Runs a deployment that must fail, returning its typed error. */
async function failure(run: Promise<unknown>): Promise<DeployError> {
  const err = await run.then(() => undefined, (e: unknown) => e);
  expect(err, "the deployment should have failed").toBeInstanceOf(DeployError);
  return err as DeployError;
}

describe("deploy orchestration over the Host seam", () => {
  it("inspects, copies, sets the profile, switches and reports the host's new state", async () => {
    const world = fakeDependencies(healthyHost());
    const result = await deploy(request, world.deps);
    expect(world.host.log.map((c) => (START.test(c) ? "START" : READ_STATE.test(c) ? "READ_STATE" : c))).toEqual([
      INSPECT_COMMAND, `copy ${NEW}`, ARRIVED, "START", "READ_STATE", INSPECT_COMMAND, world.host.log.at(-1),
    ]);
    expect(world.host.log[3]).toContain(`{ ${SET_PROFILE} && ${SWITCH}; } 9>&-`);
    expect(world.host.log.at(-1)).toMatch(READ_LOG);
    expect(result).toMatchObject({
      host: "root@198.51.100.7:22", action: "switch", newSystem: NEW, previousSystem: OLD,
      previousGeneration: 4, newGeneration: 5, pathsCopied: 2, pathsInClosure: 3, bytesSent: 2048,
    });
    expect(world.host.closed).toBe(1);
  });

  it("leaves a host that already runs the system alone: nothing copied or activated, unless --reactivate", async () => {
    const current = () => new FakeHost([[INSPECT_COMMAND, { stdout: inspection({ currentSystem: NEW, profileSystem: NEW, profileGeneration: 9 }) }]]);
    const world = fakeDependencies(current());
    const result = await deploy(request, world.deps);
    expect(world.host.log).toEqual([INSPECT_COMMAND]);
    expect(result).toMatchObject({ upToDate: true, pathsCopied: 0, previousGeneration: 9, newGeneration: 9, newSystem: NEW });
    // boot only needs the boot default; test only the running system
    const bootOnly = fakeDependencies(new FakeHost([[INSPECT_COMMAND, { stdout: inspection({ profileSystem: NEW }) }]]));
    expect((await deploy({ ...request, action: "boot" }, bootOnly.deps)).upToDate).toBe(true);
    const stale = fakeDependencies(healthyHost([[INSPECT_COMMAND, { stdout: inspection({ profileSystem: NEW }) }]]));
    expect((await deploy(request, stale.deps)).upToDate).toBe(false);
    const again = fakeDependencies(healthyHost([[INSPECT_COMMAND, { stdout: inspection({ currentSystem: NEW, profileSystem: NEW }) }]]));
    expect((await deploy({ ...request, reactivate: true }, again.deps)).upToDate).toBe(false);
    expect(again.host.log.some((c) => START.test(c))).toBe(true);
  });

  it("reports up to date, not deployed, when another deployment of the same system finished while this one waited for the lock", async () => {
    const started = `profile=system-5-link current=${NEW} profileSystem=${NEW}`;
    const world = fakeDependencies(healthyHost([[READ_STATE, { stdout: activationState({ started, status: "up-to-date", done: true }) }]]));
    const events: string[] = [];
    const result = await deploy({ ...request, onEvent: (e) => events.push(e.type) }, world.deps);
    expect(result).toMatchObject({ upToDate: true, pathsCopied: 2, previousGeneration: 5, newGeneration: 5, newSystem: NEW });
    expect(events).toContain("up-to-date");
    expect(events).not.toContain("activated");
  });

  it("builds on the target: copies the derivation, realises it there, then activates the output", async () => {
    const world = fakeDependencies(healthyHost([[/^nix-store --realise /, { stdout: `${NEW}\n` }]]));
    await deploy({ ...request, buildOnTarget: true, action: "test" }, world.deps);
    expect(world.calls).toEqual(["instantiate toplevel", "connect root@198.51.100.7"]);
    expect(world.host.log.slice(1, 3)).toEqual([
      "copy /nix/store/0000000000000000000000000000000c-nixos-system-new.drv",
      "nix-store --realise /nix/store/0000000000000000000000000000000c-nixos-system-new.drv",
    ]);
  });

  it("exit 3: a host that cannot be reached; nothing is copied", async () => {
    const world = fakeDependencies(healthyHost(), {
      connect: async () => {
        throw new ConnectError("cannot reach root@198.51.100.7:22: connect ECONNREFUSED");
      },
    });
    const err = await failure(deploy(request, world.deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["connect", 3]);
  });

  it("exit 3: a connection that drops during inspection is a connect-class failure, not a crash", async () => {
    const host = new FakeHost([[INSPECT_COMMAND, new TransportError("the connection to root@198.51.100.7:22 was lost")]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["inspect", 3]);
    expect(err.message).toBe("inspecting root@198.51.100.7:22 failed: the connection to root@198.51.100.7:22 was lost");
  });

  it("exit 3: an aarch64 target for an x86_64 system, refused before anything is copied", async () => {
    const host = new FakeHost([[INSPECT_COMMAND, { stdout: inspection({ system: "aarch64-linux" }) }]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(3);
    expect(err.message).toBe("root@198.51.100.7:22 is aarch64-linux but the system was built for x86_64-linux");
    expect(err.hint).toBe("set the configuration's system to aarch64-linux, or pass --build-on-target to build it there");
    expect(host.log).toEqual([INSPECT_COMMAND]);
  });

  it("exit 3: a target that is not NixOS, unless --allow-non-nixos", async () => {
    const notNixos = () => new FakeHost([
      [INSPECT_COMMAND, { stdout: inspection({ nixos: false, currentSystem: undefined, profileGeneration: undefined }) }],
      [READ_STATE, { stdout: activationState({ started: "profile=system--link current= profileSystem=", status: "0", done: true }) }],
    ]);
    const host = notNixos();
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(3);
    expect(err.message).toBe("root@198.51.100.7:22 does not look like NixOS (no /etc/NIXOS, no /run/current-system)");
    expect(host.log).toEqual([INSPECT_COMMAND]);

    const allowed = notNixos();
    await deploy({ ...request, allowNonNixos: true }, fakeDependencies(allowed).deps);
    expect(allowed.log[3]).toContain(SWITCH);
  });

  it("exit 5: a host whose serve protocol claimed paths it does not have is caught before anything is activated", async () => {
    const host = healthyHost([[ARRIVED, { exitCode: 1, stderr: `error: path '${NEW}' is not valid\n` }]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["copy", 5]);
    expect(err.message).toBe(`root@198.51.100.7:22 claimed paths it does not have: ${NEW} is not in its store after the copy; nothing was activated`);
    expect(host.log).toEqual([INSPECT_COMMAND, `copy ${NEW}`, ARRIVED]);
  });

  it("exit 3: a login user without passwordless sudo is found before anything is copied", async () => {
    const host = healthyHost([[SUDO_CHECK_COMMAND, { exitCode: 1, stderr: "sudo: a password is required\n" }]]);
    const err = await failure(deploy({ ...request, target: { ...request.target, user: "deploy" } }, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["inspect", 3]);
    expect(err.message).toBe("deploy cannot run commands as root without a password on root@198.51.100.7:22 (sudo -n true failed); nothing was copied");
    expect(host.log).toEqual([INSPECT_COMMAND, SUDO_CHECK_COMMAND]);
  });

  it("exit 3: a host without nix-store", async () => {
    const host = new FakeHost([[INSPECT_COMMAND, { stdout: inspection({ nix: false }) }]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect([err.phase, err.message]).toEqual(["inspect", "root@198.51.100.7:22 has no nix-store on its PATH"]);
  });

  it("exit 4: a failed local build never connects", async () => {
    const world = fakeDependencies(healthyHost(), {
      build: async () => {
        throw new BuildError("nix-store failed: builder for '/nix/store/x.drv' failed with exit code 1");
      },
    });
    const err = await failure(deploy(request, world.deps));
    expect(exitCodeOf(err)).toBe(4);
    expect(world.calls).toEqual([]);
  });

  it("exit 4: a target build that realises another output than evaluated", async () => {
    const host = healthyHost([[/^nix-store --realise /, { stdout: "/nix/store/0000000000000000000000000000000d-other\n" }]]);
    const err = await failure(deploy({ ...request, buildOnTarget: true }, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(4);
    expect(err.message).toContain(`produced /nix/store/0000000000000000000000000000000d-other, expected ${NEW}`);
    expect(host.log).not.toContain(SET_PROFILE);
  });

  it("exit 5: the target's Nix refuses unsigned paths from an untrusted user, with the trusted-users hint", async () => {
    const host = healthyHost();
    host.copyFailure = new ServeError("adding /nix/store/x failed: cannot add path '/nix/store/x' because it lacks a valid signature",
      "ssh deploy@198.51.100.7:22 nix-store --serve --write", "error: cannot add path '/nix/store/x' because it lacks a valid signature\n", 1);
    const err = await failure(deploy({ ...request, target: { ...request.target, user: "deploy" } }, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["copy", 5]);
    expect(err.hint).toContain("add it to nix.settings.trusted-users");
    expect(host.log).toEqual([INSPECT_COMMAND, SUDO_CHECK_COMMAND, `copy ${NEW}`]);
  });

  it("exit 5: a full disk on the host says so, and that nothing half-copied was registered", async () => {
    const host = healthyHost();
    host.copyFailure = new ServeError("adding /nix/store/x failed", "ssh root@198.51.100.7:22 nix-store --serve --write",
      "error: writing to file: No space left on device\n", 1);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["copy", 5]);
    expect(err.hint).toBe("the host's disk is full: a path is registered only once all of it has arrived, so nothing half-copied was " +
      "registered and the host runs what it ran; free space there (nix-collect-garbage -d) and deploy again");
    expect(host.log.some((c) => START.test(c))).toBe(false);
  });

  it("exit 5: a connection lost mid-copy says the copied paths stay valid", async () => {
    const host = healthyHost();
    host.copyFailure = new TransportError("the connection to root@198.51.100.7:22 was lost");
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(5);
    expect(err.hint).toBe("paths already copied stay valid on the target; run the deploy again to copy the rest");
  });

  it("exit 3: --compress zstd on a host without zstd is a precondition of the host, not a failed copy; nothing was sent or activated", async () => {
    const host = healthyHost();
    host.copyFailure = new CompressionUnavailableError("--compress zstd needs zstd on the target, and it is not on its PATH");
    const err = await failure(deploy({ ...request, compress: "zstd" }, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["inspect", 3]);
    expect(err.message).toBe("root@198.51.100.7:22 cannot take the copy as asked: --compress zstd needs zstd on the target, and it is not on its PATH; nothing was copied");
    expect(host.log.some((c) => START.test(c))).toBe(false);
  });

  it("exit 6: a switch that fails on the target is rolled back by the activation script; the report says what the host runs", async () => {
    const host = healthyHost([
      [READ_STATE, states({ stdout: activationState() }, { stdout: activationState({ status: "4" }) }, { stdout: activationState({ status: "4", rolledBack: "0", done: true }) })],
      [READ_LOG, { stdout: "warning: the following units failed: app.service\n" }],
      [INSPECT_COMMAND, states({ stdout: inspection() })],
    ]);
    const events: string[] = [];
    const err = await failure(deploy({ ...request, onEvent: (e) => e.type === "phase" && events.push(e.phase) }, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["activate", 6]);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22 exited with code 4; root@198.51.100.7:22 was rolled back to ${OLD}`);
    expect(err.stderr).toContain("app.service");
    expect(err.hostState).toMatchObject({ currentSystem: OLD, profileGeneration: 4 });
    expect(events).toEqual(["build", "connect", "inspect", "copy", "activate", "rollback"]);
  });

  it("exit 6 with --no-rollback: the host is left as it is, and the message says so", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ status: "4", done: true }) }]]);
    const err = await failure(deploy({ ...request, rollback: false }, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(6);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22 exited with code 4; root@198.51.100.7:22 was left as it is (--no-rollback)`);
    expect(host.log[3]).toContain(`echo "left as it is (no rollback)"`);
  });

  it("reconnects when the connection is lost during activation, and reports what the host really did", async () => {
    const host = healthyHost([[READ_STATE, states(new TransportError("the connection was lost"), { stdout: activationState({ status: "0", done: true }) })]]);
    const events: string[] = [];
    const result = await deploy({ ...request, onEvent: (e) => events.push(e.type) }, fakeDependencies(host).deps);
    expect(result).toMatchObject({ newSystem: NEW, newGeneration: 5, previousGeneration: 4 });
    expect(host.reconnects).toBe(1);
    expect(events).toContain("reconnecting");
    expect(host.closed).toBe(1);
  });

  it("exit 10: a host that cannot be reached again during activation is reported as unknown, never as rolled back", async () => {
    const host = healthyHost([[READ_STATE, new TransportError("the connection was lost")]]);
    host.reconnectFailure = new ConnectError("cannot reach root@198.51.100.7:22: connect ETIMEDOUT");
    const events: string[] = [];
    const err = await failure(deploy({ ...request, onEvent: (e) => events.push(e.type) }, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["activate", 10]);
    expect(err.message).toContain("lost the connection to root@198.51.100.7:22 during 'switch' and could not reconnect");
    expect(err.hint).toContain("whether root@198.51.100.7:22 switched is unknown");
    expect(events).not.toContain("rolled-back");
  });

  it("exit 10: an activation still running at --activation-timeout is given up on, saying it goes on by itself", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState() }]]);
    const err = await failure(deploy({ ...request, activationTimeoutSeconds: 0.2 }, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(10);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22 did not finish within 0.2 s`);
    expect(err.hint).toContain("it goes on on the host (and rolls back by itself if it fails)");
  });

  it("exit 8: a rollback that fails too tells the user to recover by hand", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ status: "4", rolledBack: "1", done: true }) }]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["rollback", 8]);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22 exited with code 4, and rolling back to ${OLD} failed too (exit 1)`);
    expect(err.hint).toContain("nixos-rebuild switch --rollback");
  });

  it("exit 6 on a host that had no system before: nothing to roll back to", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ started: "profile=system--link current= profileSystem=", status: "1", rolledBack: "nothing", done: true }) }]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(6);
    expect(err.message).toContain("had no earlier system to roll back to");
  });

  it("exit 9: another deployment holds the lock past --lock-timeout; it is named and nothing was changed", async () => {
    const host = healthyHost([[READ_STATE, states(
      { stdout: activationState({ started: false, lockWait: "laptop pid 42, activation f00 since 2026-11-25T16:00:00Z" }) },
      { stdout: activationState({ started: false, lockWait: "laptop pid 42, activation f00 since 2026-11-25T16:00:00Z", status: "locked", done: true }) },
    )]]);
    const holders: string[] = [];
    const err = await failure(deploy({ ...request, lockTimeoutSeconds: 1, onEvent: (e) => e.type === "lock-wait" && holders.push(e.holder) }, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["lock", 9]);
    expect(err.message).toBe("root@198.51.100.7:22 is locked by another deployment (laptop pid 42, activation f00 since " +
      "2026-11-25T16:00:00Z) for more than 1 s; nothing was changed");
    expect(holders).toEqual(["laptop pid 42, activation f00 since 2026-11-25T16:00:00Z"]);
    expect(host.log[3]).toContain("flock -w 1 9");
  });

  it("exit 9: a host without flock is named as such, not as locked by another deployment; nothing was changed", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ started: false, status: "missing-tool:flock", done: true }) }]]);
    const err = await failure(deploy(request, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["lock", 9]);
    expect(err.message).toBe("root@198.51.100.7:22 has no flock command, which the deployment lock needs; nothing was changed");
    expect(err.hint).toBe("install util-linux on root@198.51.100.7:22 (NixOS has it in the system path)");
  });

  it("reports the generations the script recorded under the lock, not what another deployment made of the host since", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({
      started: `profile=system-7-link current=${OLD} profileSystem=${OLD}`,
      after: `profile=system-8-link current=${NEW} profileSystem=${NEW}`,
      status: "0", done: true,
    }) }]]);
    const result = await deploy(request, fakeDependencies(host).deps);
    // the inspection after would say generation 5
    expect(result).toMatchObject({ previousGeneration: 7, newGeneration: 8 });
  });

  it("a restart mid-activation is told by the host's boot, even when the state was never seen; a stopped script is said so", async () => {
    const boot = (id: string) => `boot 0b1c2d3e-aaaa-bbbb-cccc-0123456789ab-${id}`;
    const inspected = `${inspection()}\nboot=0b1c2d3e-aaaa-bbbb-cccc-0123456789ab-1`;
    const restarted = new FakeHost([
      [INSPECT_COMMAND, states({ stdout: inspected }, { stdout: `${inspection()}\nboot=0b1c2d3e-aaaa-bbbb-cccc-0123456789ab-2` })],
      [READ_STATE, { stdout: boot("2") }],
    ]);
    const err = await failure(deploy(request, fakeDependencies(restarted).deps));
    expect(exitCodeOf(err)).toBe(EXIT_CODES.activate);
    expect(err.message).toBe(`root@198.51.100.7:22 restarted during 'switch' of ${NEW} on root@198.51.100.7:22: the activation's state in /run is gone; it runs ${OLD} (its profile is generation 4)`);

    const stopped = healthyHost([[READ_STATE, { stdout: `${activationState({ alive: false })}\n${boot("1")}` }]]);
    const gone = await failure(deploy(request, fakeDependencies(stopped).deps));
    expect(exitCodeOf(gone)).toBe(EXIT_CODES.unknown);
    expect(gone.message).toBe(`the activation script of 'switch' of ${NEW} on root@198.51.100.7:22 stopped before it finished (was it killed, or its unit stopped?)`);
  });

  it("describes a failure with a huge log by its last lines (no stack overflow from 200 000 of them)", () => {
    const log = Array.from({ length: 200_000 }, (_, i) => `line ${i}`).join("\n");
    const text = new ActivateError("it failed", { stderr: log }).describe();
    expect(text.split("\n")).toHaveLength(1 + 1 + 40);
    expect(text).toContain("  stderr (its last 40 of 200000 lines):\n    line 199960\n");
    expect(text.endsWith("    line 199999")).toBe(true);
  });

  it("exit 9: a state directory that is not root's own starts nothing; exit 10: state files no activation wrote are never believed", async () => {
    const unsafe = healthyHost([[START, { exitCode: 70, stderr: "unsafe /run/cdktf-nixos: it is owned by mallory, not root\n" }]]);
    const refused = await failure(deploy(request, fakeDependencies(unsafe).deps));
    expect(exitCodeOf(refused)).toBe(EXIT_CODES.lock);
    expect(refused.message).toBe("the deployment's state directory on root@198.51.100.7:22 is not root's own: /run/cdktf-nixos: it is owned by mallory, not root; nothing was changed");
    expect(unsafe.log.some((c) => READ_STATE.test(c))).toBe(false);

    // a status redirected to a root-only file: its first line is no exit code, and no rollback "exit code: NaN" is made up
    const garbled = healthyHost([[READ_STATE, { stdout: `${activationState({ done: true })}\nstatus root:$6$salt:19000:0:99999:7:::\nrolled-back root:x:0:0` }]]);
    const unknown = await failure(deploy(request, fakeDependencies(garbled).deps));
    expect(exitCodeOf(unknown)).toBe(EXIT_CODES.unknown);
    expect(unknown.message).toBe(`the state files of 'switch' of ${NEW} on root@198.51.100.7:22 hold what no activation writes (status, rolled-back); what the host did cannot be told from them`);
    expect(JSON.stringify(unknown)).not.toContain("salt");
  });

  it("says why a start through sudo failed", async () => {
    const host = healthyHost([[/^sudo -n -- sh -c [\s\S]*exec setsid/, { exitCode: 1, stderr: "sudo: a password is required\n" }]]);
    const err = await failure(deploy({ ...request, target: { ...request.target, user: "deploy" } }, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(6);
    expect(err.message).toBe(`could not start 'switch' of ${NEW} on root@198.51.100.7:22`);
    expect(err.hint).toContain("passwordless sudo");
  });
});

describe("confirmed activation (magic rollback) over the Host seam", () => {
  const confirmed: DeployRequest = { ...request, confirmTimeoutSeconds: 5 };

  it("starts the detached script, waits for its status, confirms over a second connection", async () => {
    const host = healthyHost([[READ_STATE, states({ stdout: activationState() }, { stdout: activationState({ status: "0" }) })]]);
    const result = await deploy(confirmed, fakeDependencies(host).deps);
    expect(host.reconnects).toBe(1);
    expect(host.log[3]).toMatch(START);
    expect(host.log.slice(4).map((c) => c.replace(/[0-9a-f]{12}/g, "ID").replace(/^d=; .*/, "READ_STATE"))).toEqual([
      "READ_STATE",
      "READ_STATE",
      "reconnect",
      confirmCommand("ID", { sudo: false }),
      INSPECT_COMMAND,
      "tail -c 65536 /run/cdktf-nixos/ID.log",
    ]);
    expect(result).toMatchObject({ newSystem: NEW, newGeneration: 5, previousGeneration: 4 });
    // the first connection was closed when the confirmation's replaced it
    expect(host.closed).toBe(1);
  });

  it("exit 6: an activation that fails on the target is rolled back by the script, and nothing is confirmed", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ status: "3", rolledBack: "0", done: true }) }], [READ_LOG, { stdout: "unit failed\n" }]]);
    const err = await failure(deploy(confirmed, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(6);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22 exited with code 3; root@198.51.100.7:22 was rolled back to ${OLD}`);
    expect(err.stderr).toBe("unit failed\n");
    expect(host.reconnects).toBe(0);
  });

  it("exit 7: no new connection after activating; the host rolls itself back", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ status: "0" }) }]]);
    host.reconnectFailure = new ConnectError("cannot reach root@198.51.100.7:22: connect ETIMEDOUT");
    const err = await failure(deploy(confirmed, fakeDependencies(host).deps));
    expect([err.phase, exitCodeOf(err)]).toEqual(["confirm", 7]);
    expect(err.message).toBe(`root@198.51.100.7:22 did not take a new SSH connection after 'switch'; it rolls itself back to ${OLD} 5 s after activating`);
  });

  it("exit 7: a session that stops answering after activation starts is not waited on past the confirmation window", async () => {
    const host = healthyHost([[READ_STATE, "hang"]]);
    host.reconnectFailure = new ConnectError("cannot reach root@198.51.100.7:22: connect ETIMEDOUT");
    const clock = new VirtualClock();
    const started = clock.now();
    const err = await failure(deploy({ ...confirmed, confirmTimeoutSeconds: 1 }, fakeDependencies(host, { clock }).deps));
    expect(exitCodeOf(err)).toBe(7);
    expect(err.message).toContain(`did not take a new SSH connection after 'switch' started`);
    expect(err.message).toContain(`it rolls itself back to ${OLD} 1 s after activating unless confirmed`);
    expect(host.reconnects).toBe(1);
    // bounded by the 1 s window, not by the 600 s activation timeout (virtual time: what the engine waited)
    expect(clock.now() - started).toBeLessThanOrEqual(1_000);
  });

  it("exit 7: a confirmation that arrives after the host decided to roll back reports the rollback it did", async () => {
    const host = healthyHost([
      [READ_STATE, states({ stdout: activationState({ status: "0" }) }, { stdout: activationState({ status: "0", decided: true, rolledBack: "0", done: true }) })],
      [CONFIRM, { exitCode: 1, stderr: "mkdir: cannot create directory: File exists\n" }],
    ]);
    const err = await failure(deploy(confirmed, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(7);
    expect(err.message).toBe(`the confirmation of 'switch' of ${NEW} on root@198.51.100.7:22 came too late: it rolled back to ${OLD}`);
  });

  it("exit 7: an activation with no status by the deadline is not confirmed, and the message says the host will roll back", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState() }]]);
    const err = await failure(deploy({ ...confirmed, activationTimeoutSeconds: 1 }, fakeDependencies(host).deps));
    expect(exitCodeOf(err)).toBe(7);
    expect(err.message).toBe(`'switch' of ${NEW} on root@198.51.100.7:22 did not finish within 1 s; it was not confirmed, ` +
      `so once it finishes the host rolls itself back to ${OLD}`);
    expect(host.reconnects).toBe(0);
    expect(host.log.some((c) => CONFIRM.test(c))).toBe(false);
  });
});

describe("reading the activation's state files", () => {
  it("reads again when a read ends without its exit status 0 (its output may stop anywhere), instead of calling the script gone", async () => {
    const host = healthyHost([[READ_STATE, states(
      { stdout: activationState() },
      // killed mid-read: "running" printed, "alive" not yet
      { exitCode: 143, stdout: "started profile=system-4-link current=x profileSystem=x\nrunning\n" },
      { stdout: activationState({ status: "0", done: true }) },
    )]]);
    const result = await deploy(request, fakeDependencies(host).deps);
    expect(result).toMatchObject({ newSystem: NEW, newGeneration: 5 });
  });

  it("calls the script gone only when two reads in a row say so", async () => {
    const gone = { stdout: activationState({ alive: false }) };
    const blip = healthyHost([[READ_STATE, states({ stdout: activationState() }, gone, { stdout: activationState({ status: "0", done: true }) })]]);
    expect(await deploy(request, fakeDependencies(blip).deps)).toMatchObject({ newGeneration: 5 });
    const dead = healthyHost([[READ_STATE, states({ stdout: activationState() }, gone, gone)]]);
    const err = await failure(deploy(request, fakeDependencies(dead).deps));
    expect([exitCodeOf(err), err.message]).toEqual([10, `the activation script of 'switch' of ${NEW} on root@198.51.100.7:22 stopped before it finished (was it killed, or its unit stopped?)`]);
  });
});
