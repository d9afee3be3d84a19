import { execFileSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cdktfNixos, type CliResult } from "../harness/cli";
import { NIXPKGS_LITE } from "../harness/fixture";
import { hostSideAddress } from "../harness/host-util";
import { missing } from "../harness/requirements";
import { startS3Server, type S3Server } from "../harness/s3-server";
import { run, startTargets, type TargetHost, type TargetWorld } from "../harness/target-hosts";
import { terraform } from "../harness/terraform";

const ROOT = join(__dirname, "..", "..");
const NAMES = ["h1", "h2", "h3", "h4", "h5", "h6"] as const;
type Name = (typeof NAMES)[number];
const BUCKET = "fleet-cache";
const WRONG_KEY_BUCKET = "wrong-key-cache";

/** Every host shares a versioned `tool` (so hosts share paths) and has a motd of its own. */
function configuration(name: Name, version: string): string {
  return `{ config, pkgs, ... }:
let tool = pkgs.writeTextFile { name = "tool-${version}"; destination = "/bin/tool"; executable = true; text = "#!/bin/sh\\necho tool ${version}\\n"; };
in {
  networking.hostName = "${name}";
  environment.etc."motd".text = "${name} ${version}\\n";
  environment.systemPackages = [ tool ];
  system.stateVersion = "25.05";
}
`;
}

type JsonHost = {
  name: string; status: string; newSystem?: string; pathsCopied?: number; pathsToSend?: number;
  cacheFetch?: { substituter: string; pathsFetched: number; downloadBytes: number; fellBack?: string };
  cache?: { substituter: string; uploadedFirst: number };
};
type JsonCache = { cache: string; pathsInClosure: number; pathsUploaded: number; narBytes: number; fileBytes: number; dryRun?: boolean };

