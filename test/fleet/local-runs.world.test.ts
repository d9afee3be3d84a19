import { execFileSync, spawn } from "node:child_process";
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, rmSync, statSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { EXIT_CODES } from "../../src/errors";
import { CLI, cdktfNixos, startCdktfNixos, type CliResult } from "../harness/cli";
import { NIXPKGS_LITE } from "../harness/fixture";
import { extractImage, resolveInTree, type ImageKind } from "../harness/images";
import { missing } from "../harness/requirements";
import { run, startTargets, type TargetWorld } from "../harness/target-hosts";
import { terraform } from "../harness/terraform";
import type { ThreeHosts } from "./three-hosts-stack";

const ROOT = join(__dirname, "..", "..");
const HOSTS: readonly ThreeHosts[] = ["web", "app", "db"];

const CONFIGURATIONS: Record<ThreeHosts, string> = {
  web: `{ upstream, greeting, ... }: {
  networking.hostName = "web";
  environment.etc."upstream".text = "\${upstream}\\n";
  environment.etc."motd".text = "\${greeting} from web\\n";
}
`,
  app: `{ dbAddress, greeting, ... }: {
  networking.hostName = "app";
  environment.etc."db-address".text = dbAddress;
  environment.etc."motd".text = "\${greeting} from app\\n";
}
`,
  db: `{ ... }: {
  networking.hostName = "db";
  services.lite.db.script = "exec /usr/bin/python3 -m http.server 5432";
}
`,
};

/** The nixpkgs testScript the test runs: web and app find their peers by node name on the test network. */
const TEST_SCRIPT = `start_all()
db.wait_for_unit("db.service")
db.wait_for_open_port(5432)
web.succeed("grep -qx 'http://app:8080' /etc/upstream")
address = app.succeed("cat /etc/db-address").strip()
assert address == "db", f"app was told {address!r}"
app.succeed(f"bash -c 'exec 3<>/dev/tcp/{address}/5432'")
print(app.succeed("cat /etc/motd"))
`;

/**
 * `cdktf-nixos vm` and `cdktf-nixos test` on a three-host stack deployed with real terraform to namespaced target
 * hosts: the VM and the test's nodes are built from the deployments' own configurations and module arguments.
 */
