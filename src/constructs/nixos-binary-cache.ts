import { Annotations, IamInstanceProfile, IamRole, IamRolePolicy, S3Bucket, S3BucketLifecycleConfiguration, S3BucketOwnershipControls, S3BucketPublicAccessBlock } from "./core";
import { Construct } from "constructs";
import { existsSync, mkdirSync, statSync } from "node:fs";
import { dirname } from "node:path";
import { generateSigningKeyFile, readSigningKeySync } from "../nix/binary-cache/signing-key";
import { parseCacheUrl, parsePublicKeyText } from "../spec/cache-url";
import { keyFilePath } from "../spec/key-spec";
import { binaryCacheImport, binaryCacheProps, checkProps } from "./prop-types";
import { ValidationError } from "./validation-error";

/**
 * A Nix binary cache hosts substitute from: where deployments upload closures once (`url`), where hosts fetch them
 * (`substituter`) and the key they trust (`publicKey`). Give it to `NixosInstance` / `NixosDeployment` as
 * `binaryCache`.
 */
export interface INixosBinaryCache {
  /** Where deployments upload: `s3://BUCKET?region=…`, `file:///DIR`, or another kind with `pushCommand`. */
  readonly url: string;
  /** What hosts fetch from (`nix.settings.substituters`). */
  readonly substituter: string;
  /** The key hosts trust for it (`nix.settings.trusted-public-keys`). */
  readonly publicKey: string;
  /** The secret key on this machine deployments sign uploads with. @default - none: uploads need pushCommand */
  readonly signingKeyFile?: string;
  /** A command that uploads store paths (given as its arguments) instead of the deploy engine. @default - the engine uploads */
  readonly pushCommand?: string;
  /** An instance profile that may read the cache: a NixosInstance with this cache gets it. @default - none */
  readonly instanceProfileName?: string;
  /**
   * Module arguments for the hosts' configurations: `binaryCache = { substituter; publicKey; }`, for
   * `nix.settings.substituters = [ binaryCache.substituter ]; nix.settings.trusted-public-keys = [ binaryCache.publicKey ];`.
   */
  readonly nixosArgs: { [name: string]: unknown };
}

export interface NixosBinaryCacheProps {
  /** The bucket's name (global in S3, so chosen by you; it is part of the cache URL hosts use). */
  readonly bucketName: string;
  /** The bucket's region. */
  readonly region: string;
  /**
   * The secret key uploads are signed with. Generated here at synth when the file does not exist (ed25519, in
   * `nix-store --generate-binary-cache-key`'s format, mode 0600); only its public half reaches Terraform.
   * @default ".cdktf-nixos/binary-cache-key"
   */
  readonly signingKeyFile?: string;
  /** The key's name (the part before `:` in trusted-public-keys) when one is generated. @default "<bucketName>-1" */
  readonly keyName?: string;
  /**
   * Delete objects this many days after they were uploaded (a path uploaded again later is fresh again); hosts
   * whose path has expired get it copied directly.
   * @default - kept until deleted
   */
  readonly expireAfterDays?: number;
  /** Where hosts fetch from, when not the bucket's s3:// URL (e.g. a CDN in front of it). @default - the s3:// URL */
  readonly substituter?: string;
  /** Tags of the bucket and role. @default - none */
  readonly tags?: { [key: string]: string };
}

/**
 * A private S3 bucket as a Nix binary cache (public access blocked, ownership enforced, unfinished uploads cleaned
 * up), an IAM role and instance profile that may read it, and the signing key on this machine. Hosts of a
 * `NixosInstance` with this `binaryCache` get the instance profile, and their deployments upload to the cache once
 * and fetch from it.
 */
export class NixosBinaryCache extends Construct implements INixosBinaryCache {
  /** An existing cache by its URL and public key: nothing is created for it. */
  static fromUrl(scope: Construct, id: string, url: string, publicKey: string, options: NixosBinaryCacheImportOptions = {}): INixosBinaryCache {
    const where = `${scope?.node?.path ? `${scope.node.path}/` : ""}${id} (NixosBinaryCache.fromUrl)`;
    checkProps(where, binaryCacheImport, { url, publicKey, ...options });
    try {
      parseCacheUrl(url, "url");
      parsePublicKeyText(publicKey);
      if (options.substituter !== undefined) parseCacheUrl(options.substituter, "substituter");
    } catch (err) {
      throw new ValidationError((err as Error).message, where);
    }
    return new ImportedBinaryCache(scope, id, url, publicKey, options);
  }

  readonly url: string;
  readonly substituter: string;
  readonly publicKey: string;
  readonly signingKeyFile: string;
  readonly instanceProfileName: string;
  readonly bucket: S3Bucket;
  readonly role: IamRole;
  readonly instanceProfile: IamInstanceProfile;

