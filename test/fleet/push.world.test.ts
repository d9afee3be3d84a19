import { execFileSync, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Terminal } from "@xterm/headless";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/errors";
import { CLI, cdktfNixos, startCdktfNixos, type CliResult } from "../harness/cli";
import { ec2DoubleEnv, hostBootLog } from "../harness/ec2-double/boot-log";
import { NIXOS_IMAGES } from "../harness/ec2-double/nixos-images";
import { startEc2Double, type Ec2Double, type Instance } from "../harness/ec2-double/server";
import { NIXPKGS_LITE } from "../harness/fixture";
import { startProcSweep, type ProcHit } from "../harness/proc-sweep";
import { missing } from "../harness/requirements";
import { run, startTargets, type TargetWorld } from "../harness/target-hosts";
import { terraform, terraformEnv } from "../harness/terraform";

const ROOT = join(__dirname, "..", "..");

function withoutEndpointVariable(env: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(env).filter(([name]) => name !== "AWS_ENDPOINT_URL_EC2"));
}
const HOSTS = ["app", "web1", "web2", "db"] as const;
type HostName = (typeof HOSTS)[number];

/** One host's configuration: a motd and a versioned `tool` package, so closure diffs have a version to show. */
function configuration(name: HostName, motd: string, toolVersion = "1.0"): string {
  const args = name.startsWith("web") ? "appAddress, greeting, " : "";
  return `{ config, pkgs, ${args}... }:
let tool = pkgs.writeTextFile { name = "tool-${toolVersion}"; destination = "/bin/tool"; executable = true; text = "#!/bin/sh\\necho tool ${toolVersion}\\n"; };
in {
  networking.hostName = "${name}";
  environment.etc."motd".text = ${name.startsWith("web") ? `"\${greeting}: ${motd}\\n"` : `"${motd}\\n"`};
  ${name.startsWith("web") ? `environment.etc."upstream".text = "http://\${appAddress}:8080\\n";` : ""}
  environment.systemPackages = [ tool ];
  system.stateVersion = "25.05";
}
`;
}

