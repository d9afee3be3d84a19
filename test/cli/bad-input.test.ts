import { execFileSync } from "node:child_process";
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { main } from "../../src/cli/program";
import { DEPLOY_ENV } from "../../src/spec/manifest";
import { loginProblem } from "../../src/deploy/ssh/connection";
import { EXIT_CODES } from "../../src/errors";
import type { SystemSource } from "../../src/nix/system";
import { capturedOutput } from "../harness/cli";
import { NEW, READ_LOG, fakeDependencies, healthyHost } from "../deploy/fake-host";

/**
 * A new user's bad inputs to `deploy`, each answered with one message before anything is built or contacted (the
 * fake seams record no call, so the target is unchanged). Input → exact message → exit code.
 */
describe("deploy: bad input is refused with one clear message, before anything changes", () => {
  const dir = mkdtempSync(join(tmpdir(), "bad-input-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const configuration = join(dir, "configuration.nix");
  writeFileSync(configuration, "{ ... }: { }\n");
  symlinkSync(NEW, join(dir, "result"));
  symlinkSync("/tmp", join(dir, "not-a-system"));
  mkdirSync(join(dir, "a-directory"));
  const fifo = join(dir, "fifo");
  execFileSync("mkfifo", [fifo]);
  const empty = join(dir, "empty");
  writeFileSync(empty, "");
  const protectedKey = join(dir, "id_protected");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "a passphrase", "-f", protectedKey]);
  const openKey = join(dir, "id_open");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", openKey]);
  chmodSync(openKey, 0o644);
  const target = ["--target-host", "root@198.51.100.7", "--known-hosts", "/dev/null"];
  const usableKey = join(dir, "id_usable");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", usableKey]);
  const publicCacheKey = join(dir, "cache.public");
  writeFileSync(publicCacheKey, `cache-1:${Buffer.alloc(32, 1).toString("base64")}\n`);
  const env = { SSH_AUTH_SOCK: join(dir, "agent.sock") };

  async function cli(args: string[], moduleArgs?: string) {
    const io = capturedOutput();
    const world = fakeDependencies(healthyHost(), { checkLogin: (t) => loginProblem(t.privateKeyFile, env) });
    if (moduleArgs !== undefined) process.env[DEPLOY_ENV.moduleArgsJson] = moduleArgs;
    try {
      const code = await main(["node", "cdktf-nixos", "deploy", ...args], { output: io.output, dependencies: () => world.deps });
      return { code, stdout: io.stdout(), stderr: io.stderr(), calls: world.calls, commands: world.host.log };
    } finally {
      delete process.env[DEPLOY_ENV.moduleArgsJson];
    }
  }

  it.each<[string, string[], string, string?]>([
    ["a port in --target-host", ["--target-host", "root@198.51.100.7:22", "--toplevel", NEW],
      "--target-host 'root@198.51.100.7:22' includes a port: pass --target-host root@198.51.100.7 --target-port 22"],
    ["a jump host that is no host name", [...target, "--toplevel", NEW, "--jump-host", "b@st!on"],
      "--jump-host 'b@st!on' is not [user@]host[:port] (for example admin@bastion.example.com:22)"],
    ["a link that leads outside the store", [...target, "--toplevel", join(dir, "not-a-system")],
      `--toplevel '${join(dir, "not-a-system")}' is not a store path (/nix/store/...-nixos-system-...): it leads to /tmp`],
    ["a missing --config", [...target, "--config", join(dir, "missing.nix")], `--config ${join(dir, "missing.nix")} does not exist`],
    ["a directory as --config", [...target, "--config", join(dir, "a-directory")], `--config ${join(dir, "a-directory")} is a directory; give its configuration.nix`],
    ["module arguments named like the module system's", [...target, "--config", configuration],
      `nixosArgs "pkgs" would replace the module system's own argument; rename it (e.g. appConfig)`, '{"pkgs": {}}'],
    ["--sensitive-arg of an argument that is not there", [...target, "--config", configuration, "--sensitive-arg", "token"],
      "--sensitive-arg token: no such module argument (the arguments are peer)", '{"peer": "10.0.0.5"}'],
    ["--key without a file", [...target, "--toplevel", NEW, "--key", "db"], "--key 'db' is not NAME=FILE (e.g. --key db-password=./secrets/db)"],
    ["--key with a missing file", [...target, "--toplevel", NEW, "--key", `db=${join(dir, "nope")}`], `key "db": file ${join(dir, "nope")} does not exist`],
    ["--key-spec that is not JSON", [...target, "--toplevel", NEW, "--key-spec", "{name: db}"], `--key-spec '{name: db}' is not JSON, e.g. '{"name":"db","file":"./db.pw"}'`],
    ["a key spec with a bad mode", [...target, "--toplevel", NEW, "--key-spec", `{"name":"db","file":"${configuration}","permissions":"rw"}`],
      `key "db": permissions "rw" is not an octal mode such as "0400" or "0440"`],
    ["a key spec with colmena's text field", [...target, "--toplevel", NEW, "--key-spec", '{"name":"db","text":"s3cret"}'],
      `key "db": text is not supported: a literal key would be in the synthesized stack, Terraform state and the command line; give file or command; key "db": give exactly one of file and command`],
    ["a key spec with a misspelled field", [...target, "--toplevel", NEW, "--key-spec", `{"name":"db","file":"${configuration}","premissions":"0440"}`],
      `key "db": unknown field "premissions" (a key has name, file, command, destDir, user, group, permissions, uploadAt, commandTimeoutSeconds, replaceExisting)`],
    ["a key that would go into the system's store path", [...target, "--toplevel", NEW, "--key-spec", `{"name":"current-system","file":"${configuration}","destDir":"/run"}`],
      `key "current-system": /run/current-system is in /run/current-system, which NixOS manages (it links into the Nix store)`],
    ["a key that would replace root's authorized_keys", [...target, "--toplevel", NEW, "--key-spec", `{"name":"authorized_keys","file":"${configuration}","destDir":"/root/.ssh"}`],
      `key "authorized_keys": /root/.ssh/authorized_keys would replace that user's SSH login keys (and can lock the deployer out): declare them in users.users.<name>.openssh.authorizedKeys instead`],
    ["a key file that is a FIFO", [...target, "--toplevel", NEW, "--key", `db=${fifo}`],
      `key "db": file ${fifo} is not a regular file (a FIFO): give the file that holds the key, or a command that prints it`],
    ["a key file that is a device", [...target, "--toplevel", NEW, "--key", "db=/dev/zero"],
      `key "db": file /dev/zero is not a regular file (a device): give the file that holds the key, or a command that prints it`],
    ["an empty key file", [...target, "--toplevel", NEW, "--key", `db=${empty}`], `key "db": file ${empty} is empty: a key must have content (is it the right file?)`],
    ["a key command that prints nothing", [...target, "--toplevel", NEW, "--key-spec", '{"name":"tok","command":["true"]}'],
      `key "tok": command true printed nothing: a key must have content (run it yourself to see why)`],
    ["a typo'd --region (said offline, not looked up)", [...target, "--toplevel", NEW, "--host-key-from-ec2-console", "i-0123456789abcdef0", "--region", "eu-centrl-1"],
      `--region "eu-centrl-1" is not an AWS region; did you mean "eu-central-1"?`],
    ["a --region that is no region at all", [...target, "--toplevel", NEW, "--host-key-from-ec2-console", "i-0123456789abcdef0", "--region", "frankfurt"],
      `--region "frankfurt" is not an AWS region (e.g. "eu-central-1", "us-east-1")`],
    ["a --known-hosts that is a directory", ["--target-host", "root@198.51.100.7", "--known-hosts", join(dir, "a-directory"), "--toplevel", NEW],
      `--known-hosts: the known_hosts file ${join(dir, "a-directory")} is a directory; give the file in it (e.g. ${join(dir, "a-directory", "known_hosts")})`],
    ["an --endpoint that is no URL", [...target, "--toplevel", NEW, "--endpoint", "localhost:4566"],
      "--endpoint 'localhost:4566' is not an http(s) URL; give one such as https://ec2.eu-central-1.amazonaws.com or http://127.0.0.1:4566"],
    ["a passphrase-protected --ssh-key", [...target, "--toplevel", NEW, "--ssh-key", protectedKey],
      `the SSH private key ${protectedKey} is protected by a passphrase, which cdktf-nixos cannot ask for: load it into ssh-agent ` +
        `(ssh-add ${protectedKey}) and leave out the key file`],
    ["an --ssh-key that is not there", [...target, "--toplevel", NEW, "--ssh-key", join(dir, "id_missing")], `the SSH private key ${join(dir, "id_missing")} does not exist`],
    ["an --ssh-key that is not a key", [...target, "--toplevel", NEW, "--ssh-key", configuration],
      `the SSH private key ${configuration} is not a private key (no "-----BEGIN ... PRIVATE KEY-----" in it)`],
    ["an --ssh-key that is the public key", [...target, "--toplevel", NEW, "--ssh-key", `${protectedKey}.pub`],
      `the SSH private key ${protectedKey}.pub is a public key; give the private key (${protectedKey})`],
    ["an --ssh-key that is a directory", [...target, "--toplevel", NEW, "--ssh-key", join(dir, "a-directory")],
      `the SSH private key ${join(dir, "a-directory")} is a directory; give the private key file in it (e.g. id_ed25519)`],
    ["an --ssh-key readable by others", [...target, "--toplevel", NEW, "--ssh-key", openKey],
      `the SSH private key ${openKey} is readable by others (mode 0644), and OpenSSH refuses such a key: chmod 600 ${openKey}`],
    ["--max-channels that is not a count", [...target, "--toplevel", NEW, "--max-channels", "0"],
      "--max-channels '0' is not a whole number from 1 to 64 (sshd allows 10 sessions per connection by default)"],
    ["a --cache of a kind Nix has no store for", [...target, "--toplevel", NEW, "--cache", "ftp://cache.example.com/nix"],
      "--cache 'ftp://cache.example.com/nix': ftp:// caches are not supported: give s3://, file:// or http(s)://"],
    ["a --cache without a signing key", [...target, "--toplevel", NEW, "--cache", "s3://fleet-cache?region=eu-central-1"],
      "--cache s3://fleet-cache?region=eu-central-1 needs --cache-signing-key FILE: hosts accept only signed paths (make a key with nix-store --generate-binary-cache-key NAME secret.key public.key)"],
    ["--cache-signing-key without --cache", [...target, "--toplevel", NEW, "--cache-signing-key", configuration],
      "--cache-signing-key without --cache URL: give the cache too, or leave it out"],
    ["an https --cache this tool cannot upload to", [...target, "--toplevel", NEW, "--cache", "https://cache.example.com", "--cache-signing-key", configuration],
      "--cache https://cache.example.com: this tool uploads to s3:// and file:// caches; for an http(s) cache give the command that uploads to it as --cache-push-command (e.g. 'cachix push NAME', 'attic push NAME')"],
    ["a --cache-signing-key that is not there", [...target, "--ssh-key", usableKey, "--toplevel", NEW, "--cache", "file:///var/cache/nix", "--cache-signing-key", join(dir, "cache.secret")],
      `the cache signing key ${join(dir, "cache.secret")} does not exist (make one with nix-store --generate-binary-cache-key NAME ${join(dir, "cache.secret")} ${join(dir, "cache.secret")}.pub)`],
    ["the public key as --cache-signing-key", [...target, "--ssh-key", usableKey, "--toplevel", NEW, "--cache", "file:///var/cache/nix", "--cache-signing-key", publicCacheKey],
      `${publicCacheKey} holds 32 key bytes, not the 64 of a secret key (is it the public key?)`],
    ["a --cache-public-key that is no key", [...target, "--toplevel", NEW, "--cache", "https://c.example.com", "--cache-push-command", "cachix push c", "--cache-public-key", "c.example.com-1"],
      "'c.example.com-1' is not a Nix binary cache public key (NAME:BASE64 of 32 bytes, e.g. cache-1:AbC…=)"],
    ["a --build-host that is no host", [...target, "--toplevel", NEW, "--build-host", "b@ild!"],
      "--build-host 'b@ild!' is not [user@]host[:port] (for example admin@builder.example.com:22)"],
    ["SSH_AUTH_SOCK pointing nowhere", [...target, "--toplevel", NEW],
      `SSH_AUTH_SOCK is ${env.SSH_AUTH_SOCK}, which does not exist (is ssh-agent still running?); start ssh-agent and add a key, or give the private key file`],
  ])("%s", async (_what, args, message, moduleArgs) => {
    const run = await cli(args, moduleArgs);
    expect(run.stderr).toBe(`cdktf-nixos: ${message}\n`);
    expect(run.code).toBe(EXIT_CODES.usage);
    expect(run.calls).toEqual([]);
    expect(run.commands).toEqual([]);
  });

  it("dry-activate uploads no key, so it reads none: a key file absent here is no error, and no key command runs", async () => {
    const ran = join(dir, "key-command-ran");
    const io = capturedOutput();
    const world = fakeDependencies(healthyHost());
    const code = await main(["node", "cdktf-nixos", "deploy", ...target, "--toplevel", NEW, "--action", "dry-activate", "--key", `db=${join(dir, "absent-in-ci")}`,
      "--key-spec", JSON.stringify({ name: "api", command: ["sh", "-c", `touch ${ran}; echo token`] })], { output: io.output, dependencies: () => world.deps });
    expect(code, io.stderr()).toBe(0);
    expect(existsSync(ran)).toBe(false);
    expect(world.host.log.some((c) => c.includes("/run/keys"))).toBe(false);
  });

  it("names the allowed --compress modes (commander's message, with the usage)", async () => {
    const run = await cli([...target, "--toplevel", NEW, "--compress", "gzip"]);
    expect(run.stderr.split("\n")[0]).toBe("error: option '--compress <mode>' argument 'gzip' is invalid. Allowed choices are auto, zstd, none.");
    expect(run.code).toBe(EXIT_CODES.usage);
    expect(run.calls).toEqual([]);
  });

  it("follows ./result to the store path it names", async () => {
    const io = capturedOutput();
    const built: SystemSource[] = [];
    const world = fakeDependencies(healthyHost(), {
      build: async (source) => {
        built.push(source);
        return { outPath: NEW, system: "x86_64-linux" };
      },
    });
    const code = await main(["node", "cdktf-nixos", "deploy", ...target, "--toplevel", join(dir, "result"), "--json"], { output: io.output, dependencies: () => world.deps });
    expect(code, io.stderr()).toBe(0);
    expect(built).toEqual([{ kind: "toplevel", path: NEW }]);
  });

  it("dry-activate: prints what the host would do on stdout, says dry-activated, and puts it in --json", async () => {
    const log = `dry-activate of ${NEW}\nwould stop the following units: old.service\nwould start the following units: new.service\n`;
    const run = async (json: boolean) => {
      const io = capturedOutput();
      const world = fakeDependencies(healthyHost([[READ_LOG, { stdout: log }]]));
      const code = await main(["node", "cdktf-nixos", "deploy", ...target, "--toplevel", NEW, "--action", "dry-activate", ...(json ? ["--json"] : [])],
        { output: io.output, dependencies: () => world.deps });
      return { code, stdout: io.stdout(), stderr: io.stderr() };
    };
    const plain = await run(false);
    expect(plain.code).toBe(0);
    expect(plain.stdout).toBe("would stop the following units: old.service\nwould start the following units: new.service\n");
    expect(plain.stderr).toMatch(new RegExp(`^dry-activated ${NEW} to root@198\\.51\\.100\\.7:22 in [\\d.]+ s$`, "m"));
    const json = await run(true);
    expect(JSON.parse(json.stdout)).toMatchObject({ ok: true, action: "dry-activate", dryActivation: "would stop the following units: old.service\nwould start the following units: new.service\n" });
  });
});
