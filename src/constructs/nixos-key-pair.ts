import { ValidationError } from "./validation-error";
import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { KeyPair } from "./core";
import { Construct } from "constructs";
import { keyFilePath } from "../spec/key-spec";
import { privateKeyFileProblem, readSmallFileSync } from "../spec/private-key-file";
import { checkProps, describeValue, generateKeyPairProps, keyPairProps } from "./prop-types";

/** An EC2 key pair the instance's root account accepts. */
export interface IKeyPair {
  readonly keyName: string;
  /**
   * The matching private key on this machine, when known (generated ones): what deployments log in with.
   */
  readonly privateKeyFile?: string;
}

export interface NixosKeyPairProps {
  /** @default - a name derived from the construct id, made unique by Terraform (key_name_prefix) */
  readonly keyName?: string;
  /** @default - no tags */
  readonly tags?: { [key: string]: string };
}

export interface GenerateKeyPairProps extends NixosKeyPairProps {
  /**
   * Where the private key lives on this machine (`~` is expanded). Created with ssh-keygen as an ed25519 key, mode
   * 0600, when missing; never overwritten. Its public half (`<file>.pub`) is what EC2 gets. The private key never
   * enters Terraform state (terraform-nixos's tls_private_key put it there).
   */
  readonly privateKeyFile: string;
}

const PUBLIC_KEY = /^(ssh-ed25519|ssh-rsa|ecdsa-sha2-nistp(256|384|521)) [A-Za-z0-9+/]+=*( .*)?$/;

/** An `aws_key_pair` from OpenSSH public key material. */
export class NixosKeyPair extends Construct implements IKeyPair {
  /** From public key text, e.g. the contents of ~/.ssh/id_ed25519.pub. */
  static fromPublicKey(scope: Construct, id: string, publicKey: string, props: NixosKeyPairProps = {}): NixosKeyPair {
    const where = `${childPath(scope, id)} (NixosKeyPair.fromPublicKey)`;
    if (typeof publicKey !== "string") throw new ValidationError(`publicKey must be a string (a line such as "ssh-ed25519 AAAA... comment"), got ${describeValue(publicKey)}`, where);
    checkProps(where, keyPairProps, props ?? {});
    return new NixosKeyPair(scope, id, publicKey, undefined, props ?? {});
  }

  /** From a public key file, read at synth time (`~` is expanded). */
  static fromPublicKeyFile(scope: Construct, id: string, path: string, props: NixosKeyPairProps = {}): NixosKeyPair {
    const where = `${childPath(scope, id)} (NixosKeyPair.fromPublicKeyFile)`;
    if (typeof path !== "string" || path === "") throw new ValidationError(`path must be the public key file (e.g. "~/.ssh/id_ed25519.pub"), got ${describeValue(path)}`, where);
    checkProps(where, keyPairProps, props ?? {});
    const file = keyFilePath(path);
    const text = readPublicKeyFile(file, (why) => new ValidationError(`cannot read public key file "${path}": ${why}`, where));
    return new NixosKeyPair(scope, id, text, undefined, props ?? {});
  }

  /** A key pair that already exists in the account and region (aws-cdk's `fromXxx(scope, id, …)`). */
  static fromKeyPairName(scope: Construct, id: string, keyName: string): IKeyPair {
    const where = `${childPath(scope, id)} (NixosKeyPair.fromKeyPairName)`;
    if (typeof keyName !== "string") throw new ValidationError(`the key pair name must be a string, got ${describeValue(keyName)}`, where);
    if (keyName.trim() === "") throw new ValidationError("the key pair name is empty", where);
    return new ImportedKeyPair(scope, id, keyName);
  }

