import { describe, expect, it } from "vitest";
import { cacheFetchCommand, parseCacheFetch, uploadClosure } from "../../src/deploy/cache";
import { cacheSpecOf } from "../../src/spec/cache";
import { DEFAULT_SETTINGS } from "../../src/spec/settings";
import { CopyError } from "../../src/errors";
import { deploy, type DeployEvent } from "../../src/deploy/deploy";
import { INSPECT_COMMAND } from "../../src/deploy/inspection";
import { ARRIVED, NEW, fakeDependencies, healthyHost } from "./fake-host";

const SYSTEM = "/nix/store/7dlgxz57s50dzmgmjpazf9639k1gx417-nixos-system-h1-24.05.lite";
const KEY = `cache-1:${Buffer.alloc(32, 1).toString("base64")}`;

describe("fetching from a binary cache on the host", () => {
  it("realises the system with the cache as an extra substituter and its key trusted, for this command only", () => {
    expect(cacheFetchCommand(SYSTEM, "http://10.0.0.1:9000/fleet", KEY, false)).toBe(
      `out=$(nix-store --realise --keep-going --option extra-substituters http://10.0.0.1:9000/fleet --option extra-trusted-public-keys ${KEY} ` +
        `--option narinfo-cache-negative-ttl 0 ${SYSTEM} 2>&1 >/dev/null); code=$?; printf '%s\\n' "$out" | tail -c 65536 >&2; exit $code`,
    );
    expect(cacheFetchCommand(SYSTEM, "s3://fleet?region=eu-west-1", KEY, true)).toMatch(/^out=\$\(sudo -n nix-store --realise .* 's3:\/\/fleet\?region=eu-west-1' /);
  });

  it("reads what Nix fetched and the download size it announced", () => {
    const stderr = [
      "these 3 paths will be fetched (0.02 MiB download, 0.07 MiB unpacked):",
      "  /nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-tool-2.0",
      `copying path '/nix/store/aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa-tool-2.0' from 'http://10.0.0.1:9000/fleet'...`,
      `copying path '/nix/store/bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb-etc' from 'http://10.0.0.1:9000/fleet'...`,
      `copying path '${SYSTEM}' from 'http://10.0.0.1:9000/fleet'...`,
    ].join("\n");
    expect(parseCacheFetch("http://10.0.0.1:9000/fleet", 0, stderr)).toEqual({
      substituter: "http://10.0.0.1:9000/fleet", pathsFetched: 3, downloadBytes: Math.round(0.02 * 1024 * 1024),
    });
  });

  it("says why the cache fell short, in Nix's words (each line once)", () => {
    const refused = `warning: the substitute for '${SYSTEM}' from 'http://10.0.0.1:9000/fleet' is not signed by any of the keys in 'trusted-public-keys'`;
    const stderr = [refused, refused, `error: build of '${SYSTEM}' failed`].join("\n");
    expect(parseCacheFetch("http://10.0.0.1:9000/fleet", 1, stderr)).toEqual({
      substituter: "http://10.0.0.1:9000/fleet", pathsFetched: 0, downloadBytes: 0, fellBack: `${refused}; error: build of '${SYSTEM}' failed`,
    });
    expect(parseCacheFetch("http://x", 1, "").fellBack).toBe("nix-store --realise exited with 1");
    const retried = ["warning: error: unable to download 'http://x/a.narinfo': Couldn't connect to server (7); retrying in 349 ms",
      "warning: error: unable to download 'http://x/a.narinfo': Couldn't connect to server (7); retrying in 712 ms"].join("\n");
    expect(parseCacheFetch("http://x", 1, retried).fellBack).toBe("warning: error: unable to download 'http://x/a.narinfo': Couldn't connect to server (7)");
  });
});

describe("uploading a closure", () => {
  const spec = cacheSpecOf({ ...DEFAULT_SETTINGS, cache: "https://cache.example.com", cachePushCommand: "cachix push fleet", cachePublicKey: KEY })!;

  it("hands the roots to the push command as its arguments and opens no store", async () => {
    const ran: Array<[string, readonly string[]]> = [];
    const report = await uploadClosure(spec, [SYSTEM], () => Promise.reject(new Error("no store")), { runPushCommand: async (command, paths) => void ran.push([command, paths]) });
    expect(ran).toEqual([["cachix push fleet", [SYSTEM]]]);
    expect(report).toMatchObject({ cache: "https://cache.example.com", byPushCommand: true });
  });

  it("a dry run runs no push command", async () => {
    const ran: string[] = [];
    const report = await uploadClosure(spec, [SYSTEM], () => Promise.reject(new Error("no store")), { dryRun: true, runPushCommand: async (command) => void ran.push(command) });
    expect([ran, report.dryRun]).toEqual([[], true]);
  });

  it("a failing push command is the copy's failure, with its output", async () => {
    const real = cacheSpecOf({ ...DEFAULT_SETTINGS, cache: "https://cache.example.com", cachePushCommand: "echo 'cachix: unauthorized' >&2; exit 3;", cachePublicKey: KEY })!;
    const failed = uploadClosure(real, [SYSTEM], () => Promise.reject(new Error("no store")));
    await expect(failed).rejects.toThrow(CopyError);
    await expect(failed).rejects.toThrow(/uploading to the binary cache https:\/\/cache.example.com failed: --cache-push-command '.*' exited with 3: cachix: unauthorized/);
  });
});

describe("a deployment through a cache, over the Host seam", () => {
  const spec = cacheSpecOf({ ...DEFAULT_SETTINGS, cache: "https://cache.example.com", cachePushCommand: "cachix push fleet", cachePublicKey: KEY })!;
  const fetch = cacheFetchCommand(NEW, "https://cache.example.com", KEY, false);

  it("uploads, lets the host fetch, then copies only what it still lacks; a fetch that falls short is said once, with Nix's reason", async () => {
    const host = healthyHost([[fetch, { exitCode: 1, stderr: "warning: error: unable to download 'https://cache.example.com/x.narinfo': Couldn't resolve host name (6)\n" }]]);
    const pushed: string[] = [];
    const world = fakeDependencies(host, { runPushCommand: async (command, paths) => void pushed.push(`${command} ${paths.join(" ")}`) });
    const events: DeployEvent[] = [];
    const result = await deploy({
      source: { kind: "toplevel", path: NEW }, target: { host: "198.51.100.7", knownHostsFile: "/dev/null" }, cache: spec, onEvent: (e) => events.push(e),
    }, world.deps);
    expect(pushed).toEqual([`cachix push fleet ${NEW}`]);
    expect(host.log.slice(0, 4)).toEqual([INSPECT_COMMAND, fetch, `copy ${NEW}`, ARRIVED]);
    expect(result.cacheFetch).toEqual({
      substituter: "https://cache.example.com", pathsFetched: 0, downloadBytes: 0,
      fellBack: "warning: error: unable to download 'https://cache.example.com/x.narinfo': Couldn't resolve host name (6)",
    });
    expect(events.filter((e) => e.type === "notice").map((e) => (e as { message: string }).message)).toEqual([
      "root@198.51.100.7:22 could not fetch everything from https://cache.example.com (warning: error: unable to download " +
        "'https://cache.example.com/x.narinfo': Couldn't resolve host name (6)): copying the rest directly",
    ]);
  });
});
