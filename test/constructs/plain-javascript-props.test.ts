import { execFileSync } from "node:child_process";
import { chmodSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { Testing, TerraformStack } from "cdktf";
import { afterAll, describe, expect, it } from "vitest";
import { NixosDeployment, NixosImage, NixosInstance, NixosKeyPair, NixosSecurityGroup } from "../../src";

/**
 * Props as plain JavaScript (and the jsii languages) pass them: nothing checked them at compile time. Each is refused
 * in the constructor with one message naming the construct, the prop, what it must be and what it got; nothing is
 * created (no file, no resource). Rows C… of the new user's bad inputs.
 */
describe("construct props from plain JavaScript: one message naming construct and prop", () => {
  const dir = mkdtempSync(join(tmpdir(), "plain-js-props-"));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const configuration = join(dir, "web.nix");
  writeFileSync(configuration, "{ ... }: { }\n");
  const privateKey = join(dir, "id_ed25519");
  execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", privateKey]);
  const notAKey = join(dir, "hostname");
  writeFileSync(notAKey, "web-1\n");
  const KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0Gk5m5ZpVz8c3fY4Ok7Rr8m0Yq0k7d0p2n6Qv5m4c3 ops@laptop";
  const stack = () => new TerraformStack(Testing.app(), "t");
  const deployment = { host: "10.0.0.5", configuration };
  const instance = { keyPair: { keyName: "ops" } };
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  type Loose = any;

  it.each<[string, (s: TerraformStack) => unknown, string]>([
    ["C01 rootVolumeSize as a string", (s) => new NixosInstance(s, "web", { ...instance, rootVolumeSize: "50" as Loose }),
      't/web (NixosInstance): rootVolumeSize must be a number, got the string "50"'],
    ["C02 rootVolumeSize 0 names the construct", (s) => new NixosInstance(s, "web", { ...instance, rootVolumeSize: 0 }),
      "t/web (NixosInstance): rootVolumeSize 0 is out of range: a whole number of GiB from 1 to 16384 (gp3)"],
    ["C09 release as a number", (s) => new NixosInstance(s, "web", { ...instance, release: 25.05 as Loose }),
      "t/web (NixosInstance): release must be a string, got the number 25.05"],
    ["C12 sshAllowedCidrs as one string", (s) => new NixosInstance(s, "web", { ...instance, sshAllowedCidrs: "10.0.0.0/8" as Loose }),
      't/web (NixosInstance): sshAllowedCidrs must be a list, got the string "10.0.0.0/8"'],
    ["C18 tags as a string", (s) => new NixosInstance(s, "web", { ...instance, tags: "web" as Loose }),
      't/web (NixosInstance): tags must be a map (an object of names to values), got the string "web"'],
    ["C20 keyPair as a key pair's name", (s) => new NixosInstance(s, "web", { keyPair: "ops" as Loose }),
      "t/web (NixosInstance): keyPair must be an IKeyPair (NixosKeyPair.generate(), .fromPublicKey(), .fromPublicKeyFile() or .fromKeyPairName()), got the string \"ops\""],
    ["an image that is no INixosImage", (s) => new NixosInstance(s, "web", { ...instance, image: "ami-0123456789abcdef0" as Loose }),
      't/web (NixosInstance): image must be an INixosImage (NixosImage.latest() or NixosImage.fromAmiId()), got the string "ami-0123456789abcdef0"'],
    ["a misspelled prop", (s) => new NixosInstance(s, "web", { ...instance, instancetype: "t3.small" } as Loose),
      "t/web (NixosInstance): unknown prop instancetype (misspelled?)"],
    ["C98 usePrivateIp as a string", (s) => new NixosInstance(s, "web", { ...instance, nixos: { configuration, usePrivateIp: "yes" as Loose } }),
      't/web (NixosInstance): nixos.usePrivateIp must be true or false, got the string "yes"'],
    ["C24 nixPath as a string", (s) => new NixosDeployment(s, "d", { ...deployment, nixPath: "nixpkgs=/x" as Loose }),
      't/d (NixosDeployment): nixPath must be a map (an object of names to values), got the string "nixpkgs=/x"'],
    ["C25 nixosArgs as a string", (s) => new NixosDeployment(s, "d", { ...deployment, nixosArgs: "x" as Loose }),
      't/d (NixosDeployment): nixosArgs must be a map (an object of names to values), got the string "x"'],
    ["C28 a Date in nixosArgs", (s) => new NixosDeployment(s, "d", { ...deployment, nixosArgs: { when: new Date(0) } }),
      "t/d (NixosDeployment): nixosArgs.when is a Date, which is not a JSON value (give a string, number, true/false, list or map)"],
    ["C30 NaN in nixosArgs", (s) => new NixosDeployment(s, "d", { ...deployment, nixosArgs: { peers: [1, NaN] } }),
      "t/d (NixosDeployment): nixosArgs.peers[1] is NaN, which JSON cannot carry (it would become null)"],
    ["C35 sensitiveArgs as a string", (s) => new NixosDeployment(s, "d", { ...deployment, nixosArgs: { a: 1 }, sensitiveArgs: "a" as Loose }),
      't/d (NixosDeployment): sensitiveArgs must be a list, got the string "a"'],
    ["C37 keys as one object", (s) => new NixosDeployment(s, "d", { ...deployment, keys: { name: "k", file: "x" } as Loose }),
      "t/d (NixosDeployment): keys must be a list, got an object"],
    ["K29 a misspelled key field", (s) => new NixosDeployment(s, "d", { ...deployment, keys: [{ name: "k", file: "x", premissions: "0440" } as Loose] }),
      "t/d (NixosDeployment): unknown prop keys[0].premissions (misspelled?)"],
    ["C44 connectTimeoutSeconds as a string", (s) => new NixosDeployment(s, "d", { ...deployment, connectTimeoutSeconds: "30" as Loose }),
      't/d (NixosDeployment): connectTimeoutSeconds must be a number, got the string "30"'],
    ["C53 port as a string", (s) => new NixosDeployment(s, "d", { ...deployment, port: "22" as Loose }),
      't/d (NixosDeployment): port must be a number, got the string "22"'],
    ["C55 an empty user", (s) => new NixosDeployment(s, "d", { ...deployment, user: "" }),
      't/d (NixosDeployment): user "" is not a user name (letters, digits, _ . -; the host goes in `host`)'],
    ["C56 a user with the host in it", (s) => new NixosDeployment(s, "d", { ...deployment, user: "root@x" }),
      't/d (NixosDeployment): user "root@x" is not a user name (letters, digits, _ . -; the host goes in `host`)'],
    ["C57 a user with shell metacharacters", (s) => new NixosDeployment(s, "d", { ...deployment, user: "deploy; rm -rf /" }),
      't/d (NixosDeployment): user "deploy; rm -rf /" is not a user name (letters, digits, _ . -; the host goes in `host`)'],
    ["C60 an IPv6 host with a port", (s) => new NixosDeployment(s, "d", { ...deployment, host: "[2001:db8::1]:22" }),
      't/d (NixosDeployment): host "[2001:db8::1]:22" includes a port; give the address alone and the port as `port`'],
    ["an IPv6 host in brackets", (s) => new NixosDeployment(s, "d", { ...deployment, host: "[2001:db8::1]" }),
      't/d (NixosDeployment): host "[2001:db8::1]": give an IPv6 address without brackets ("2001:db8::1")'],
    ["C62 host as a number", (s) => new NixosDeployment(s, "d", { ...deployment, host: 42 as Loose }),
      "t/d (NixosDeployment): host must be a string, got the number 42"],
    ["no props at all", (s) => new NixosDeployment(s, "d", undefined as Loose),
      "t/d (NixosDeployment): props are required: host, and configuration or flake"],
    ["C67 sshPrivateKeyFile is the public key", (s) => new NixosDeployment(s, "d", { ...deployment, sshPrivateKeyFile: `${privateKey}.pub` }),
      `t/d (NixosDeployment): sshPrivateKeyFile "${privateKey}.pub" is a public key; give the private key (${privateKey})`],
    ["C68 sshPrivateKeyFile is a directory", (s) => new NixosDeployment(s, "d", { ...deployment, sshPrivateKeyFile: dir }),
      `t/d (NixosDeployment): sshPrivateKeyFile "${dir}" is a directory; give the private key file in it (e.g. id_ed25519)`],
    ["sshPrivateKeyFile is not a key", (s) => new NixosDeployment(s, "d", { ...deployment, sshPrivateKeyFile: notAKey }),
      `t/d (NixosDeployment): sshPrivateKeyFile "${notAKey}" is not a private key (no "-----BEGIN ... PRIVATE KEY-----" in it)`],
    ["C76 instanceId that is no instance ID", (s) => new NixosDeployment(s, "d", { ...deployment, instanceId: "web" }),
      't/d (NixosDeployment): instanceId "web" is not an EC2 instance ID (i-0123456789abcdef0); give instance.instanceId'],
    ["a typo'd region", (s) => new NixosDeployment(s, "d", { ...deployment, instanceId: "i-0123456789abcdef0", region: "eu-centrl-1" }),
      't/d (NixosDeployment): region "eu-centrl-1" is not an AWS region; did you mean "eu-central-1"?'],
    ["C78 acceptNewHostKey as a string", (s) => new NixosDeployment(s, "d", { ...deployment, acceptNewHostKey: "yes" as Loose }),
      't/d (NixosDeployment): acceptNewHostKey must be true or false, got the string "yes"'],
    ["a key into the system's store path", (s) => new NixosDeployment(s, "d", { ...deployment, keys: [{ name: "current-system", file: "x", destDir: "/run" }] }),
      't/d (NixosDeployment): key "current-system": /run/current-system is in /run/current-system, which NixOS manages (it links into the Nix store)'],
    ["an image's bucket as a number", (s) => NixosImage.fromConfiguration(s, "img", { configuration, bucket: 42 as Loose }),
      "t/img (NixosConfigurationImage): bucket must be a string, got the number 42"],
    ["an image's misspelled prop", (s) => NixosImage.fromConfiguration(s, "img", { configuration, bucket: "acme-images", keyprefix: "amis/" } as Loose),
      "t/img (NixosConfigurationImage): unknown prop keyprefix (misspelled?)"],
    ["an image with both configuration and flake", (s) => NixosImage.fromConfiguration(s, "img", { configuration, flake: ".#web", bucket: "acme-images" }),
      "t/img (NixosConfigurationImage): give exactly one of configuration and flake"],
    ["an image's bucket that is no bucket name", (s) => NixosImage.fromConfiguration(s, "img", { configuration, bucket: "Acme_Images" }),
      't/img (NixosConfigurationImage): bucket "Acme_Images" is not an S3 bucket name (3-63 lower-case letters, digits, dots and hyphens)'],
    ["an image's module argument known only at apply", (s) => NixosImage.fromConfiguration(s, "img", {
      configuration, bucket: "acme-images", nixosArgs: { peers: [new NixosInstance(s, "db", instance).privateIp] },
    }), "t/img (NixosConfigurationImage): nixosArgs.peers is a Terraform value known only at apply, but an image is built before anything is applied: " +
      "give a literal value, or pass it to the instance with a NixosDeployment"],
    ["an image for an architecture nixpkgs does not name", (s) => NixosImage.fromConfiguration(s, "img", { configuration, bucket: "acme-images", architecture: "arm64" as Loose }),
      't/img (NixosConfigurationImage): architecture must be one of "x86_64", "aarch64", got the string "arm64"'],
    ["an image's build host with a scheme", (s) => NixosImage.fromConfiguration(s, "img", { configuration, bucket: "acme-images", buildHost: "ssh://builder" }),
      "t/img (NixosConfigurationImage): buildHost 'ssh://builder' is not [user@]host[:port] (for example admin@builder.example.com:22)"],
    ["an image's login without a build host", (s) => NixosImage.fromConfiguration(s, "img", { configuration, bucket: "acme-images", sshPrivateKeyFile: privateKey }),
      "t/img (NixosConfigurationImage): sshPrivateKeyFile and knownHostsFile are how the build host is reached: give buildHost too, or leave them out"],
    ["C80 an ingress port as a string", (s) => new NixosSecurityGroup(s, "sg", { ingress: [{ port: "80" as Loose, cidrs: ["10.0.0.0/8"] }] }),
      't/sg (NixosSecurityGroup): ingress[0].port must be a number, got the string "80"'],
    ["C81 protocol icmp", (s) => new NixosSecurityGroup(s, "sg", { ingress: [{ port: 80, protocol: "icmp" as Loose, cidrs: ["10.0.0.0/8"] }] }),
      't/sg (NixosSecurityGroup): ingress[0].protocol must be one of "tcp", "udp", got the string "icmp"'],
    ["C85 the same rule twice", (s) => new NixosSecurityGroup(s, "sg", { ingress: [{ port: 80, cidrs: ["10.0.0.0/8"] }, { port: 80, cidrs: ["10.1.0.0/16"] }] }),
      "t/sg (NixosSecurityGroup): ingress tcp/80 is given twice; put every CIDR block of that port into one rule"],
    ["C90 generate with an empty privateKeyFile", (s) => NixosKeyPair.generate(s, "kp", { privateKeyFile: "" }),
      't/kp (NixosKeyPair.generate): privateKeyFile must not be empty, got the string ""'],
    ["C91 generate under /proc (Node's mkdir would spin forever)", (s) => NixosKeyPair.generate(s, "kp", { privateKeyFile: "/proc/nope/key" }),
      "t/kp (NixosKeyPair.generate): privateKeyFile /proc/nope/key is in /proc, where no file can be created; choose a privateKeyFile in a directory you can write"],
    ["C92 generate over an existing file that is no key", (s) => NixosKeyPair.generate(s, "kp", { privateKeyFile: notAKey }),
      `t/kp (NixosKeyPair.generate): privateKeyFile ${notAKey} is not a private key (no "-----BEGIN ... PRIVATE KEY-----" in it); it is never overwritten: move it away, or choose another privateKeyFile`],
    ["fromPublicKey with a number", (s) => NixosKeyPair.fromPublicKey(s, "kp", 42 as Loose),
      't/kp (NixosKeyPair.fromPublicKey): publicKey must be a string (a line such as "ssh-ed25519 AAAA... comment"), got the number 42'],
    ["fromPublicKeyFile of a FIFO-like device", (s) => NixosKeyPair.fromPublicKeyFile(s, "kp", "/dev/zero"),
      't/kp (NixosKeyPair.fromPublicKeyFile): cannot read public key file "/dev/zero": it is not a regular file'],
    ["C95 architecture arm", () => NixosImage.latest({ architecture: "arm" as Loose }),
      'NixosImage.latest: architecture must be one of "x86_64", "aarch64", got the string "arm"'],
    ["fromAmiId with a number", () => NixosImage.fromAmiId(123 as Loose),
      "NixosImage.fromAmiId: the AMI ID must be a string, got the number 123"],
  ])("%s", (_what, build, message) => {
    const before = readdirSync(dir).sort();
    expect(() => build(stack())).toThrow(message);
    expect(readdirSync(dir).sort()).toEqual(before);
  });

  it("C91/C112 with HOME under /proc: refused at once, nothing spins", () => {
    const home = process.env.HOME;
    process.env.HOME = "/proc";
    try {
      expect(() => NixosKeyPair.generate(stack(), "kp", { privateKeyFile: "~/nodir/key" })).toThrow(
        "t/kp (NixosKeyPair.generate): privateKeyFile /proc/nodir/key is in /proc, where no file can be created; choose a privateKeyFile in a directory you can write");
    } finally {
      process.env.HOME = home;
    }
  });

  it("a private key readable by others is refused, as OpenSSH refuses it", () => {
    const open = join(dir, "id_open");
    execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-f", open]);
    chmodSync(open, 0o644);
    expect(() => new NixosDeployment(stack(), "d", { ...deployment, sshPrivateKeyFile: open })).toThrow(
      `t/d (NixosDeployment): sshPrivateKeyFile "${open}" is readable by others (mode 0644), and OpenSSH refuses such a key: chmod 600 ${open}`);
  });

  it("warns at synth about what is fine now but not later: no security group at all, a key file not there yet, two deployments to one host", () => {
    const s = stack();
    new NixosInstance(s, "web", { ...instance, securityGroups: [] });
    new NixosDeployment(s, "d", { ...deployment, keys: [{ name: "db", file: join(dir, "secrets", "db") }] });
    new NixosDeployment(s, "d2", { ...deployment });
    new NixosDeployment(s, "d3", { ...deployment, port: 2222 });
    const warnings = s.node.findAll().flatMap((c) => c.node.metadata).filter((m) => m.type === "@cdktf/warn").map((m) => m.data);
    expect(warnings).toContain("t/web: securityGroups is empty: the instance gets no security group rule at all, so nothing can reach SSH on it");
    expect(warnings).toContain(`t/d: key "db": file ${join(dir, "secrets", "db")} does not exist yet; the deployment reads it when it runs`);
    expect(warnings).toContain("t/d2: deploys to the same host as t/d (10.0.0.5, port 22): each apply and push would put one system on it and then the other");
    expect(warnings.filter((w) => String(w).startsWith("t/d3"))).toEqual([]);
  });

  it("still takes what TypeScript users write: tokens, numbers as tag values, keys with every field", () => {
    const s = stack();
    expect(() => new NixosInstance(s, "web", { ...instance, tags: { role: "web", tier: 2 as Loose }, nixos: { configuration, usePrivateIp: true, keys: [
      { name: "db", command: ["pass", "show", "db"], commandTimeoutSeconds: 120, user: "postgres", group: "postgres", permissions: "0440" },
    ] } })).not.toThrow();
    expect(() => NixosKeyPair.fromPublicKey(s, "kp", KEY)).not.toThrow();
  });
});