  constructor(scope: Construct, id: string, props: NixosBinaryCacheProps) {
    super(scope, id);
    const fail = (message: string): never => {
      throw new ValidationError(message, this);
    };
    if (props === undefined || props === null) fail("props are required: bucketName, region");
    checkProps(`${this.node.path} (NixosBinaryCache)`, binaryCacheProps, props);
    if (!/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/.test(props.bucketName) || props.bucketName.includes("..")) {
      fail(`bucketName "${props.bucketName}" is not an S3 bucket name (3–63 lowercase letters, digits, dots and hyphens)`);
    }
    if (props.expireAfterDays !== undefined && (!Number.isInteger(props.expireAfterDays) || props.expireAfterDays < 1)) {
      fail(`expireAfterDays ${props.expireAfterDays} is not a whole number of days of at least 1`);
    }
    this.url = `s3://${props.bucketName}?region=${props.region}`;
    this.substituter = props.substituter ?? this.url;
    try {
      parseCacheUrl(this.substituter, "substituter");
    } catch (err) {
      fail((err as Error).message);
    }
    this.signingKeyFile = keyFilePath(props.signingKeyFile ?? ".cdktf-nixos/binary-cache-key");
    this.publicKey = signingKeyOf(this.signingKeyFile, props.keyName ?? `${props.bucketName}-1`, fail);
    if ((statSync(this.signingKeyFile).mode & 0o077) !== 0) {
      Annotations.of(this).addWarning(`${this.node.path}: the signing key ${this.signingKeyFile} is readable by others: chmod 600 ${this.signingKeyFile}`);
    }

    this.bucket = new S3Bucket(this, "Bucket", { bucket: props.bucketName, tags: props.tags });
    new S3BucketPublicAccessBlock(this, "PublicAccessBlock", {
      bucket: this.bucket.id, blockPublicAcls: true, blockPublicPolicy: true, ignorePublicAcls: true, restrictPublicBuckets: true,
    });
    new S3BucketOwnershipControls(this, "OwnershipControls", { bucket: this.bucket.id, rule: { objectOwnership: "BucketOwnerEnforced" } });
    new S3BucketLifecycleConfiguration(this, "Lifecycle", {
      bucket: this.bucket.id,
      rule: [
        // an upload cut off (a killed push) leaves parts that cost money and never become an object
        { id: "abort-unfinished-uploads", status: "Enabled", filter: [{ prefix: "" }], abortIncompleteMultipartUpload: [{ daysAfterInitiation: 1 }] },
        ...(props.expireAfterDays !== undefined
          ? [{ id: "expire", status: "Enabled", filter: [{ prefix: "" }], expiration: [{ days: props.expireAfterDays }] }]
          : []),
      ],
    });
    this.role = new IamRole(this, "ReaderRole", {
      namePrefix: `${id.replace(/[^A-Za-z0-9+=,.@_-]/g, "-").slice(0, 20)}-reader-`,
      assumeRolePolicy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [{ Effect: "Allow", Principal: { Service: "ec2.amazonaws.com" }, Action: "sts:AssumeRole" }],
      }),
      tags: props.tags,
    });
    new IamRolePolicy(this, "ReadPolicy", {
      role: this.role.id,
      policy: JSON.stringify({
        Version: "2012-10-17",
        Statement: [
          // what Nix's S3 store asks: the objects, and the bucket's listing so that a missing path is a 404, not a 403
          { Effect: "Allow", Action: ["s3:GetObject"], Resource: `arn:aws:s3:::${props.bucketName}/*` },
          { Effect: "Allow", Action: ["s3:ListBucket", "s3:GetBucketLocation"], Resource: `arn:aws:s3:::${props.bucketName}` },
        ],
      }),
    });
    this.instanceProfile = new IamInstanceProfile(this, "InstanceProfile", { namePrefix: `${id.replace(/[^A-Za-z0-9+=,.@_-]/g, "-").slice(0, 20)}-`, role: this.role.name, tags: props.tags });
    this.instanceProfileName = this.instanceProfile.name;
  }

  get nixosArgs(): { [name: string]: unknown } {
    return { binaryCache: { substituter: this.substituter, publicKey: this.publicKey } };
  }
}

export interface NixosBinaryCacheImportOptions {
  /** Where hosts fetch from, when not at `url`. @default - url */
  readonly substituter?: string;
  /** The secret key deployments sign uploads with. @default - none: give pushCommand, or deployments only fetch */
  readonly signingKeyFile?: string;
  /** A command that uploads store paths (given as its arguments), e.g. `cachix push NAME`. @default - the engine uploads (needs signingKeyFile) */
  readonly pushCommand?: string;
  /** An instance profile that may read the cache. @default - none */
  readonly instanceProfileName?: string;
}

class ImportedBinaryCache extends Construct implements INixosBinaryCache {
  readonly substituter: string;
  readonly signingKeyFile?: string;
  readonly pushCommand?: string;
  readonly instanceProfileName?: string;

  constructor(scope: Construct, id: string, readonly url: string, readonly publicKey: string, options: NixosBinaryCacheImportOptions) {
    super(scope, id);
    this.substituter = options.substituter ?? url;
    this.signingKeyFile = options.signingKeyFile === undefined ? undefined : keyFilePath(options.signingKeyFile);
    this.pushCommand = options.pushCommand;
    this.instanceProfileName = options.instanceProfileName;
  }

  get nixosArgs(): { [name: string]: unknown } {
    return { binaryCache: { substituter: this.substituter, publicKey: this.publicKey } };
  }
}

/** The public key of `file`'s secret key, generating the key there first when there is none (never replacing one). */
function signingKeyOf(file: string, name: string, fail: (message: string) => never): string {
  try {
    if (!existsSync(file)) {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
      return generateSigningKeyFile(file, name).publicKey;
    }
    return readSigningKeySync(file).publicKey;
  } catch (err) {
    return fail(`signingKeyFile ${file}: ${(err as Error).message}${/not a Nix binary cache secret key|key bytes|does not belong/.test((err as Error).message) ? "; it is never overwritten: move it away, or choose another signingKeyFile" : ""}`);
  }
}
