import { afterEach, describe, expect, it } from "vitest";
import { main } from "../../src/cli/program";
import type { DeployDependencies } from "../../src/deploy/deploy";
import { DEPLOY_ENV } from "../../src/spec/manifest";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import { ConnectError, EXIT_CODES, TransportError } from "../../src/errors";
import { capturedOutput } from "../harness/cli";
import { FakeHost, NEW, OLD, READ_STATE, activationState, fakeDependencies, healthyHost, inspection, states } from "../deploy/fake-host";

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  /** What the deploy engine was asked to do: empty when the command line was refused before any work. */
  calls: string[];
}

/** Runs the CLI in-process against fake seams (no Nix, no sshd, no root). */
async function cli(args: string[], host: FakeHost = healthyHost(), overrides: Partial<DeployDependencies> = {}): Promise<Run> {
  const io = capturedOutput();
  const world = fakeDependencies(host, overrides);
  const code = await main(["node", "cdktf-nixos", ...args], { output: io.output, dependencies: () => world.deps });
  return { code, stdout: io.stdout(), stderr: io.stderr(), calls: world.calls };
}

const target = ["--target-host", "root@198.51.100.7", "--known-hosts", "/dev/null"];

describe("cdktf-nixos deploy: usage errors, found before any build or connection (exit 2)", () => {
  afterEach(() => {
    delete process.env[DEPLOY_ENV.moduleArgsJson];
  });

  it.each([
    [[...target], "say what to deploy: --toplevel STORE_PATH, --config configuration.nix [-I nixpkgs=PATH], or --flake REF#NAME"],
    [[...target, "--toplevel", "/tmp/not-a-store-path"], "--toplevel /tmp/not-a-store-path does not exist"],
    [[...target, "--flake", "nohash"], "--flake 'nohash' is not REF#NAME (e.g. --flake .#web)"],
    [[...target, "--toplevel", NEW, "--config", "c.nix"], "give only one of --toplevel, --config and --flake (got --toplevel and --config)"],
    [[...target, "--toplevel", NEW, "-I", "nixpkgs=/x"], "-I only applies to --config; a flake pins its inputs in flake.lock"],
    [[...target, "--config", "c.nix", "-I", "nixpkgs"], "-I 'nixpkgs' is not name=path (e.g. -I nixpkgs=/path/to/nixpkgs)"],
    [["--known-hosts", "/dev/null", "--toplevel", NEW], "--target-host is required (or set CDKTF_NIXOS_TARGET_HOST), e.g. --target-host root@203.0.113.10"],
    [["--target-host", "root@", "--toplevel", NEW], "--target-host 'root@' is not [user@]host (for example root@203.0.113.10, or root@2001:db8::1 for IPv6)"],
    [[...target, "--toplevel", NEW, "--target-port", "70000"], "--target-port '70000' is not a port number (1-65535)"],
    [[...target, "--toplevel", NEW, "--jump-host", "admin@bastion:ssh"], "--jump-host 'admin@bastion:ssh' is not [user@]host[:port] (for example admin@bastion.example.com:22)"],
    [[...target, "--toplevel", NEW, "--confirm-timeout", "1.5"], "--confirm-timeout '1.5' is not a whole number of seconds from 0 to 604800 (a week)"],
    [[...target, "--toplevel", NEW, "--activation-timeout", "soon"], "--activation-timeout 'soon' is not a number of seconds above 0 to 604800 (a week)"],
    [[...target, "--toplevel", NEW, "--connect-timeout", "-1"], "--connect-timeout '-1' is not a number of seconds from 0 to 604800 (a week)"],
    [[...target, "--toplevel", NEW, "--connect-timeout", ""], "--connect-timeout '' is not a number of seconds from 0 to 604800 (a week)"],
    [[...target, "--toplevel", NEW, "--connect-timeout", "1e9"], "--connect-timeout '1e9' is not a number of seconds from 0 to 604800 (a week)"],
    [[...target, "--toplevel", NEW, "--target-host", "root@198.51.100.8"], "--target-host is given 2 times: give it once (only repeatable options may come more than once)"],
    [[...target, "--toplevel", NEW, "--host-key-from-ec2-console", "web"], "--host-key-from-ec2-console 'web' is not an instance ID (i-0123456789abcdef0)"],
    [[...target, "--config", "c.nix", "--nixos-args-file", "/nonexistent/args.json"], "cannot read --nixos-args-file: ENOENT: no such file or directory, open '/nonexistent/args.json'"],
  ])("%j", async (args, message) => {
    const run = await cli(["deploy", ...args]);
    expect(run.stderr).toBe(`cdktf-nixos: ${message}\n`);
    expect(run.code).toBe(EXIT_CODES.usage);
    expect(run.calls).toEqual([]);
  });

  it("refuses an action switch-to-configuration does not have, with commander's list", async () => {
    const run = await cli(["deploy", ...target, "--toplevel", NEW, "--action", "reboot"]);
    expect(run.code).toBe(EXIT_CODES.usage);
    expect(run.stderr).toContain("Allowed choices are switch, boot, test, dry-activate");
    expect(run.calls).toEqual([]);
  });

  it("refuses module arguments for a flake before evaluating anything", async () => {
    process.env[DEPLOY_ENV.moduleArgsJson] = '{"region":"eu-central-1"}';
    const run = await cli(["deploy", ...target, "--flake", ".#web"]);
    expect(run.stderr).toBe("cdktf-nixos: module arguments (--nixos-args-file, $CDKTF_NIXOS_ARGS_JSON) work with --config only; " +
      "a flake takes such values through specialArgs in its flake.nix\n");
    expect([run.code, run.calls]).toEqual([2, []]);
  });

  it("refuses module arguments that are not a JSON object", async () => {
    process.env[DEPLOY_ENV.moduleArgsJson] = "[1]";
    const run = await cli(["deploy", ...target, "--config", "c.nix"]);
    expect(run.stderr).toBe('cdktf-nixos: the module arguments in $CDKTF_NIXOS_ARGS_JSON must be a JSON object, e.g. {"peers": ["10.0.0.5"]}\n');
    expect([run.code, run.calls]).toEqual([2, []]);
  });

  it("names where module arguments that are not JSON, or nest too deeply, came from", async () => {
    process.env[DEPLOY_ENV.moduleArgsJson] = "{peers: 1}";
    const notJson = await cli(["deploy", ...target, "--config", "c.nix"]);
    expect(notJson.stderr).toMatch(/^cdktf-nixos: the module arguments in \$CDKTF_NIXOS_ARGS_JSON are not JSON: .*\n$/);
    process.env[DEPLOY_ENV.moduleArgsJson] = `{"a": ${"[".repeat(5000)}${"]".repeat(5000)}}`;
    const deep = await cli(["deploy", ...target, "--config", "c.nix"]);
    expect(deep.stderr).toBe("cdktf-nixos: the module arguments in $CDKTF_NIXOS_ARGS_JSON: a value is nested more than 64 levels deep\n");
    expect([deep.code, deep.calls]).toEqual([2, []]);
  });
});

