import { randomBytes } from "node:crypto";
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedLink, startLatencyProxy, type LatencyProxy } from "../../harness/latency-proxy";
import { SshConnection } from "../../../src/deploy/ssh/connection";
import { SshHost } from "../../../src/deploy/ssh/ssh-host";
import { TransportError } from "../../../src/errors";
import { missing } from "../../harness/requirements";
import { startTargets, type TargetWorld } from "../../harness/target-hosts";

/** Root login to the world's first target with the world's key and known_hosts. */
function sshOptions(world: TargetWorld) {
  return {
    host: world.hosts[0].address,
    port: 22,
    user: "root",
    privateKeyFile: world.clientKeyFile,
    knownHostsFile: world.knownHostsFile,
  };
}

describe.skipIf(missing("root", "sshd", "netns"))("SSH connection retries while a host is unreachable", () => {
  let world: TargetWorld;
  const options = () => sshOptions(world);

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

describe.skipIf(missing("root", "sshd", "netns"))("SshHost: the transport seam over a real sshd", () => {
  let world: TargetWorld;
  const options = () => sshOptions(world);

  beforeAll(async () => {
    world = await startTargets(1);
  });
  afterAll(() => world?.stop());

  it("streams stdin into the remote process, never onto its command line", async () => {
    const host = await SshHost.connect(options());
    try {
      const secret = "canary-4f1d\nsecond line\n";
      const result = await host.run("umask 077; cat > /run/stdin-test; cat /proc/$$/cmdline | tr '\\0' ' '", { stdin: Buffer.from(secret) });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout).not.toContain("canary");
      expect((await world.hosts[0].exec("cat /run/stdin-test; rm /run/stdin-test")).stdout).toBe(secret);
    } finally {
      await host.close();
    }
  });

  it("readFile streams exactly a range of a file (a name with a space and a quote too); a short file or a missing one fails, naming it", async () => {
    const host = await SshHost.connect(options());
    const read = async (stream: NodeJS.ReadableStream) => {
      const chunks: Buffer[] = [];
      for await (const chunk of stream) chunks.push(chunk as Buffer);
      return Buffer.concat(chunks);
    };
    try {
      const content = randomBytes(3 * 1024 * 1024 + 17);
      const path = "/root/an image's file.vhd";
      writeFileSync(join(world.hosts[0].storeDir, "..", "root", "an image's file.vhd"), content);
      expect((await read(await host.readFile(path, { start: 0, length: content.length }))).equals(content)).toBe(true);
      expect((await read(await host.readFile(path, { start: 1_000_003, length: 65_536 }))).equals(content.subarray(1_000_003, 1_000_003 + 65_536))).toBe(true);
      await expect(read(await host.readFile(path, { start: content.length - 10, length: 20 })))
        .rejects.toThrow(`reading ${path} (bytes ${content.length - 10}-${content.length + 9}) on ${host.name}: 10 of 20 bytes arrived, exit 0`);
      await expect(read(await host.readFile("/root/missing.vhd", { start: 0, length: 5 }))).rejects.toThrow(/0 of 5 bytes arrived, exit 0: tail: cannot open/);
      // the connection serves on after a failed read
      expect((await host.run("echo still")).stdout).toBe("still\n");
    } finally {
      await host.close();
    }
  });

  it("reports a command's exit code, 128 + n for one killed by a signal", async () => {
    const host = await SshHost.connect(options());
    try {
      expect((await host.run("exit 3")).exitCode).toBe(3);
      expect((await host.run("kill -TERM $$")).exitCode).toBe(128 + 15);
    } finally {
      await host.close();
    }
  });

  it("rejects with a TransportError when the connection dies under a command, and a reconnection works", async () => {
    const host = await SshHost.connect(options());
    try {
      // the shell's parent is the sshd process serving this connection
      await expect(host.run("kill -KILL $PPID; sleep 10")).rejects.toBeInstanceOf(TransportError);
      await expect(host.run("true")).rejects.toBeInstanceOf(TransportError);
      const again = await host.reconnect({ retryForMs: 5_000 });
      try {
        expect((await again.run("echo back")).stdout).toBe("back\n");
      } finally {
        await again.close();
      }
    } finally {
      await host.close();
    }
  });
});

describe.skipIf(missing("root", "sshd", "netns"))("a connection over a saturated uplink", () => {
  let world: TargetWorld;
  let proxy: LatencyProxy;
  let knownHosts: string;

  beforeAll(async () => {
    world = await startTargets(1);
    const target = world.hosts[0]!;
    // a slow uplink: what the client sends waits behind everything it sent before
    proxy = await startLatencyProxy({ target: { host: target.address, port: target.port }, delayMs: 5, uplink: sharedLink(512 * 1024) });
    knownHosts = `${world.knownHostsFile}.proxy`;
    writeFileSync(knownHosts, `[127.0.0.1]:${proxy.port} ${target.hostKey}\n`);
  });
  afterAll(async () => {
    await proxy?.close();
    await world?.stop();
  });

  it("stays up while the host keeps answering, though its keepalive replies wait behind the upload (as OpenSSH counts them)", async () => {
    // keepalives every 0.5 s, three unanswered allowed: the 2 MiB the channel's window lets through take 4 s to go up
    const host = await SshHost.connect({ host: "127.0.0.1", port: proxy.port, user: "root", privateKeyFile: world.clientKeyFile, knownHostsFile: knownHosts, keepaliveIntervalMs: 500 });
    try {
      const result = await host.run("while sleep 0.2; do echo .; done & cat > /dev/null; kill $!; echo done", { stdin: randomBytes(3 * 1024 * 1024) });
      expect(result.exitCode, result.stderr).toBe(0);
      expect(result.stdout.endsWith("done\n")).toBe(true);
    } finally {
      await host.close();
    }
  });
});