describe.skipIf(missing("root", "nix", "sshd", "netns", "terraform", "python3", "image-tools"))("cdktf-nixos vm and test", () => {
  let work: string;
  let world: TargetWorld;
  const stackDir = () => join(work, "cdktf.out", "stacks", "fleet");
  const target = (name: ThreeHosts) => world.hosts[HOSTS.indexOf(name)];
  const cli = (args: string[], cwd?: string): Promise<CliResult> => cdktfNixos([...args, "--project", work], {}, { cwd: cwd ?? work });
  const deployed = async (name: ThreeHosts) => (await target(name).exec("readlink /run/current-system")).stdout.trim();
  const nixEval = (expression: string) =>
    execFileSync("nix-instantiate", ["--eval", "--json", "-I", `nixpkgs=${NIXPKGS_LITE}`, "-E", expression], { encoding: "utf8" });

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    work = mkdtempSync(join(tmpdir(), "local-runs-"));
    mkdirSync(join(work, "nixos"));
    for (const name of HOSTS) writeFileSync(join(work, "nixos", `${name}.nix`), CONFIGURATIONS[name]);
    writeFileSync(join(work, "test.py"), TEST_SCRIPT);
    world = await startTargets(3);
    writeFileSync(join(work, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "local-runs-test", sendCrashReports: "false" }));
    const addresses = Object.fromEntries(HOSTS.map((name) => [name, target(name).address]));
    writeFileSync(join(work, "main.ts"), `import { App } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { ThreeHostsStack } from ${JSON.stringify(join(__dirname, "three-hosts-stack"))};
const app = new App();
new ThreeHostsStack(app, "fleet", { nixosDir: ${JSON.stringify(join(work, "nixos"))}, nixpkgs: ${JSON.stringify(NIXPKGS_LITE)}, addresses: ${JSON.stringify(addresses)}, sshPrivateKeyFile: ${JSON.stringify(world.clientKeyFile)}, knownHostsFile: ${JSON.stringify(world.knownHostsFile)}, dbKeys: [{ name: "db-password", command: ["printf", "not-for-tests"] }] });
app.synth();
`);
    const synth = await run(join(ROOT, "node_modules", ".bin", "cdktf"), ["synth"], { cwd: work, env: { ...process.env, CHECKPOINT_DISABLE: "1" } as Record<string, string>, check: false });
    if (synth.exitCode !== 0) throw new Error(`synth failed:\n${synth.stdout}\n${synth.stderr}`);
  });
  afterAll(async () => {
    await world?.stop();
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("before anything is applied: a Terraform value the state lacks is one error naming each argument and its --arg", async () => {
    const result = await cli(["vm", "web", "--build-only"]);
    expect(result.code, result.stderr).toBe(EXIT_CODES.usage);
    // one line: each argument with its Terraform expression, why the state cannot say (here: never initialized), the fix
    expect(result.stderr.trim().split("\n")).toEqual(["cdktf-nixos: web: module arguments upstream (\"http://${terraform_data.app-address.output.address}:8080\"), " +
      "greeting (\"${var.greeting}\") are Terraform values and the state could not be read: terraform show -json in " +
      `${stackDir()} failed: Error: Backend initialization required, please run "terraform init". Has the stack been deployed (cdktf deploy) from here?; ` +
      "give them with --arg upstream=VALUE --arg greeting=VALUE"]);
    expect(existsSync(join(work, "web.qcow2"))).toBe(false);

    // given, the VM builds with them
    const given = await cli(["vm", "web", "--build-only", "--arg", "upstream=http://10.9.9.9:8080", "--arg", "greeting=hi"]);
    expect(given.code, given.stderr).toBe(0);
    const system = readlinkSync(join(given.stdout.trim(), "system"));
    expect(readFileSync(join(system, "etc", "upstream"), "utf8")).toBe("http://10.9.9.9:8080\n");
    expect(given.stderr).toContain("building the VM of web (module arguments: upstream from --arg, greeting from --arg)");

    const unknown = await cli(["vm", "web", "--build-only", "--arg", "upstrem=x"]);
    expect(unknown.code).toBe(EXIT_CODES.usage);
    expect(unknown.stderr).toContain("--arg upstrem: no module argument of web has that name (they have: greeting, upstream)");
    const noHost = await cli(["vm", "mail", "--build-only"]);
    expect(noHost.stderr).toContain("the stack has no host 'mail' (hosts: db, app, web)");
  });

  describe("after cdktf deploy (terraform apply)", () => {
    beforeAll(async () => {
      await terraform(stackDir(), ["init", "-input=false", "-no-color"]);
      await terraform(stackDir(), ["apply", "-auto-approve", "-input=false", "-no-color", "-var", "greeting=hi from state"]);
    });

    it("vm HOST --build-only builds the VM of exactly the deployed system, injected values from the state", async () => {
      for (const name of ["web", "app"] as const) {
        const result = await cli(["vm", name, "--build-only"]);
        expect(result.code, result.stderr).toBe(0);
        const vm = result.stdout.trim();
        expect(vm).toMatch(/^\/nix\/store\/[a-z0-9]{32}-nixos-vm$/);
        expect(readlinkSync(join(vm, "system"))).toBe(await deployed(name));
        expect(existsSync(join(vm, "bin", `run-${name}-vm`))).toBe(true);
      }
      expect((await cli(["vm", "web", "--build-only"])).stderr).toContain("(module arguments: upstream from state, greeting from state)");
    });

    it("vm HOST boots it: the console is a shell in the VM, the host's /etc is there; its disk stays in ./HOST.qcow2 until --fresh", async () => {
      const boot = async (...args: string[]) => {
        const running = startCdktfNixos(["vm", "web", "--project", work, ...args], {}, { cwd: work });
        running.child.stdin!.end("hostname\ncat /etc/motd /etc/upstream\ntest -e /root/was-here && echo 'state: kept' || echo 'state: new'\ntouch /root/was-here\n");
        return running.result;
      };
      const first = await boot("--console", "--", "-m", "2048");
      expect(first.code, first.stderr).toBe(0);
      expect(first.stdout).toContain("web login: root (automatic login)");
      const app = target("app").address;
      expect(first.stdout).toContain(`web\nhi from state from web\nhttp://${app}:8080\nstate: new\n`);
      // what the tutorial's `QEMU_KERNEL_PARAMS=console=ttyS0 run-web-vm -nographic` passes, and our QEMU arguments
      expect(first.stderr).toMatch(/nixos-lite vm: qemu-kvm -name web -append "init=\/nix\/store\/[^"]+ console=ttyS0" +-m 2048 -nographic/);
      expect(first.stderr).toContain("the VM keeps its state in ./web.qcow2, which stays after it stops; --fresh removes it first next time");

      const again = await boot();
      expect(again.stdout).toContain("state: kept");
      expect(again.stderr).toContain("the VM reuses its disk ./web.qcow2 from an earlier run");
      const fresh = await boot("--fresh");
      expect(fresh.stdout).toContain("state: new");
      expect(fresh.stderr).toContain("removed ./web.qcow2: the VM boots from a clean disk");
      // NIX_DISK_IMAGE left over in the shell, naming the user's own file or directory: refused before anything
      // runs, and nothing of theirs is removed or booted from
      const home = mkdtempSync(join(tmpdir(), "vm-user-files-"));
      const thesis = join(home, "thesis.txt");
      writeFileSync(thesis, "chapter 1\n");
      const precious = join(home, "precious");
      mkdirSync(join(precious, "sub"), { recursive: true });
      writeFileSync(join(precious, "sub", "data.txt"), "keep\n");
      for (const [path, what] of [[thesis, "a file that does not start with QEMU's qcow2 header"], [precious, "a directory"]]) {
        for (const flags of [["--fresh"], []]) {
          const refused = await startCdktfNixos(["vm", "web", "--project", work, ...flags], { NIX_DISK_IMAGE: path }, { cwd: work }).result;
          expect(refused.code, refused.stderr).toBe(EXIT_CODES.usage);
          expect(refused.stderr).toContain(`cdktf-nixos: ${path} is ${what}, not a VM disk: cdktf-nixos neither boots from it nor removes it; NIX_DISK_IMAGE names it`);
          expect(refused.stderr).not.toContain("running ");
        }
      }
      expect(readFileSync(thesis, "utf8")).toBe("chapter 1\n");
      expect(readFileSync(join(precious, "sub", "data.txt"), "utf8")).toBe("keep\n");
      rmSync(home, { recursive: true });
      // on a terminal: an interactive shell with a prompt, whose exit ends the VM (and the command) with 0
      const command = [process.execPath, CLI, "vm", "web", "--project", work].map((w) => `'${w}'`).join(" ");
      const terminal = spawn("script", ["-qfec", command, "/dev/null"], { cwd: work, env: { ...process.env, NIX_CONFIG: "substituters =" } });
      let screen = "";
      const seen = (text: string) => new Promise<void>((resolve) => {
        const check = () => (screen.includes(text) ? resolve() : terminal.stdout.once("data", check));
        check();
      });
      terminal.stdout.on("data", (c: Buffer) => (screen += c.toString("utf8")));
      await seen("[root@web:~]# ");
      terminal.stdin.write("cat /etc/motd\n");
      await seen("hi from state from web");
      terminal.stdin.write("exit\n");
      expect(await new Promise<number | null>((resolve) => terminal.on("close", resolve)), screen).toBe(0);
      expect(screen).not.toContain("Cannot set tty process group");

      // the VM wrote only its disk: nothing on this machine's /root, and no namespace process is left
      expect(existsSync("/root/was-here")).toBe(false);
      expect(execFileSync("sh", ["-c", "pgrep -f '[b]ooted-system-ready' || true"], { encoding: "utf8" }).trim()).toBe("");
      rmSync(join(work, "web.qcow2"), { recursive: true, force: true });
    });

    it("image HOST --format amazon|iso|raw: image files holding the deployed system, read back from the image; --out never replaces", async () => {
      const images = mkdtempSync(join(tmpdir(), "images-"));
      try {
        const amazon = await cli(["image", "web", "--format", "amazon"]);
        expect(amazon.code, amazon.stderr).toBe(0);
        const vhd = amazon.stdout.trim();
        expect(vhd).toMatch(/^\/nix\/store\/[a-z0-9]{32}-nixos-amazon-image-[^/]+-x86_64-linux\/nixos-amazon-image-[^/]+-x86_64-linux\.vhd$/);
        expect(amazon.stderr).toContain("building the amazon image of web (module arguments: upstream from state, greeting from state)");
        expect(amazon.stderr).toMatch(new RegExp(`web: amazon image, [0-9.]+ (KiB|MiB) \\(${statSync(vhd).size} bytes\\)`));
        const info = JSON.parse(readFileSync(join(vhd, "..", "nix-support", "image-info.json"), "utf8")) as { disks: { root: { file: string } }; boot_mode: string };
        expect(info.disks.root.file).toBe(vhd);
        expect(execFileSync("qemu-img", ["info", "--output", "json", vhd], { encoding: "utf8" })).toContain('"format": "vpc"');
        const web = await deployed("web");
        const readBack = async (file: string, kind: ImageKind) => {
          const tree = mkdtempSync(join(images, "tree-"));
          await extractImage(file, kind, tree);
          return {
            bootDefault: readFileSync(join(tree, "nix", "var", "nixos-lite", "boot-default"), "utf8").trim(),
            profile: readlinkSync(join(tree, "nix", "var", "nix", "profiles", "system-1-link")),
            motd: readFileSync(await resolveInTree(tree, `${web}/etc/motd`), "utf8"),
            registration: readFileSync(join(tree, "nix-path-registration"), "utf8"),
          };
        };
        for (const [file, kind] of [[vhd, "vhd"]] as const) {
          const image = await readBack(file, kind);
          expect(image).toMatchObject({ bootDefault: web, profile: web, motd: "hi from state from web\n" });
          expect(image.registration.split("\n")).toContain(web);
        }

        // --out: the ISO copied into the directory; a second run refuses to replace it
        const iso = await cli(["image", "web", "--format", "iso", "--out", images]);
        expect(iso.code, iso.stderr).toBe(0);
        const copied = iso.stdout.trim();
        expect(copied).toMatch(new RegExp(`^${images}/nixos-minimal-[^/]+-x86_64-linux\\.iso$`));
        expect(statSync(copied).mode & 0o777).toBe(0o644);
        expect(await readBack(copied, "iso")).toMatchObject({ bootDefault: web, profile: web, motd: "hi from state from web\n" });
        writeFileSync(copied, "the user's own file now\n");
        const again = await cli(["image", "web", "--format", "iso", "--out", images]);
        expect(again.code).toBe(EXIT_CODES.usage);
        expect(again.stderr).toContain(`cdktf-nixos: ${copied} already exists; cdktf-nixos does not replace it: remove it or choose another --out`);
        expect(readFileSync(copied, "utf8")).toBe("the user's own file now\n");
        expect(readdirSync(images).filter((f) => f.includes("partial"))).toEqual([]);

        const raw = await cli(["image", "app", "--format", "raw"]);
        expect(raw.code, raw.stderr).toBe(0);
        expect(raw.stdout.trim()).toMatch(/\.img$/);
        const appImage = mkdtempSync(join(images, "tree-"));
        await extractImage(raw.stdout.trim(), "raw", appImage);
        expect(readFileSync(join(appImage, "nix", "var", "nixos-lite", "boot-default"), "utf8").trim()).toBe(await deployed("app"));

        // bad input: one message, exit 2, nothing built (no "building" line)
        const readOnly = mkdtempSync(join(tmpdir(), "images-ro-"));
        execFileSync("mount", ["--bind", readOnly, readOnly]);
        try {
          execFileSync("mount", ["-o", "remount,ro,bind", readOnly]);
          const cases: Array<[string[], string]> = [
            [["image", "web"], "cdktf-nixos: image needs --format: one of amazon, iso, raw (e.g. --format amazon)"],
            [["image", "web", "--format", "qcow2"], "cdktf-nixos: --format qcow2 is not an image format cdktf-nixos builds; use one of amazon, iso, raw"],
            [["image", "--format", "amazon"], "cdktf-nixos: image needs the host to build: cdktf-nixos image [stack] <host> --format amazon|iso|raw (e.g. cdktf-nixos image web --format amazon)"],
            [["image", "web", "--format", "iso", "--out", join(images, "nope")], `cdktf-nixos: --out ${join(images, "nope")} does not exist; create the directory first`],
            [["image", "web", "--format", "iso", "--out", readOnly], `cdktf-nixos: --out ${readOnly} is not writable (EROFS); choose a directory you can write to`],
            [["image", "mail", "--format", "iso"], "cdktf-nixos: the stack has no host 'mail' (hosts: db, app, web)"],
          ];
          for (const [args, message] of cases) {
            const result = await cli(args);
            expect(result.code, result.stderr).toBe(EXIT_CODES.usage);
            expect(result.stderr.trim()).toBe(message);
          }
        } finally {
          execFileSync("umount", [readOnly]);
          rmSync(readOnly, { recursive: true });
        }
      } finally {
        rmSync(images, { recursive: true, force: true });
      }
    });

    it("test --write: nodes are the deployments' configurations and values, other hosts' addresses replaced by node names", async () => {
      const file = join(work, "fleet-test.nix");
      const result = await cli(["test", "--script", "test.py", "--write", "fleet-test.nix"]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stderr).toContain("node web: host web (module arguments: upstream from test network, greeting from state)");
      expect(result.stderr).toContain("node app: host app (module arguments: dbAddress from test network, greeting from state)");
      expect(result.stderr).toContain("node db: gets none of its host's keys (db-password); the test script writes test values if it needs them");
      expect(readFileSync(file, "utf8")).not.toContain("not-for-tests");
      const text = readFileSync(file, "utf8");
      expect(text).toContain("imports = [ ./nixos/web.nix ];");
      expect(text).toContain("testScript = builtins.readFile ./test.py;");
      expect(text).toContain('upstream = "http://app:8080";');

      const node = (name: ThreeHosts) => JSON.parse(nixEval(`(import ${file} { }).nodes.${name}.config.system.build.toplevel.outPath`)) as string;
      // db has no module arguments: its node is exactly the deployed system
      expect(node("db")).toBe(await deployed("db"));
      // web and app differ from what is deployed only by the replaced address
      for (const [name, args] of [["web", { upstream: "http://app:8080", greeting: "hi from state" }], ["app", { dbAddress: "db", greeting: "hi from state" }]] as const) {
        expect(node(name)).not.toBe(await deployed(name));
        const same = JSON.parse(nixEval(`(import <nixpkgs/nixos> { configuration = { imports = [ ${join(work, "nixos", `${name}.nix`)} ]; _module.args = builtins.fromJSON ${JSON.stringify(JSON.stringify(args))}; }; }).system.outPath`)) as string;
        expect(node(name)).toBe(same);
      }

      // the file is the one --write wrote: writing again replaces it; the app's source, the test script itself and
      // a file of the user's are refused before anything is synthesized or built, and stay as they were
      const again = await cli(["test", "--script", "test.py", "--write", "fleet-test.nix"]);
      expect(again.code, again.stderr).toBe(0);
      const mainTs = readFileSync(join(work, "main.ts"), "utf8");
      writeFileSync(join(work, "notes.nix"), "{ my = \"notes\"; }\n");
      for (const [target, why] of [
        ["main.ts", `${join(work, "main.ts")} exists and was not written by \`cdktf-nixos test --write\` (no such header): choose another file, or pass --force to replace it`],
        ["notes.nix", `${join(work, "notes.nix")} exists and was not written by \`cdktf-nixos test --write\` (no such header): choose another file, or pass --force to replace it`],
        ["test.py", "that is the test script itself (the written test reads it): write the test to another file, e.g. tests/fleet.nix"],
      ]) {
        const refused = await cli(["test", "--script", "test.py", "--write", target]);
        expect(refused.code, refused.stderr).toBe(EXIT_CODES.usage);
        expect(refused.stderr).toBe(`cdktf-nixos: --write ${target}: ${why}\n`);
      }
      expect(readFileSync(join(work, "main.ts"), "utf8")).toBe(mainTs);
      expect(readFileSync(join(work, "test.py"), "utf8")).toBe(TEST_SCRIPT);
      expect(readFileSync(join(work, "notes.nix"), "utf8")).toBe("{ my = \"notes\"; }\n");
      const forced = await cli(["test", "--script", "test.py", "--write", "notes.nix", "--force"]);
      expect(forced.code, forced.stderr).toBe(0);
      expect(readFileSync(join(work, "notes.nix"), "utf8")).toContain("pkgs.testers.runNixOSTest {");
      rmSync(join(work, "notes.nix"));
    });

    it("test runs the script against the nodes (web reaches app, app reaches db by name); a failing script fails the command", async () => {
      const result = await cli(["test", "--script", "test.py"]);
      expect(result.code, result.stderr).toBe(0);
      expect(result.stdout).toContain("hi from state from app");
      expect(result.stderr).toMatch(/test script finished in/);
      // the driver that ran is the one the file `test --write` wrote builds with plain nix-build
      const ran = /running (\/nix\/store\/\S+)\/bin\/nixos-test-driver/.exec(result.stderr)?.[1];
      const fromFile = (await run("nix-build", [join(work, "fleet-test.nix"), "-A", "driver", "-I", `nixpkgs=${NIXPKGS_LITE}`, "--no-out-link"])).stdout.trim();
      expect(ran).toBe(fromFile);

      writeFileSync(join(work, "failing.py"), 'start_all()\nweb.succeed("grep -q db /etc/upstream")\n');
      const failing = await cli(["test", "--script", "failing.py", "--on", "web"]);
      expect(failing.code).toBe(1);
      expect(failing.stderr).toContain("command `grep -q db /etc/upstream` failed (exit code 1)");
      expect(failing.stderr).toContain("cdktf-nixos: the test exited with code 1");
      // web alone: app is no node, so web gets app's real address from the state
      expect(failing.stderr).toContain("node web: host web (module arguments: upstream from state, greeting from state)");

      // --interactive: driverInteractive's Python prompt on our stdin, the machines started by hand
      // (the script must still name only the selected nodes: the driver's build checks it)
      writeFileSync(join(work, "db.py"), 'db.wait_for_unit("db.service")\n');
      const interactive = startCdktfNixos(["test", "--script", "db.py", "--interactive", "--on", "db", "--project", work], {}, { cwd: work });
      interactive.child.stdin!.end("start_all()\nprint('on', db.succeed('hostname').strip())\n");
      const session = await interactive.result;
      expect(session.code, session.stderr).toBe(0);
      expect(session.stdout).toContain("on db\n");
      expect(session.stderr).toContain("building the test's driverInteractive");

      // a script naming a machine that is not a node is refused when the test is built, as nixpkgs' driver build does
      writeFileSync(join(work, "typo.py"), "start_all()\nwbe.succeed('true')\n");
      const typo = await cli(["test", "--script", "typo.py"]);
      expect(typo.code).toBe(EXIT_CODES.build);
      expect(typo.stderr).toContain("testScript: undefined name 'wbe' (machines: app, db, web)");
      // every machine and the test network went with the driver
      expect(execFileSync("sh", ["-c", "pgrep -f '[b]ooted-system-ready|[v]lan1-peer' || true"], { encoding: "utf8" }).trim()).toBe("");
    });
  });
});

