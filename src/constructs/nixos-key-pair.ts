import { execFileSync } from "node:child_process";
import { existsSync, mkdirSync, readFileSync } from "node:fs";
import { homedir } from "node:os";
import { dirname, resolve } from "node:path";
import { KeyPair } from "@cdktf/provider-aws/lib/key-pair";
import { Construct } from "constructs";

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
    return new NixosKeyPair(scope, id, publicKey, undefined, props);
  }

  /** From a public key file, read at synth time (`~` is expanded). */
  static fromPublicKeyFile(scope: Construct, id: string, path: string, props: NixosKeyPairProps = {}): NixosKeyPair {
    const file = expandHome(path);
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      throw new Error(`cannot read public key file "${path}": ${(err as Error).message}`);
    }
    return new NixosKeyPair(scope, id, text, undefined, props);
  }

  /** A key pair that already exists in the account and region. */
  static fromKeyPairName(keyName: string): IKeyPair {
    if (keyName.trim() === "") throw new Error("fromKeyPairName: the key pair name is empty");
    return { keyName };
  }

  /**
   * A key pair generated on this machine at synth time (ed25519, by ssh-keygen), or the one already in
   * `privateKeyFile`. Only the public key reaches Terraform.
   */
  static generate(scope: Construct, id: string, props: GenerateKeyPairProps): NixosKeyPair {
    const file = expandHome(props.privateKeyFile);
    if (!existsSync(file)) {
      const where = `${scope.node.path === "" ? "" : `${scope.node.path}/`}${id}`;
      try {
        mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        const why = code === "EACCES" ? "permission denied" : code === "ENOTDIR" || code === "EEXIST" ? "a part of the path is a file" : code === "EROFS" ? "the file system is read-only" : (err as Error).message;
        throw new Error(`${where}: cannot create the directory ${dirname(file)} for the generated private key (${why}); ` +
          "choose a privateKeyFile in a directory you can write");
      }
      try {
        execFileSync("ssh-keygen", ["-q", "-t", "ed25519", "-N", "", "-C", `cdktf-nixos ${id}`, "-f", file], { stdio: ["ignore", "ignore", "pipe"] });
      } catch (err) {
        const stderr = String((err as { stderr?: Buffer }).stderr ?? "").trim();
        throw new Error(`${where}: ssh-keygen could not write the private key ${file}: ${stderr || (err as Error).message}; ` +
          "choose a privateKeyFile in a directory you can write");
      }
    }
    const publicFile = `${file}.pub`;
    const publicKey = existsSync(publicFile)
      ? readFileSync(publicFile, "utf8")
      : execFileSync("ssh-keygen", ["-y", "-f", file], { encoding: "utf8" });
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
      throw new Error(
        `${id}: not one OpenSSH public key line ("ssh-ed25519 AAAA... comment"): "${key.slice(0, 40)}${key.length > 40 ? "..." : ""}"` +
          (key.includes("PRIVATE KEY") ? " - that is a private key; pass the .pub file" : ""),
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

function expandHome(path: string): string {
  return resolve(path.startsWith("~/") ? `${homedir()}${path.slice(1)}` : path);
}