  /**
   * A key pair generated on this machine at synth time (ed25519, by ssh-keygen), or the one already in
   * `privateKeyFile`. Only the public key reaches Terraform.
   */
  static generate(scope: Construct, id: string, props: GenerateKeyPairProps): NixosKeyPair {
    const where = `${childPath(scope, id)} (NixosKeyPair.generate)`;
    if (props === undefined || props === null) throw new ValidationError("props are required: privateKeyFile", where);
    checkProps(where, generateKeyPairProps, props);
    const file = keyFilePath(props.privateKeyFile);
    const kernel = ["/proc", "/sys", "/dev"].find((root) => file === root || file.startsWith(`${root}/`));
    if (kernel !== undefined) throw new ValidationError(`privateKeyFile ${file} is in ${kernel}, where no file can be created; choose a privateKeyFile in a directory you can write`, where);
    if (!existsSync(file)) {
      makeDirectories(dirname(file), (why) => new ValidationError(`cannot create the directory ${dirname(file)} for the generated private key (${why}); ` +
        "choose a privateKeyFile in a directory you can write", where));
      try {
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `cdktf-nixos ${id}`, "-f", file], { stdio: ["ignore", "ignore", "pipe"], timeout: 30_000 });
      } catch (err) {
        const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
        throw new ValidationError(`ssh-keygen could not write the private key ${file}: ${stderr || (err as Error).message}; ` +
          "choose a privateKeyFile in a directory you can write", where);
      }
    }
    const problem = privateKeyFileProblem(file);
    if (problem !== undefined) {
      throw new ValidationError(`privateKeyFile ${file} ${problem}${/does not exist|readable by others/.test(problem) ? "" : "; it is never overwritten: move it away, or choose another privateKeyFile"}`, where);
    }
    const publicFile = `${file}.pub`;
    let publicKey: string;
    if (existsSync(publicFile)) {
      publicKey = readPublicKeyFile(publicFile, (why) => new ValidationError(`cannot read ${publicFile}: ${why}`, where));
    } else {
      try {
        publicKey = execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8", stdio: ["ignore", "pipe", "pipe"], timeout: 30_000 });
      } catch (err) {
        const stderr = String((err as { stderr?: string }).stderr ?? "").trim();
        throw new ValidationError(`ssh-keygen cannot read the private key ${file} (${stderr || (err as Error).message}): ` +
          "a passphrase-protected key cannot be used here; give the public key beside it as " + `${publicFile}, or choose another privateKeyFile`, where);
      }
    }
    return new NixosKeyPair(scope, id, publicKey, file, props);
  }

  readonly keyName: string;
  readonly publicKey: string;
  readonly privateKeyFile?: string;
  readonly keyPair: KeyPair;

  private constructor(scope: Construct, id: string, publicKey: string, privateKeyFile: string | undefined, props: NixosKeyPairProps) {
    super(scope, id);
    const key = publicKey.trim();
    if (!PUBLIC_KEY.test(key) || key.includes("\n")) {
      throw new ValidationError(
        `not one OpenSSH public key line ("ssh-ed25519 AAAA... comment"): "${key.slice(0, 40)}${key.length > 40 ? "..." : ""}"` +
          (key.includes("PRIVATE KEY") ? " - that is a private key; pass the .pub file" : ""),
        this,
      );
    }
    this.publicKey = key;
    this.privateKeyFile = privateKeyFile;
    this.keyPair = new KeyPair(this, "Resource", {
      keyName: props.keyName,
      keyNamePrefix: props.keyName === undefined ? `${id.replace(/[^A-Za-z0-9-]/g, "-")}-` : undefined,
      publicKey: key,
      tags: props.tags,
    });
    this.keyName = this.keyPair.keyName;
  }
}

/** A key pair of the account, by name: nothing is created for it. */
class ImportedKeyPair extends Construct implements IKeyPair {
  constructor(scope: Construct, id: string, readonly keyName: string) {
    super(scope, id);
  }
}

function childPath(scope: Construct, id: string): string {
  return `${scope?.node?.path ? `${scope.node.path}/` : ""}${id}`;
}

/** `mkdir -p` one level at a time: Node's recursive mkdirSync loops forever where mkdir says ENOENT (under /proc). */
function makeDirectories(dir: string, error: (why: string) => Error): void {
  const missing: string[] = [];
  let at = dir;
  for (; !existsSync(at) && at !== dirname(at); at = dirname(at)) missing.unshift(at);
  if (!statSync(at).isDirectory()) throw error("a part of the path is a file");
  for (const part of missing) {
    try {
      mkdirSync(part, { mode: 0o700 });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      throw error(code === "EACCES" ? "permission denied" : code === "ENOTDIR" || code === "EEXIST" ? "a part of the path is a file"
        : code === "EROFS" ? "the file system is read-only" : code === "ENOENT" ? `${dirname(part)} does not exist and cannot be created` : (err as Error).message);
    }
  }
}

/** A public key file's text, refused when it is not a small regular file. */
function readPublicKeyFile(file: string, error: (why: string) => Error): string {
  const read = readSmallFileSync(file);
  switch (read.kind) {
    case "read":
      return read.bytes.toString("utf8");
    case "unopened":
      throw error(read.message);
    case "directory":
      throw error("it is a directory");
    case "not-a-file":
      throw error("it is not a regular file");
    case "too-large":
      throw error(`it is ${Math.round(read.size / 1024)} KiB, too large for a public key`);
  }
}
