import { randomBytes } from "node:crypto";
import net from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { sharedLink, startLatencyProxy, type LatencyProxy } from "./latency-proxy";
import { missing } from "./requirements";
import { run, startTargets, type TargetWorld } from "./target-hosts";

const DELAY_MS = 40;

describe("latency proxy", () => {
  let echo: net.Server;
  let proxy: LatencyProxy;

  beforeAll(async () => {
    echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    proxy = await startLatencyProxy({
      target: { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port },
      delayMs: DELAY_MS,
    });
  });
  afterAll(async () => {
    await proxy?.close();
    echo?.close();
  });

  it("adds at least the delay in each direction to every round trip", async () => {
    const socket = net.connect(proxy.port, proxy.host);
    await new Promise((resolve) => socket.once("connect", resolve));
    for (let i = 0; i < 3; i++) {
      const started = performance.now();
      socket.write(`ping ${i}`);
      const reply = await new Promise<Buffer>((resolve) => socket.once("data", resolve));
      expect(reply.toString()).toBe(`ping ${i}`);
      expect(performance.now() - started).toBeGreaterThanOrEqual(2 * DELAY_MS);
    }
    socket.destroy();
  });

  it("delivers a large stream intact and in order, including after the client half-closes", async () => {
    const data = randomBytes(16 * 1024 * 1024);
    const socket = net.connect(proxy.port, proxy.host);
    const chunks: Buffer[] = [];
    socket.on("data", (chunk: Buffer) => chunks.push(chunk));
    const closed = new Promise((resolve) => socket.once("close", resolve));
    socket.end(data);
    await closed;
    expect(Buffer.concat(chunks).equals(data)).toBe(true);
  });
});

describe("latency proxy with a rate limit", () => {
  it("carries no more than bytesPerSecond each way", async () => {
    const echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const rate = 8 * 1024 * 1024;
    const proxy = await startLatencyProxy({ target: { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port }, delayMs: 5, bytesPerSecond: rate });
    try {
      const data = randomBytes(4 * 1024 * 1024);
      const socket = net.connect(proxy.port, proxy.host);
      const chunks: Buffer[] = [];
      socket.on("data", (chunk: Buffer) => chunks.push(chunk));
      const closed = new Promise((resolve) => socket.once("close", resolve));
      const started = performance.now();
      socket.end(data);
      await closed;
      const seconds = (performance.now() - started) / 1000;
      expect(Buffer.concat(chunks).equals(data)).toBe(true);
      // there and back pipelined: at least one pass of the data over the limited link
      expect(seconds).toBeGreaterThanOrEqual(data.length / rate);
      expect(seconds).toBeLessThan((3 * data.length) / rate + 2);
    } finally {
      await proxy.close();
      echo.close();
    }
  });
});

describe("latency proxies sharing one uplink", () => {
  it("send what all of them carry up through the one link, and count each one's bytes each way", async () => {
    const echo = net.createServer({ allowHalfOpen: true }, (socket) => socket.pipe(socket));
    await new Promise<void>((resolve) => echo.listen(0, "127.0.0.1", resolve));
    const rate = 8 * 1024 * 1024;
    const uplink = sharedLink(rate);
    const target = { host: "127.0.0.1", port: (echo.address() as net.AddressInfo).port };
    const proxies = [await startLatencyProxy({ target, delayMs: 1, uplink }), await startLatencyProxy({ target, delayMs: 1, uplink })];
    try {
      const data = randomBytes(4 * 1024 * 1024);
      const started = performance.now();
      await Promise.all(proxies.map(async (proxy) => {
        const socket = net.connect(proxy.port, proxy.host);
        let received = 0;
        socket.on("data", (chunk: Buffer) => (received += chunk.length));
        const closed = new Promise((resolve) => socket.once("close", resolve));
        socket.end(data);
        await closed;
        expect(received).toBe(data.length);
      }));
      // both streams went up the one link: together they took at least what the link needs for both
      expect((performance.now() - started) / 1000).toBeGreaterThanOrEqual((2 * data.length) / rate);
      for (const proxy of proxies) expect(proxy.bytes).toEqual({ up: data.length, down: data.length });
    } finally {
      for (const proxy of proxies) await proxy.close();
      echo.close();
    }
  });
});

describe.skipIf(missing("root", "sshd", "netns", "nix"))("latency proxy in front of a target", () => {
  let world: TargetWorld;
  let proxy: LatencyProxy;

  beforeAll(async () => {
    world = await startTargets(1);
    const target = world.hosts[0]!;
    proxy = await startLatencyProxy({ target: { host: target.address, port: target.port }, delayMs: DELAY_MS });
  });
  afterAll(async () => {
    await proxy?.close();
    await world?.stop();
  });

  it("carries an OpenSSH session (host key checked by alias)", async () => {
    const result = await run("ssh", [
      "-F", world.sshConfigFile, "-o", "HostKeyAlias=target1", "-p", String(proxy.port), `root@${proxy.host}`, "hostname",
    ]);
    expect(result.stdout).toBe("target1\n");
  });
});
