import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { SshConnection } from "../../../src/deploy/ssh/connection";
import { missing } from "../../harness/requirements";
import { startTargets, type TargetWorld } from "../../harness/target-hosts";

describe.skipIf(missing("root", "sshd", "netns"))("SSH connection retries while a host is unreachable", () => {
  let world: TargetWorld;
  const options = () => ({
    host: world.hosts[0].address,
    port: 22,
    user: "root",
    privateKeyFile: world.clientKeyFile,
    knownHostsFile: world.knownHostsFile,
  });

  beforeAll(async () => {
    world = await startTargets(1);
  });
  afterAll(() => world?.stop());

  /** Takes the target's network down for `seconds`, like a host that is still booting. */
  const unreachableFor = (seconds: number) =>
    world.hosts[0].exec(`ip link set eth0 down; setsid sh -c 'sleep ${seconds}; ip link set eth0 up' >/dev/null 2>&1 < /dev/null &`);

  it("connects once the host comes up, within the bound", async () => {
    await unreachableFor(2);
    const started = Date.now();
    const connection = await SshConnection.open({ ...options(), retryForMs: 20_000 });
    try {
      // it really waited for the host: the first attempts failed while eth0 was down
      expect(Date.now() - started).toBeGreaterThanOrEqual(1500);
      expect((await connection.exec("echo up")).stdout).toBe("up\n");
    } finally {
      connection.close();
    }
  });

  it("gives up with a clear error when the bound runs out", async () => {
    await unreachableFor(6);
    await expect(SshConnection.open({ ...options(), retryForMs: 2_000 })).rejects.toMatchObject({
      name: "ConnectError",
      message: expect.stringMatching(new RegExp(`^cannot reach root@${world.hosts[0].address.replace(/\./g, "\\.")}:22: `)),
      hint: expect.stringContaining("--connect-timeout"),
    });
  });
});