/**
 * Pushes through a binary cache: the deploying machine uploads through the real S3 API (AWS SDK → s3rver), six
 * hosts fetch from the same objects over http:// (Debian's Nix 2.8 has no s3:// store) with their signatures checked.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "terraform"))("push through a binary cache", () => {
  let work: string;
  let world: TargetWorld;
  let s3: S3Server;
  let keys: string;
  const stackDir = () => join(work, "cdktf.out", "stacks", "cached");
  const env = () => ({ NIX_CONFIG: "substituters =", CHECKPOINT_DISABLE: "1", PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`, ...s3.env });
  const cli = async (command: string, ...args: string[]): Promise<CliResult> => {
    const result = await cdktfNixos([command, "--project", work, ...args], env());
    // CACHE_TRANSCRIPT=FILE keeps what each command printed (the README's transcript comes from there)
    if (process.env.CACHE_TRANSCRIPT) appendFileSync(process.env.CACHE_TRANSCRIPT, `$ cdktf-nixos ${[command, ...args].join(" ")}\n${result.stderr}${result.stdout}[exit ${result.code}]\n`);
    return result;
  };
  const host = (name: Name): TargetHost => world.hosts[NAMES.indexOf(name)]!;
  const running = async (name: Name) => (await host(name).exec("readlink -f /run/current-system")).stdout.trim();
  const writeAll = (version: string) => {
    for (const name of NAMES) writeFileSync(join(work, "nixos", `${name}.nix`), configuration(name, version));
  };
  const hosts = (result: CliResult) => new Map(((result.json?.hosts ?? []) as JsonHost[]).map((h) => [h.name, h]));
  const slotOf = (target: TargetHost) => (Number(target.address.split(".")[3]) - 2) / 4;
  const cacheAddress = () => hostSideAddress(slotOf(world.hosts[0]!));
  const cacheFlags = (bucket = BUCKET, key = "a.secret") => [
    "--cache", `s3://${bucket}?region=us-east-1&endpoint=${s3.endpoint}`,
    "--cache-substituter", `${s3.endpoint}/${bucket}`,
    "--cache-signing-key", join(keys, key),
  ];
  const writeMain = (binaryCache?: { url: string; publicKey: string; substituter: string; signingKeyFile: string }) => {
    const stackHosts = NAMES.map((name, i) => ({ name, address: world.hosts[i]!.address }));
    writeFileSync(join(work, "main.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { SixHostsStack } from ${JSON.stringify(join(__dirname, "six-hosts-stack"))};
const app = new App();
new SixHostsStack(app, "cached", { nixosDir: ${JSON.stringify(join(work, "nixos"))}, nixpkgs: ${JSON.stringify(NIXPKGS_LITE)}, hosts: ${JSON.stringify(stackHosts)},
  sshPrivateKeyFile: ${JSON.stringify(world.clientKeyFile)}, knownHostsFile: ${JSON.stringify(world.knownHostsFile)}, deployment: { confirmTimeoutSeconds: 0 },
  binaryCache: ${JSON.stringify(binaryCache)} });
app.synth();
`);
  };
  const synth = async () => {
    const result = await run(join(ROOT, "node_modules", ".bin", "cdktf"), ["synth"], { cwd: work, env: { ...process.env, ...env() } as Record<string, string>, check: false });
    if (result.exitCode !== 0) throw new Error(`synth failed:\n${result.stdout}\n${result.stderr}`);
  };
  /** The requests the server answered while `step` ran. */
  const during = async <T>(step: () => Promise<T>) => {
    const first = s3.requests.length;
    const result = await step();
    return { result, requests: s3.requests.slice(first) };
  };

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    // the six hosts, and a seventh machine as the build host
    world = await startTargets(NAMES.length + 1);
    // the cache listens on the machine's side of h1's link; every other host reaches it through a route via its own
    s3 = await startS3Server(cacheAddress(), [BUCKET, WRONG_KEY_BUCKET]);
    for (const target of world.hosts.slice(1)) await target.exec(`ip route add default via ${hostSideAddress(slotOf(target))}`);
    keys = mkdtempSync(join(tmpdir(), "cache-keys-"));
    for (const name of ["a", "b"]) await run("nix-store", ["--generate-binary-cache-key", `test-cache-${name}`, join(keys, `${name}.secret`), join(keys, `${name}.public`)]);
    work = mkdtempSync(join(tmpdir(), "cached-"));
    mkdirSync(join(work, "nixos"));
    writeAll("v1");
    writeFileSync(join(work, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "cache-test", sendCrashReports: "false" }));
    writeMain();
    await synth();
    await terraform(stackDir(), ["init", "-input=false", "-no-color"], env());
    await terraform(stackDir(), ["apply", "-auto-approve", "-input=false", "-no-color"], env());
  });
  afterAll(async () => {
    await s3?.stop();
    await world?.stop();
    for (const dir of [work, keys]) if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it("push --cache s3://…: the dry run says what the cache lacks; the push uploads each missing path exactly once, and every host fetches its whole closure from the cache, signatures checked", async () => {
    writeAll("v2");
    const dry = await during(() => cli("push", ...cacheFlags(), "--dry-run", "--json"));
    expect(dry.result.code, dry.result.stderr).toBe(0);
    const [lacking] = dry.result.json?.caches as JsonCache[];
    expect(lacking).toMatchObject({ dryRun: true });
    expect(lacking!.pathsUploaded).toBeGreaterThan(NAMES.length);
    expect(dry.requests.filter((r) => r.method === "PUT")).toEqual([]);
    for (const name of NAMES) expect(hosts(dry.result).get(name)).toMatchObject({ status: "would-deploy", cache: { substituter: `${s3.endpoint}/${BUCKET}` } });

    const pushed = await during(() => cli("push", ...cacheFlags(), "--json"));
    expect(pushed.result.code, pushed.result.stderr).toBe(0);
    const [uploaded] = pushed.result.json?.caches as JsonCache[];
    expect(uploaded!.pathsUploaded).toBe(lacking!.pathsUploaded);
    // exactly once: one PUT per object, one narinfo per path the cache lacked, a NAR for each (paths with equal
    // contents share one NAR, stored under its hash), and the cache's info file
    const puts = pushed.requests.filter((r) => r.method === "PUT").map((r) => r.path);
    expect(new Set(puts).size).toBe(puts.length);
    expect(puts.filter((p) => p.endsWith(".narinfo"))).toHaveLength(uploaded!.pathsUploaded);
    const nars = puts.filter((p) => p.endsWith(".nar.zst")).length;
    expect(nars).toBeGreaterThan(uploaded!.pathsUploaded / 2);
    expect(nars).toBeLessThanOrEqual(uploaded!.pathsUploaded);
    expect(puts.filter((p) => p.endsWith("/nix-cache-info"))).toHaveLength(1);
    // every PUT came from this machine; every host read the cache itself
    const report = hosts(pushed.result);
    for (const [i, name] of NAMES.entries()) {
      const outcome = report.get(name)!;
      expect(outcome.status).toBe("deployed");
      expect(outcome.cacheFetch?.pathsFetched).toBeGreaterThan(0);
      expect(outcome.cacheFetch?.fellBack).toBeUndefined();
      expect(outcome.pathsCopied).toBe(0);
      expect(await running(name)).toBe(outcome.newSystem);
      expect(pushed.requests.some((r) => r.method === "GET" && r.from === world.hosts[i]!.address && r.path.endsWith(".nar.zst"))).toBe(true);
      // Nix recorded the cache's signature with each path it took from there
      const sigs = await host(name).exec(`nix --extra-experimental-features nix-command path-info --sigs ${outcome.newSystem}`);
      expect(sigs.stdout).toContain(`${readFileSync(join(keys, "a.public"), "utf8").split(":")[0]}:`);
    }
    expect(pushed.result.stderr).toMatch(/binary cache s3:\/\/fleet-cache.*: uploaded \d+ of \d+ paths once/);
  });

  it("a re-push uploads nothing; a push of a change uploads only the changed paths", async () => {
    const again = await during(() => cli("push", ...cacheFlags(), "--json"));
    expect(again.result.code, again.result.stderr).toBe(0);
    expect(again.requests.filter((r) => r.method === "PUT")).toEqual([]);
    expect((again.result.json?.caches as JsonCache[])[0]!.pathsUploaded).toBe(0);
    for (const name of NAMES) expect(hosts(again.result).get(name)?.status).toBe("up-to-date");

    writeFileSync(join(work, "nixos", "h3.nix"), configuration("h3", "v2b"));
    const one = await during(() => cli("push", ...cacheFlags(), "--json"));
    expect(one.result.code, one.result.stderr).toBe(0);
    const changed = (one.result.json?.caches as JsonCache[])[0]!;
    // h3's new tool, its etc and its system (a few paths), not the fleet's closures again
    expect(changed.pathsUploaded).toBeGreaterThan(0);
    expect(changed.pathsUploaded).toBeLessThan(changed.pathsInClosure / 3);
    expect(hosts(one.result).get("h3")).toMatchObject({ status: "deployed", pathsCopied: 0 });
  });

  it("a host that cannot reach the cache gets its closure copied directly, and the push says why", async () => {
    const h6 = host("h6");
    await h6.exec("ip route del default");
    try {
      writeAll("v3");
      const pushed = await cli("push", ...cacheFlags(), "--json");
      expect(pushed.code, pushed.stderr).toBe(0);
      const report = hosts(pushed);
      expect(report.get("h6")).toMatchObject({ status: "deployed", cacheFetch: { pathsFetched: 0 } });
      expect(report.get("h6")!.cacheFetch!.fellBack).toMatch(/unable to download|Couldn't connect|Network is unreachable|connect/i);
      expect(report.get("h6")!.pathsCopied).toBeGreaterThan(0);
      expect(pushed.stderr).toMatch(/\[h6\] .*could not fetch everything from http:\/\/.*: copying the rest directly/);
      expect(await running("h6")).toBe(report.get("h6")!.newSystem);
      for (const name of NAMES.slice(0, 5)) expect(report.get(name)).toMatchObject({ status: "deployed", pathsCopied: 0 });
    } finally {
      await h6.exec(`ip route add default via ${hostSideAddress(slotOf(h6))}`);
    }
  });

  it("a cache signed with a key the hosts do not trust is refused by Nix on every host, with Nix's message; the closures are copied directly", async () => {
    writeAll("v4");
    const trusted = readFileSync(join(keys, "a.public"), "utf8").trim();
    const pushed = await cli("push", ...cacheFlags(WRONG_KEY_BUCKET, "b.secret"), "--cache-public-key", trusted, "--json");
    expect(pushed.code, pushed.stderr).toBe(0);
    for (const name of NAMES) {
      const outcome = hosts(pushed).get(name)!;
      expect(outcome.status).toBe("deployed");
      expect(outcome.cacheFetch?.pathsFetched).toBe(0);
      expect(outcome.cacheFetch?.fellBack).toMatch(/the substitute for '.*' from 'http:\/\/.*' is not signed by any of the keys in 'trusted-public-keys'/);
      expect(outcome.pathsCopied).toBeGreaterThan(0);
      expect(await running(name)).toBe(outcome.newSystem);
    }
  });

  it("push --build-host: the build host builds systems this machine never realises, and the hosts run them (copied from its store, or through the cache)", async () => {
    const builder = world.hosts[NAMES.length]!;
    const notHere = async (path: string) => (await run("nix-store", ["--check-validity", path], { check: false })).exitCode !== 0;
    for (const through of ["direct", "cache"] as const) {
      writeAll(`built-${through}-${randomBytes(4).toString("hex")}`);
      const pushed = await during(() => cli("push", "--build-host", `root@${builder.address}`, ...(through === "cache" ? cacheFlags() : []), "--json"));
      expect(pushed.result.code, pushed.result.stderr).toBe(0);
      expect(pushed.result.stderr).toContain(`building h1, h2, h3, h4, h5, h6 on the build host root@${builder.address}:22`);
      for (const name of NAMES) {
        const outcome = hosts(pushed.result).get(name)!;
        expect(outcome.status).toBe("deployed");
        expect(await running(name)).toBe(outcome.newSystem);
        expect((await builder.exec(`nix-store --check-validity ${outcome.newSystem}`)).exitCode).toBe(0);
        // built there, never here
        expect(await notHere(outcome.newSystem!)).toBe(true);
        if (through === "cache") expect([outcome.pathsCopied, outcome.cacheFetch!.pathsFetched > 0]).toEqual([0, true]);
        else expect(outcome.pathsCopied).toBeGreaterThan(0);
      }
      if (through === "cache") expect(pushed.requests.filter((r) => r.method === "PUT" && r.path.endsWith(".narinfo")).length).toBeGreaterThan(0);
    }
  });

  it("cdktf deploy of NixosDeployments with a binaryCache: each host's deployment uploads what the cache lacks and the host fetches its closure from there", async () => {
    writeAll("v6");
    writeMain({ url: `s3://${BUCKET}?region=us-east-1&endpoint=${s3.endpoint}`, publicKey: readFileSync(join(keys, "a.public"), "utf8").trim(), substituter: `${s3.endpoint}/${BUCKET}`, signingKeyFile: join(keys, "a.secret") });
    await synth();
    const applied = await during(() => terraform(stackDir(), ["apply", "-auto-approve", "-input=false", "-no-color"], env()));
    const status = await cli("status", "--json");
    expect(status.code, status.stderr).toBe(0);
    for (const [i, name] of NAMES.entries()) {
      const declared = ((status.json?.hosts ?? []) as Array<{ name: string; runningSystem: string }>).find((h) => h.name === name)!.runningSystem;
      expect(await running(name)).toBe(declared);
      // the host read its new system from the cache itself
      expect(applied.requests.some((r) => r.method === "GET" && r.from === world.hosts[i]!.address && r.path.endsWith(".narinfo"))).toBe(true);
    }
    // the six deployments ran at once: a path two of them lacked may go up twice, but only paths the cache lacked did
    const narinfos = applied.requests.filter((r) => r.method === "PUT" && r.path.endsWith(".narinfo")).map((r) => r.path);
    expect(narinfos.length).toBeGreaterThan(0);
    expect(applied.result.stdout).toMatch(/fetched \d+ paths?( \(.*\))? from http:\/\//);
    // the secret key stays in its file: not in the synthesized stack, Terraform's state or what the deployments printed
    const secret = readFileSync(join(keys, "a.secret"), "utf8").split(":")[1]!;
    for (const text of [readFileSync(join(stackDir(), "cdk.tf.json"), "utf8"), readFileSync(join(work, "terraform.cached.tfstate"), "utf8"), applied.result.stdout, applied.result.stderr]) {
      expect(text).not.toContain(secret);
    }
  });

  it("push --cache file:///DIR: the same format in a directory, which hosts read as a file:// cache", async () => {
    const dir = mkdtempSync(join(tmpdir(), "file-cache-"));
    try {
      writeAll("v5");
      const pushed = await cli("push", "--cache", `file://${dir}`, "--cache-signing-key", join(keys, "a.secret"), "--json");
      expect(pushed.code, pushed.stderr).toBe(0);
      expect(readFileSync(join(dir, "nix-cache-info"), "utf8")).toContain("StoreDir: /nix/store");
      for (const name of NAMES) expect(hosts(pushed).get(name)).toMatchObject({ status: "deployed", pathsCopied: 0 });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