describe("cdktf-nixos deploy: every phase's failure has its exit code", () => {
  it("0: deployed, with the result as JSON on stdout and progress on stderr", async () => {
    const run = await cli(["deploy", ...target, "--toplevel", NEW, "--json"]);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({ host: "root@198.51.100.7:22", newSystem: NEW, newGeneration: 5, previousGeneration: 4 });
    expect(run.stderr).toContain(`switch: ${NEW} is generation 5 (was 4)`);
  });

  it("3: the host cannot be reached", async () => {
    const run = await cli(["deploy", ...target, "--toplevel", NEW], healthyHost(), {
      connect: async () => {
        throw new ConnectError("cannot reach root@198.51.100.7:22: connect ECONNREFUSED", { hint: "check that the host is up" });
      },
    });
    expect(run.code).toBe(3);
    expect(run.stderr).toContain("cdktf-nixos: connect failed: cannot reach root@198.51.100.7:22: connect ECONNREFUSED\n  hint: check that the host is up");
  });

  it("4: the build fails", async () => {
    const run = await cli(["deploy", ...target, "--toplevel", NEW], healthyHost(), {
      build: async () => {
        const { BuildError } = await import("../../src/errors");
        throw new BuildError("nix-store failed: build of '/nix/store/x.drv' failed", { command: `nix-store --realise ${NEW}` });
      },
    });
    expect(run.code).toBe(4);
    expect(run.stderr).toContain(`build failed: nix-store failed: build of '/nix/store/x.drv' failed\n  command: nix-store --realise ${NEW}`);
  });

  it("5: the copy fails", async () => {
    const host = healthyHost();
    const { ServeError } = await import("../../src/nix/serve/session");
    host.copyFailure = new ServeError("adding /nix/store/x failed: disk full", "ssh root@198.51.100.7:22 nix-store --serve --write", "error: disk full\n");
    const run = await cli(["deploy", ...target, "--toplevel", NEW], host);
    expect(run.code).toBe(5);
    expect(run.stderr).toContain("copy failed: adding /nix/store/x failed: disk full");
  });

  it("6: activation fails and is rolled back; --no-rollback leaves the host", async () => {
    const failedAndRolledBack = () => healthyHost([[READ_STATE, { stdout: activationState({ status: "1", rolledBack: "0", done: true }) }]]);
    const rolled = await cli(["deploy", ...target, "--toplevel", NEW], failedAndRolledBack());
    expect(rolled.code).toBe(6);
    expect(rolled.stderr).toContain("was rolled back to");
    const left = await cli(["deploy", ...target, "--toplevel", NEW, "--no-rollback"],
      healthyHost([[READ_STATE, { stdout: activationState({ status: "1", done: true }) }]]));
    expect(left.code).toBe(6);
    expect(left.stderr).toContain("was left as it is (--no-rollback)");
  });

  it("7: the confirmation does not get through", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ status: "0" }) }]]);
    host.reconnectFailure = new ConnectError("cannot reach root@198.51.100.7:22");
    const run = await cli(["deploy", ...target, "--toplevel", NEW, "--confirm-timeout", "5"], host);
    expect(run.code).toBe(7);
    expect(run.stderr).toContain("did not take a new SSH connection after 'switch'");
  });

  it("8: the rollback fails too", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ status: "1", rolledBack: "1", done: true }) }]]);
    const run = await cli(["deploy", ...target, "--toplevel", NEW], host);
    expect(run.code).toBe(8);
    expect(run.stderr).toContain("rollback failed: 'switch' of");
  });

  it("9: another deployment holds the host's lock", async () => {
    const host = healthyHost([[READ_STATE, { stdout: activationState({ started: false, lockWait: "ci pid 7", status: "locked", done: true }) }]]);
    const run = await cli(["deploy", ...target, "--toplevel", NEW, "--lock-timeout", "0"], host);
    expect(run.code).toBe(9);
    expect(run.stderr).toContain("lock failed: root@198.51.100.7:22 is locked by another deployment (ci pid 7)");
  });

  it("10: the host cannot be reached again during activation", async () => {
    const host = healthyHost([[READ_STATE, new TransportError("the connection was lost")]]);
    host.reconnectFailure = new ConnectError("cannot reach root@198.51.100.7:22");
    const run = await cli(["deploy", ...target, "--toplevel", NEW, "--json"], host);
    expect(run.code).toBe(10);
    expect(JSON.parse(run.stdout.trim().split("\n").at(-1)!)).toMatchObject({
      ok: false, error: { phase: "activate", exitCode: 10 },
    });
  });

  it("--json prints the failure with the host's state too", async () => {
    const host = healthyHost([
      [READ_STATE, { stdout: activationState({ status: "1", rolledBack: "0", done: true }) }],
      [INSPECT_COMMAND, states({ stdout: inspection() })],
    ]);
    const run = await cli(["deploy", ...target, "--toplevel", NEW, "--json"], host);
    expect(run.code).toBe(6);
    expect(JSON.parse(run.stdout)).toEqual({
      ok: false,
      error: {
        phase: "activate", exitCode: 6, command: `${NEW}/bin/switch-to-configuration switch`,
        message: `'switch' of ${NEW} on root@198.51.100.7:22 exited with code 1; root@198.51.100.7:22 was rolled back to ${OLD}`,
        hint: expect.stringMatching(/^the activation's whole log is \/run\/cdktf-nixos\/[0-9a-f]{12}\.log on root@198\.51\.100\.7:22$/),
      },
      hostState: { system: "x86_64-linux", nix: true, nixos: true, systemd: false, currentSystem: OLD, profileGeneration: 4, profileSystem: OLD },
    });
  });
});