/**
 * `cdktf-nixos push` against a four-host stack applied with real terraform and the real AWS provider against the EC2
 * double, whose instances are namespaced target hosts.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "systemd-targets", "terraform", "aws-provider-mirror"))("cdktf-nixos push to a fleet of namespace and systemd hosts", () => {
  let work: string;
  let ec2: Ec2Double;
  const worlds = new Map<string, TargetWorld>();
  /** Stops a host once, however often Terraform, the test and the clean-up ask. */
  const stops = new Map<string, () => Promise<void>>();
  const stackDir = () => join(work, "cdktf.out", "stacks", "fleet");
  // no AWS_ENDPOINT_URL_EC2: Terraform and the deployments find the EC2 double through the provider's endpoints block
  const env = () => ({
    ...withoutEndpointVariable(ec2DoubleEnv(ec2.endpoint)),
    NIX_CONFIG: "substituters =",
    // cdktf synth, run by push, comes from this repository's cdktf-cli
    PATH: `${join(ROOT, "node_modules", ".bin")}:${process.env.PATH}`,
  });
  const pushEnv = async () => ({ ...env(), ...(await terraformEnv()) });
  const push = async (...args: string[]): Promise<CliResult> => cdktfNixos(["push", "--project", work, ...args], await pushEnv());

  const instance = (name: HostName): Instance =>
    ec2.model.instances.find((i) => i.state !== "terminated" && ec2.model.tags[i.instanceId]?.some((t) => t.key === "Name" && t.value === name))!;
  const target = (name: HostName) => worlds.get(instance(name).publicIp)!.hosts[0];
  const generation = async (name: HostName) => (await target(name).exec("readlink /nix/var/nix/profiles/system")).stdout.trim();
  const motd = async (name: HostName) => (await target(name).exec("cat /nix/var/nixos-lite/etc/motd")).stdout;
  const writeConfig = (name: HostName, motdText: string, toolVersion?: string) =>
    writeFileSync(join(work, "nixos", `${name}.nix`), configuration(name, motdText, toolVersion));
  type JsonHost = { name: string; status: string; newSystem?: string; previousGeneration?: number; newGeneration?: number; pathsCopied?: number; bytesToSend?: number; pathsToSend?: number; changes?: unknown[]; error?: { phase: string; message: string; exitCode: number } };
  const jsonHosts = (result: CliResult) => new Map(((result.json?.hosts ?? []) as JsonHost[]).map((h) => [h.name, h]));

  async function synth(): Promise<void> {
    const result = await run(join(ROOT, "node_modules", ".bin", "cdktf"), ["synth"], { cwd: work, env: { ...process.env, ...env(), CHECKPOINT_DISABLE: "1" } as Record<string, string>, check: false });
    if (result.exitCode !== 0) throw new Error(`synth failed:\n${result.stdout}\n${result.stderr}`);
  }
  const apply = (...args: string[]) => terraform(stackDir(), ["apply", "-auto-approve", "-input=false", "-no-color", ...args], env());
  // random, so no source file, fixture or earlier run can hold them: found anywhere, they leaked from this run
  const canaries = { dbPassword: `canary-db-${randomBytes(12).toString("hex")}`, apiToken: `canary-api-${randomBytes(12).toString("hex")}` };
  let firstApply: { output: string; hits: ProcHit[]; sweeps: number };
  const started = new Date();
  let launched = 0;

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    work = mkdtempSync(join(tmpdir(), "push-"));
    mkdirSync(join(work, "nixos"));
    for (const name of HOSTS) writeConfig(name, `${name} v1`);
    mkdirSync(join(work, "secrets"), { mode: 0o700 });
    writeFileSync(join(work, "secrets", "db-password"), canaries.dbPassword, { mode: 0o600 });
    writeFileSync(join(work, "secrets", "api-token"), `${canaries.apiToken}\n`, { mode: 0o600 });
    writeFileSync(join(work, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "push-test", sendCrashReports: "false" }));
    ec2 = await startEc2Double({
      images: NIXOS_IMAGES,
      // a mixed fleet: every other instance is a systemd host
      launch: async (publicKey) => {
        const kind = launched++ % 2 === 0 ? "namespace" : "systemd";
        const world = await startTargets(1, { kind, authorizedKeys: publicKey ? [publicKey] : [] });
        const host = world.hosts[0];
        worlds.set(host.address, world);
        let stopped: Promise<void> | undefined;
        const stop = () => (stopped ??= world.stop());
        stops.set(host.address, stop);
        return { privateIp: host.address, publicIp: host.address, consoleOutput: hostBootLog(host), stop };
      },
    });
    writeFileSync(join(work, "main.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { FourHostsStack } from ${JSON.stringify(join(__dirname, "four-hosts-stack"))};
const app = new App();
new FourHostsStack(app, "fleet", { nixosDir: ${JSON.stringify(join(work, "nixos"))}, nixpkgs: ${JSON.stringify(NIXPKGS_LITE)}, secretsDir: ${JSON.stringify(join(work, "secrets"))}, ec2Endpoint: ${JSON.stringify(ec2.endpoint)} });
app.synth();
`);
    await synth();
    await terraform(stackDir(), ["init", "-input=false", "-no-color"], env());
    const sweep = startProcSweep(Object.values(canaries));
    const applied = await apply();
    firstApply = { output: `${applied.stdout}\n${applied.stderr}`, ...(await sweep.stop()) };
    for (const name of HOSTS) expect(await generation(name)).toBe("system-1-link");
  });
  afterAll(async () => {
    if (ec2 !== undefined && work !== undefined) {
      await terraform(stackDir(), ["destroy", "-auto-approve", "-input=false", "-no-color"], env()).catch(() => undefined);
    }
    await ec2?.close();
    for (const stop of stops.values()) await stop().catch(() => undefined);
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("a push right after cdktf deploy finds every host up to date, and touches none", async () => {
    const result = await push("--json");
    expect(result.code, result.stderr).toBe(0);
    expect(result.json).toMatchObject({ ok: true, stack: "fleet", dryRun: false, exitCode: 0 });
    expect([...jsonHosts(result).values()].map((h) => [h.name, h.status])).toEqual(HOSTS.map((n) => [n, "up-to-date"]));
    expect(result.stderr).toContain("stack fleet: using cdktf.out (up to date with the sources)");
    for (const name of HOSTS) expect(await generation(name)).toBe("system-1-link");
  });

  it("keys: written where they belong with their owner and mode; the canary secrets are nowhere else", async () => {
    // cdktf deploy (terraform apply) uploaded them: db's before activation, app's (a command's output) after
    const dbKey = await target("db").exec("stat -c '%a %U %G' /run/keys/db-password; cat /run/keys/db-password");
    expect(dbKey.stdout).toBe(`440 nobody nogroup\n${canaries.dbPassword}`);
    const appKey = await target("app").exec("stat -c '%a %U %G' /run/keys/api-token; cat /run/keys/api-token");
    expect(appKey.stdout).toBe(`400 root root\n${canaries.apiToken}\n`);
    expect(firstApply.output).toMatch(/"keys":\[\{"name":"db-password","path":"\/run\/keys\/db-password","sha256":"sha256:[0-9a-f]{64}","uploadAt":"before-activation"\}\]/);

    // a push uploads them again (a secret may have been rotated), up-to-date hosts included
    writeFileSync(join(work, "secrets", "db-password"), `${canaries.dbPassword}-rotated`, { mode: 0o600 });
    const sweep = startProcSweep(Object.values(canaries));
    const pushed = await push("--json");
    const during = await sweep.stop();
    expect(pushed.code, pushed.stderr).toBe(0);
    expect((await target("db").exec("cat /run/keys/db-password")).stdout).toBe(`${canaries.dbPassword}-rotated`);
    const db = jsonHosts(pushed).get("db") as JsonHost & { keys?: unknown };
    expect(db.keys).toEqual([{ name: "db-password", path: "/run/keys/db-password", sha256: expect.stringMatching(/^sha256:[0-9a-f]{64}$/), uploadAt: "before-activation" }]);

    const leaks: string[] = [];
    const look = (where: string, text: string) => {
      for (const canary of Object.values(canaries)) if (text.includes(canary)) leaks.push(where);
    };
    // argv and environment of every process, swept through the apply and the push
    expect(firstApply.sweeps + during.sweeps).toBeGreaterThan(20);
    for (const hit of [...firstApply.hits, ...during.hits]) leaks.push(`/proc/${hit.pid}/${hit.where} (${hit.cmdline.slice(0, 120)})`);
    // what Terraform and the CLI printed, --json included
    look("terraform apply output", firstApply.output);
    look("push stdout", pushed.stdout);
    look("push stderr", pushed.stderr);
    // the synthesized stack, the Terraform state (file and as terraform shows it)
    const grep = (dirs: string[], exclude: string[] = []) => {
      const found = Object.values(canaries).flatMap((canary) => {
        try {
          return execFileSync("grep", ["-rlF", ...exclude.map((e) => `--exclude-dir=${e}`), canary, ...dirs], { encoding: "utf8" }).trim().split("\n");
        } catch {
          return []; // grep: nothing found
        }
      });
      return found.filter(Boolean);
    };
    leaks.push(...grep([join(work, "cdktf.out")]));
    look("terraform show -json", (await terraform(stackDir(), ["show", "-json"], env())).stdout);
    // the local store, and files written anywhere in /tmp since the run started (except the secrets themselves)
    leaks.push(...grep(["/nix/store"]));
    const recent = execFileSync("find", ["/tmp", "-xdev", "-type", "f", "-size", "-64M", "-newermt", started.toISOString(), "!", "-path", `${join(work, "secrets")}/*`], { encoding: "utf8" })
      .trim().split("\n").filter(Boolean);
    for (const file of recent) {
      // other processes' temp files may go between find and the read: what is gone held nothing of this run's
      const content = (() => {
        try {
          return readFileSync(file, "latin1");
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code === "ENOENT") return "";
          throw err;
        }
      })();
      look(file, content);
    }
    // every host's store, its /run (but the key files) and its temp dirs
    for (const name of HOSTS) {
      for (const canary of Object.values(canaries)) {
        const found = await target(name).exec(`grep -rlF '${canary}' /nix/store /run /root 2>/dev/null | grep -v '^/run/keys/\\(db-password\\|api-token\\)$' || true`);
        if (found.stdout.trim() !== "") leaks.push(`${name}: ${found.stdout.trim()}`);
      }
    }
    expect(leaks).toEqual([]);
  });

  it("deploys exactly the two changed hosts in parallel, reports the others up to date; the next terraform apply activates nothing", async () => {
    writeConfig("web1", "web1 v2");
    writeConfig("db", "db v2");
    const result = await push("--json");
    expect(result.code, result.stderr).toBe(0);
    const hosts = jsonHosts(result);
    expect(hosts.get("web1")).toMatchObject({ status: "deployed", previousGeneration: 1, newGeneration: 2 });
    expect(hosts.get("db")).toMatchObject({ status: "deployed", previousGeneration: 1, newGeneration: 2 });
    expect(hosts.get("web1")!.pathsCopied).toBeGreaterThan(0);
    expect(hosts.get("web2")).toMatchObject({ status: "up-to-date", newGeneration: 1 });
    expect(hosts.get("app")).toMatchObject({ status: "up-to-date", newGeneration: 1 });
    // the injected Terraform values (app's private IP, the variable) came from the state
    expect(await motd("web1")).toBe("hello: web1 v2\n");
    expect((await target("web1").exec("cat /nix/var/nixos-lite/etc/upstream")).stdout).toBe(`http://${instance("app").privateIp}:8080\n`);
    expect(await motd("db")).toBe("db v2\n");
    // pipe output: one prefixed line per host per phase
    expect(result.stderr).toMatch(/^\[web1\] copy$/m);
    expect(result.stderr).toMatch(/^\[web2\] up to date: generation 1: nothing to copy or activate$/m);

    // Terraform's trigger changed for the two hosts: their deployment resources are replaced, and find them up to date
    await synth();
    const applied = await apply();
    expect(applied.stdout).toMatch(/web1_Deployment_[0-9A-F]+: Destruction complete/);
    expect(applied.stdout).toMatch(/db_Deployment_[0-9A-F]+: Destruction complete/);
    expect(applied.stdout).not.toMatch(/web2_Deployment_[0-9A-F]+: Destruction/);
    expect(applied.stdout.match(/"upToDate":true/g)).toHaveLength(2);
    expect(applied.stdout).not.toMatch(/"upToDate":false/);
    expect(await Promise.all(HOSTS.map(generation))).toEqual(["system-1-link", "system-2-link", "system-1-link", "system-2-link"]);
  });

  it("--dry-run lists changed packages and the bytes to send, and changes nothing on any host", async () => {
    writeConfig("web2", "web2 v2", "2.0");
    const storeBefore = (await target("web2").exec("ls /nix/store | sort; readlink /nix/var/nix/profiles/system /run/current-system")).stdout;
    const result = await push("--dry-run", "--json");
    expect(result.code, result.stderr).toBe(0);
    const hosts = jsonHosts(result);
    const web2 = hosts.get("web2")!;
    expect(web2.status).toBe("would-deploy");
    expect(web2.changes).toContainEqual({ name: "tool", before: ["1.0"], after: ["2.0"] });
    // the bytes to send are the NAR sizes of exactly the paths the host lacks, as Nix reports them
    const closure = execFileSync("nix-store", ["-qR", web2.newSystem!], { encoding: "utf8" }).trim().split("\n");
    const lacking = (await target("web2").exec(`nix-store --check-validity --print-invalid ${closure.join(" ")}`)).stdout.trim().split("\n").filter(Boolean);
    const narBytes = lacking.reduce((sum, p) => sum + Number(execFileSync("nix-store", ["-q", "--size", p], { encoding: "utf8" })), 0);
    expect(web2.pathsToSend).toBe(lacking.length);
    expect(web2.bytesToSend).toBe(narBytes);
    for (const name of ["app", "web1", "db"]) expect(hosts.get(name)!.status).toBe("up-to-date");
    expect((await target("web2").exec("ls /nix/store | sort; readlink /nix/var/nix/profiles/system /run/current-system")).stdout).toBe(storeBefore);

    const summary = join(work, "step-summary.md");
    writeFileSync(summary, "earlier steps\n");
    const table = await push("--dry-run", "--on", "web2", "--summary-file", summary);
    expect(table.code, table.stderr).toBe(0);
    expect(table.stdout).toContain("tool: 1.0 → 2.0");
    expect(table.stdout).toMatch(/web2\s+│ would deploy/);
    // a CI job's summary: appended as Markdown
    expect(readFileSync(summary, "utf8")).toMatch(/^earlier steps\n### cdktf-nixos push --dry-run: stack fleet\n\n\| host \| result \| generation \| to send \| package changes \|\n\| --- .*\n\| web2 \| would deploy \| \d+ \| \d+ paths, [\d.]+ [KM]iB \| [^\n]*tool: 1\.0 → 2\.0[^\n]* \|\n\n1 would deploy in [\d.]+ s \(evaluate and build [\d.]+ s, hosts [\d.]+ s\)\n$/);
    writeConfig("web2", "web2 v1");
  });

  it("--on selects by name, glob and tag; an unknown selector is refused with the known hosts", async () => {
    const selected = async (...on: string[]) => {
      const result = await push("--dry-run", "--json", ...on.flatMap((s) => ["--on", s]));
      expect(result.code, result.stderr).toBe(0);
      return [...jsonHosts(result).keys()];
    };
    expect(await selected("web1")).toEqual(["web1"]);
    expect(await selected("web*")).toEqual(["web1", "web2"]);
    expect(await selected("@role=db", "app")).toEqual(["app", "db"]);
    expect(await selected("@web")).toEqual(["web1", "web2"]);
    const unknown = await push("--on", "cache", "--json");
    expect(unknown.code).toBe(EXIT_CODES.usage);
    expect(unknown.stderr).toContain("--on 'cache' matches no host. Hosts: app, web1, web2, db; tags: @role=app, @role=db, @role=web");
  });

  it("re-synthesizes when the app changed, says so, and keeps only the newest generations where keepGenerations says", async () => {
    writeConfig("app", "app v2");
    const main = join(work, "main.ts");
    writeFileSync(main, `${readFileSync(main, "utf8")}// touched\n`);
    const later = new Date(Date.now() + 2000);
    utimesSync(main, later, later);
    const first = await push("--on", "app", "--json");
    expect(first.code, first.stderr).toBe(0);
    expect(first.json).toMatchObject({ synth: "synthesized: main.ts changed since the last synth" });
    writeConfig("app", "app v3");
    const second = await push("--on", "app", "--json");
    expect(second.code, second.stderr).toBe(0);
    expect(jsonHosts(second).get("app")).toMatchObject({ status: "deployed", previousGeneration: 2, newGeneration: 3 });
    // keepGenerations: 2 in the stack — generation 1 went, under the lock, once the activation finished
    for (let i = 0; i < 50 && (await target("app").exec("ls /nix/var/nix/profiles")).stdout.includes("system-1-link"); i++) await new Promise((r) => setTimeout(r, 100));
    expect((await target("app").exec("ls /nix/var/nix/profiles")).stdout.split("\n").filter((l) => l.startsWith("system-")).sort())
      .toEqual(["system-2-link", "system-3-link"]);
    expect(await motd("app")).toBe("app v3\n");
  });

  it("on a terminal: one live line per host, then the summary table", async () => {
    writeConfig("web1", "web1 v3");
    const command = [process.execPath, CLI, "push", "--project", work].map((w) => `'${w}'`).join(" ");
    const terminal = spawn("script", ["-qfec", `stty cols 120 rows 40; exec ${command}`, "/dev/null"], { env: { ...process.env, ...(await pushEnv()) } });
    let raw = "";
    terminal.stdout.on("data", (c: Buffer) => (raw += c.toString("utf8")));
    const code = await new Promise<number | null>((resolve) => terminal.on("close", resolve));
    expect(code, raw).toBe(0);
    const screen = new Terminal({ cols: 120, rows: 40, allowProposedApi: true });
    await new Promise<void>((resolve) => screen.write(raw.replace(/\r?\n/g, "\r\n"), resolve));
    const buffer = screen.buffer.active;
    const lines = Array.from({ length: buffer.length }, (_, i) => buffer.getLine(i)?.translateToString(true) ?? "").filter((l) => l.trim() !== "");
    expect(raw, "the live lines hide the cursor while they draw").toContain("\x1b[?25l");
    for (const name of ["app", "web2", "db"]) expect(lines).toContainEqual(expect.stringMatching(new RegExp(`^${name}\\s+up to date\\s+\\[`)));
    expect(lines).toContainEqual(expect.stringMatching(/^web1\s+deployed\s+\[█+\] generation 2 → 3, 3 paths, [\d.]+ [KM]iB, [\d.]+ s$/));
    expect(lines).toContainEqual(expect.stringMatching(/│ web1\s+│ deployed\s+│ 2 → 3\s+│ \d+ paths, [\d.]+ [KM]iB\s*│/));
    expect(lines).toContainEqual(expect.stringMatching(/^1 deployed, 3 up to date in [\d.]+ s \((synth [\d.]+ s, )?evaluate and build [\d.]+ s, hosts [\d.]+ s\)$/));
  });

  it("Ctrl-C mid-push: exit 130, every host's state said, the interrupted host unchanged", async () => {
    const before = readFileSync(join(work, "nixos", "web1.nix"), "utf8");
    const profile = await generation("web1");
    writeFileSync(join(work, "nixos", "web1.nix"), before.replace("system.stateVersion", `lite.payload = { paths = 40; sizeKiB = 2048; seed = "interrupt"; };\n  system.stateVersion`));
    const running = startCdktfNixos(["push", "--project", work, "--on", "web1", "--on", "app"], await pushEnv());
    await running.waitForStderr(/^\[web1\] copy$/m);
    running.child.kill("SIGINT");
    const result = await running.result;
    expect(result.code).toBe(EXIT_CODES.interrupted);
    expect(result.stderr).toMatch(/^\[web1\] interrupted during copy: unchanged \(paths copied so far stay valid in its store\)$/m);
    expect(result.stderr).toMatch(/^\[app\] interrupted during \w[\w ]*: /m);
    expect(await generation("web1")).toBe(profile);
    writeFileSync(join(work, "nixos", "web1.nix"), before);
  });

  it("a host that takes the SSH connection and never answers: the others deploy, its row says so, the table is printed", async () => {
    writeConfig("web1", "web1 silent-neighbour");
    writeConfig("app", "app silent");
    const silent = target("app");
    const keys = (await silent.exec("cat /root/.ssh/authorized_keys")).stdout;
    await silent.exec(`sed -i 's/^/command="sleep 3600" /' /root/.ssh/authorized_keys`);
    try {
      const result = await push("--reply-timeout", "2");
      expect(result.code, result.stderr).toBe(EXIT_CODES.inspect);
      expect(result.stdout).toMatch(/│ app\s+│ failed: inspect: inspecting root@10\.233\.0\.\d+:22 failed: [\s\S]*gave no answer within/);
      expect(result.stdout).toMatch(/│ web1\s+│ deployed/);
    } finally {
      await silent.exec(`printf '%s' '${keys}' > /root/.ssh/authorized_keys; pkill -x sleep || true`);
    }
    expect(await motd("web1")).toBe("hello: web1 silent-neighbour\n");
  });

  it("retries a host for its deployment's own connect timeout (300 s), not a command-line default, until it answers", async () => {
    writeConfig("db", "db back");
    const restore = await target("db").refuseSsh();
    // sshd comes back after longer than any command-line default (10 s): only the deployment's 300 s outlasts it
    const back = new Promise<void>((resolve, reject) => setTimeout(() => restore().then(resolve, reject), 14_000));
    try {
      const result = await push("--on", "db", "--json");
      expect(result.code, result.stderr).toBe(0);
      expect(jsonHosts(result).get("db")).toMatchObject({ status: "deployed" });
    } finally {
      await back;
    }
    expect(await motd("db")).toBe("db back\n");
  });

  it("one unreachable host: the others deploy, the summary says why it failed, the exit code is connect's", async () => {
    writeConfig("web2", "web2 v3");
    writeConfig("app", "app v4");
    const unreachable = instance("db").publicIp;
    await stops.get(unreachable)!();
    writeConfig("db", "db v3");
    const result = await push("--json", "--connect-timeout", "2");
    expect(result.code).toBe(EXIT_CODES.connect);
    const hosts = jsonHosts(result);
    expect(hosts.get("db")).toMatchObject({ status: "failed", error: { phase: "connect", exitCode: EXIT_CODES.connect } });
    expect(hosts.get("web2")).toMatchObject({ status: "deployed" });
    expect(hosts.get("app")).toMatchObject({ status: "deployed" });
    expect(hosts.get("web1")).toMatchObject({ status: "up-to-date" });
    const table = await push("--on", "db", "--connect-timeout", "1");
    expect(table.code).toBe(EXIT_CODES.connect);
    expect(table.stdout).toMatch(/│ db\s+│ failed: connect: cannot reach root@10\.233\.0\.\d+:22/);
  });
});
