import { describe, expect, it } from "vitest";
import { deployRequestOf } from "../../src/spec/request";
import { DEFAULT_SETTINGS, type ResolvedDeploymentSettings } from "../../src/spec/settings";

/** A value other than the default, for every setting. */
const changed: ResolvedDeploymentSettings = {
  user: "deploy", port: 2222, action: "boot", sshPrivateKeyFile: "/k", knownHostsFile: "/kh", acceptNewHostKey: true,
  jumpHost: "bastion:22", sshCompression: true, useSubstitutes: true, cache: "s3://nix-cache?region=eu-west-1",
  cacheSubstituter: "https://cache.example.com", cacheSigningKeyFile: "/cache.key", cachePublicKey: "cache-1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
  cachePushCommand: "cachix push fleet", buildHost: "builder@build.example.com:2222", compress: "zstd", maxChannels: 3, buildOnTarget: true,
  installBootloader: true, rollback: false, allowNonNixos: true, reactivate: true, acceptFailedUnits: true,
  healthChecks: [{ name: "nginx", command: ["systemctl", "is-active", "nginx"], timeoutSeconds: 5, retries: 1, intervalSeconds: 1 }],
  systemdHealthCheck: false, connectTimeoutSeconds: 1, consoleTimeoutSeconds: 2,
  confirmTimeoutSeconds: 3, activationTimeoutSeconds: 4, lockTimeoutSeconds: 5, replyTimeoutSeconds: 6, keepGenerations: 7,
  ec2Endpoint: "http://127.0.0.1:1", keys: [{ name: "k", file: "/f" }], sensitiveArgs: ["a"],
};
/** The cache's settings mean something only with a cache (and a key): each is changed next to one. */
const withCache: Partial<ResolvedDeploymentSettings> = { cache: "s3://base-bucket?region=eu-west-1", cacheSigningKeyFile: "/base.key" };
const beside: Partial<Record<keyof ResolvedDeploymentSettings, Partial<ResolvedDeploymentSettings>>> = {
  cacheSubstituter: withCache, cacheSigningKeyFile: withCache, cachePublicKey: withCache, cachePushCommand: withCache,
};
const applied = { host: "203.0.113.10", instanceId: "i-0123456789abcdef0", region: "eu-central-1" };

describe("deployRequestOf", () => {
  it.each(Object.keys(DEFAULT_SETTINGS) as Array<keyof ResolvedDeploymentSettings>)("carries %s into what the engine runs", (name) => {
    const base = deployRequestOf({ ...DEFAULT_SETTINGS, ...beside[name] }, applied);
    const one = deployRequestOf({ ...DEFAULT_SETTINGS, ...beside[name], ...(name === "cache" ? { cacheSigningKeyFile: "/base.key" } : {}), [name]: changed[name] }, applied);
    expect(one).not.toEqual(base);
  });

  it("takes a command-line override only when it was given", () => {
    const settings = { ...DEFAULT_SETTINGS, connectTimeoutSeconds: 300 };
    expect(deployRequestOf(settings, applied, {}).request.target.connectTimeoutSeconds).toBe(300);
    expect(deployRequestOf(settings, applied, { connectTimeoutSeconds: undefined }).request.target.connectTimeoutSeconds).toBe(300);
    expect(deployRequestOf(settings, applied, { connectTimeoutSeconds: 5 }).request.target.connectTimeoutSeconds).toBe(5);
  });

  it("takes a cache given on the command line with its own settings only, none of the deployment's cache", () => {
    const settings = { ...DEFAULT_SETTINGS, cache: "s3://fleet?region=eu-west-1", cacheSubstituter: "https://cache.example.com", cacheSigningKeyFile: "/fleet.key" };
    const cache = deployRequestOf(settings, applied, { cache: "file:///var/cache/nix", cacheSigningKeyFile: "/local.key" }).request.cache;
    expect(cache).toEqual({ url: "file:///var/cache/nix", substituter: "file:///var/cache/nix", signingKeyFile: "/local.key", publicKey: undefined, pushCommand: undefined });
    expect(deployRequestOf(settings, applied, { cacheSigningKeyFile: "/other.key" }).request.cache?.substituter).toBe("https://cache.example.com");
  });

  it("asks no console without an instance, and no confirmation for 0", () => {
    const mapped = deployRequestOf(DEFAULT_SETTINGS, { host: "h" }).request;
    expect([mapped.target.hostKeyFromEc2Console, mapped.confirmTimeoutSeconds]).toEqual([undefined, undefined]);
  });
});