/** A flake host beside a configuration host: its VM, and its node in a test (modules and specialArgs from the flake). */
describe.skipIf(missing("root", "nix", "netns", "python3"))("cdktf-nixos vm and test with a flake host", () => {
  let work: string;
  const cli = (args: string[]): Promise<CliResult> => cdktfNixos([...args, "--project", work], {}, { cwd: work });

  beforeAll(async () => {
    execFileSync("npm", ["run", "--silent", "build"], { cwd: ROOT, stdio: "inherit" });
    work = mkdtempSync(join(tmpdir(), "local-runs-flake-"));
    mkdirSync(join(work, "infra"));
    writeFileSync(join(work, "infra", "flake.nix"), `{
  inputs.nixpkgs.url = "path:${NIXPKGS_LITE}";
  outputs = { self, nixpkgs }: {
    nixosConfigurations.cache = nixpkgs.lib.nixosSystem { system = "x86_64-linux"; modules = [ ./cache.nix ]; specialArgs = { role = "cache"; }; };
  };
}
`);
    writeFileSync(join(work, "infra", "cache.nix"), '{ role, ... }: { networking.hostName = "cache"; environment.etc."role".text = role; }\n');
    // a user's flake has its lock file (synth evaluates it without writing one)
    execFileSync("nix", ["--extra-experimental-features", "nix-command flakes", "flake", "lock", `path:${join(work, "infra")}`], { stdio: "ignore" });
    writeFileSync(join(work, "web.nix"), '{ cacheAddress, ... }: { networking.hostName = "web"; environment.etc."cache".text = cacheAddress; }\n');
    writeFileSync(join(work, "test.py"), 'start_all()\nassert cache.succeed("cat /etc/role") == "cache"\nweb.succeed("test \\"$(cat /etc/cache)\\" = cache", "getent hosts cache")\n');
    writeFileSync(join(work, "cdktf.json"), JSON.stringify({ language: "typescript", app: `${join(ROOT, "node_modules", ".bin", "tsx")} main.ts`, projectId: "local-runs-flake", sendCrashReports: "false" }));
    writeFileSync(join(work, "main.ts"), `import { App, DataResource, TerraformStack } from ${JSON.stringify(join(ROOT, "node_modules", "cdktf"))};
import { NixosDeployment } from ${JSON.stringify(join(ROOT, "src"))};
const app = new App();
const stack = new TerraformStack(app, "mixed");
const cacheAddress = new DataResource(stack, "cache-address", { input: { address: "10.233.9.9" } }).getStringAttribute("output.address");
new NixosDeployment(stack, "cache", { host: cacheAddress, flake: ${JSON.stringify(join(work, "infra"))} + "#cache" });
new NixosDeployment(stack, "web", { host: "10.233.9.10", configuration: ${JSON.stringify(join(work, "web.nix"))}, nixPath: { nixpkgs: ${JSON.stringify(NIXPKGS_LITE)} }, nixosArgs: { cacheAddress } });
app.synth();
`);
  });
  afterAll(() => {
    if (work) rmSync(work, { recursive: true, force: true });
  });

  it("vm of the flake host is its nixosConfigurations.cache.config.system.build.vm", async () => {
    const result = await cli(["vm", "cache", "--build-only"]);
    expect(result.code, result.stderr).toBe(0);
    const toplevel = JSON.parse(execFileSync("nix", ["--extra-experimental-features", "nix-command flakes", "eval", "--json",
      `path:${join(work, "infra")}#nixosConfigurations.cache.config.system.build.toplevel.outPath`], { encoding: "utf8" })) as string;
    expect(readlinkSync(join(result.stdout.trim(), "system"))).toBe(toplevel);
  });

  it("test: the flake node gets its modules and specialArgs, web reaches it by name", async () => {
    const result = await cli(["test", "--script", "test.py"]);
    expect(result.code, result.stderr).toBe(0);
    expect(result.stderr).toContain("node web: host web (module arguments: cacheAddress from test network)");
    const written = await cli(["test", "--script", "test.py", "--write", "mixed-test.nix"]);
    expect(written.code, written.stderr).toBe(0);
    expect(readFileSync(join(work, "mixed-test.nix"), "utf8")).toContain("let flake = builtins.getFlake (toString ./infra); in\n");
    // the written file builds the same driver
    const ran = /running (\/nix\/store\/\S+)\/bin\/nixos-test-driver/.exec(result.stderr)?.[1];
    const fromFile = (await run("nix-build", ["--extra-experimental-features", "nix-command flakes", join(work, "mixed-test.nix"), "-A", "driver", "-I", `nixpkgs=${NIXPKGS_LITE}`, "--no-out-link"])).stdout.trim();
    expect(ran).toBe(fromFile);
  });
});
